package architecture

// sharedRules keep the small packages that more than one side uses from
// knowing any of those sides: a conversion or a lookup shared by two
// layers (or two backends) that imported one of them would tie the other
// to it.
var sharedRules = []rule{
	{
		from:      "./internal/contract/...",
		forbidden: append([]string{module + "/internal/service", module + "/cmd", module + "/internal/telemetry"}, backends...),
		why:       "the contract's conversions are shared by the service, the command line and a backend, so they know none of them",
	},
	{
		from:      "./internal/jvm/...",
		forbidden: append([]string{module + "/gen", module + "/internal/engine", module + "/internal/service", module + "/cmd", module + "/internal/telemetry"}, backends...),
		why:       "finding Java is shared by the Spark server and the Kafka test broker, so it knows neither of them, nor anything else here",
	},
}
