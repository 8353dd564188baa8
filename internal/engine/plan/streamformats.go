package plan

import (
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// This file is the one place to add a streaming source or sink. An entry
// names the format as a tauro config writes it and says how planning
// checks its settings and turns them into the Spark source or sink the
// plan's StreamSpec carries. The format policy's known formats, tauro's
// default batch-to-streaming compatibility and every message listing the
// formats are derived from these two tables; the Spark backend and
// internal/streaming only pass on what the plan decided.

// streamSourceFormat is a format a streaming node may read.
type streamSourceFormat struct {
	// name is the input config's format.
	name string
	// resolve fills src from its input config entry m: Spark's source
	// format first of all, and the format's own checks, reported under the
	// field f. src arrives with its key, path, options and schema read.
	resolve func(r *resolver, f string, m *config.Map, src *StreamSource)
	// readsBack lists the batch output formats a stream of this format
	// reads, for tauro's default compatibility map; readBack (when not
	// nil) adapts src, which reads a batch node's output as written, to
	// this format's reader.
	readsBack []string
	readBack  func(src *StreamSource)
}

// streamSinkFormat is a format a streaming node may write.
type streamSinkFormat struct {
	// name is the output config's format, as Spark names the sink.
	name string
	// check reports what the sink lacks, under the field f.
	check func(r *resolver, f string, sink StreamSink)
	// read, when set, takes the format's own settings from the output's
	// config entry m into sink, reporting under the field f.
	read func(r *resolver, f string, m *config.Map, sink *StreamSink)
	// tableIsQueryName: Spark names the sink's table after its query, so
	// the output's table becomes the query's name.
	tableIsQueryName bool
}

// streamSources are the streaming formats execd reads, in the order
// messages list them.
var streamSources = []streamSourceFormat{
	{name: "kafka", resolve: kafkaSource, readsBack: []string{"kafka"}, readBack: func(src *StreamSource) { src.Options = kafkaReadBack(src.Options) }},
	{name: "kinesis", resolve: sparkSource("kinesis")},
	{name: "delta_stream", resolve: deltaStreamSource, readsBack: []string{"delta"}, readBack: func(src *StreamSource) { src.Format = "delta" }},
	{name: "file_stream", resolve: fileStreamSource, readsBack: []string{"parquet", "json", "csv"}},
	{name: "socket", resolve: sparkSource("socket")},
	{name: "rate", resolve: sparkSource("rate")},
	{name: "memory", resolve: func(r *resolver, f string, _ *config.Map, _ *StreamSource) {
		r.add(f+".format", problem.CodeInvalidFormat,
			"a memory stream exists only inside one JVM program and cannot be read through Spark Connect; use rate for a test source")
	}},
}

// streamSinks are the streaming formats execd writes, in the order
// messages list them.
var streamSinks = []streamSinkFormat{
	{name: "kafka", check: func(r *resolver, f string, sink StreamSink) { r.checkKafkaSink(f, "a kafka sink", sink.Options) }},
	{name: "memory", tableIsQueryName: true},
	{name: "console"},
	{name: "delta", check: fileSink},
	{name: "parquet", check: fileSink},
	{name: "json", check: fileSink},
	{name: "csv", check: fileSink},
	// tauro writes foreachBatch; formats are matched lowercased.
	{name: "foreachbatch", read: foreachBatchSink},
}

// sourceFormat and sinkFormat find a format's entry; nil when there is
// none.
func sourceFormat(name string) *streamSourceFormat {
	for i := range streamSources {
		if streamSources[i].name == name {
			return &streamSources[i]
		}
	}
	return nil
}

func sinkFormat(name string) *streamSinkFormat {
	for i := range streamSinks {
		if streamSinks[i].name == name {
			return &streamSinks[i]
		}
	}
	return nil
}

func streamSourceNames() []string {
	out := make([]string, len(streamSources))
	for i, s := range streamSources {
		out[i] = s.name
	}
	return out
}

func streamSinkNames() []string {
	out := make([]string, len(streamSinks))
	for i, s := range streamSinks {
		out[i] = s.name
	}
	return out
}

// defaultCompatibility is tauro's default compatibility_map: each batch
// output format and the streaming formats that read it.
func defaultCompatibility() map[string][]string {
	out := map[string][]string{}
	for _, s := range streamSources {
		for _, batch := range s.readsBack {
			out[batch] = append(out[batch], s.name)
		}
	}
	return out
}

// sparkSource passes the format to Spark as named, its options as written.
func sparkSource(format string) func(*resolver, string, *config.Map, *StreamSource) {
	return func(_ *resolver, _ string, _ *config.Map, src *StreamSource) { src.Format = format }
}

func kafkaSource(r *resolver, f string, _ *config.Map, src *StreamSource) {
	src.Format = "kafka"
	r.checkKafkaSource(f, src.Options)
}

func deltaStreamSource(r *resolver, f string, _ *config.Map, src *StreamSource) {
	src.Format = "delta"
	if src.Path == "" {
		r.add(f+".path", problem.CodeRequired, "a delta_stream input needs the path of the Delta table it follows")
	}
}

// fileStreamFormats are the file formats a file_stream may read.
var fileStreamFormats = []string{"parquet", "csv", "json", "orc", "text"}

func fileStreamSource(r *resolver, f string, m *config.Map, src *StreamSource) {
	fileFormat := strings.ToLower(firstText(m, "file_format"))
	if fileFormat == "" {
		fileFormat = strings.ToLower(src.Options["format"])
	}
	delete(src.Options, "format")
	if fileFormat == "" {
		fileFormat = "parquet"
	}
	if !containsString(fileStreamFormats, fileFormat) {
		r.add(f+".file_format", problem.CodeInvalidFormat, "a file_stream reads %s files, not %s", strings.Join(fileStreamFormats, ", "), q(fileFormat))
	}
	src.Format = fileFormat
	if src.Path == "" {
		r.add(f+".path", problem.CodeRequired, "a file_stream input needs the path of the folder new files arrive in")
	}
	if src.Schema == "" && fileFormat != "parquet" && fileFormat != "text" && !strings.EqualFold(src.Options["inferSchema"], "true") {
		r.add(f+".schema", problem.CodeRequired,
			"a %s file_stream needs a schema (DDL, e.g. \"id INT, at TIMESTAMP\"): Spark does not infer the schema of a stream", fileFormat)
	}
}

// checkKafkaSource applies Kafka's own rules before Spark is asked: the
// brokers, and exactly one way of choosing topics.
func (r *resolver) checkKafkaSource(f string, opts map[string]string) {
	if opts["kafka.bootstrap.servers"] == "" {
		r.add(f+".options.kafka.bootstrap.servers", problem.CodeRequired,
			"a kafka input needs options.kafka.bootstrap.servers, the brokers as host:port[,host:port]")
	}
	var set []string
	for _, k := range []string{"subscribe", "subscribePattern", "assign"} {
		if opts[k] != "" {
			set = append(set, k)
		}
	}
	if len(set) != 1 {
		r.add(f+".options", problem.CodeInvalidValue,
			"a kafka input takes exactly one of subscribe, subscribePattern or assign; it has %d (%s)", len(set), strings.Join(set, ", "))
	}
}

// kafkaReadBack is how a stream reads the topic a batch node writes with
// options out: the same brokers and client settings, subscribed to the
// topic, from its first record on the query's first start (later starts
// resume from the checkpoint), so the records the batch node wrote before
// the query started are read too.
func kafkaReadBack(out map[string]string) map[string]string {
	opts := map[string]string{"subscribe": out["topic"], "startingOffsets": "earliest"}
	for k, v := range out {
		if strings.HasPrefix(k, "kafka.") {
			opts[k] = v
		}
	}
	return opts
}

// fileSink checks that a file sink says where to write.
func fileSink(r *resolver, f string, sink StreamSink) {
	if sink.Path == "" && sink.Table == "" {
		r.add(f+".path", problem.CodeRequired, "a %s sink needs a path (or a table_name)", sink.Format)
	}
}

// checkKafkaSink checks the options Spark's Kafka writer needs of an output
// (what names it in messages): the brokers and the topic. Spark could take
// the topic from a topic column instead; tauro names it in the config.
func (r *resolver) checkKafkaSink(f, what string, opts map[string]string) {
	if opts["kafka.bootstrap.servers"] == "" {
		r.add(f+".options.kafka.bootstrap.servers", problem.CodeRequired,
			"%s needs options.kafka.bootstrap.servers, the brokers as host:port[,host:port]", what)
	}
	if opts["topic"] == "" {
		r.add(f+".options.topic", problem.CodeRequired, "%s needs options.topic, the topic it writes to", what)
	}
}

// foreachBatchSink reads a foreachBatch output's batch_function, tauro's
// {module, function}: the function Spark calls with each micro-batch and
// its id. That it imports and takes (batch_df, batch_id) is the Python
// worker's check (engine.FunctionChecker), as for node functions.
func foreachBatchSink(r *resolver, f string, m *config.Map, sink *StreamSink) {
	f += ".batch_function"
	const form = "batch_function: {module: my_package.sinks, function: upsert}, a function def upsert(batch_df, batch_id) that Spark calls once per micro-batch"
	v, _ := m.Get("batch_function")
	if v == nil {
		r.add(f, problem.CodeRequired, "a foreachBatch output needs %s", form)
		return
	}
	bm, ok := v.(*config.Map)
	if !ok {
		r.add(f, problem.CodeInvalidType, "batch_function must be a mapping: %s", form)
		return
	}
	fn := BatchFunction{Module: text(bm, "module"), Function: text(bm, "function"), Field: f}
	if fn.Module == "" {
		r.add(f+".module", problem.CodeRequired, "batch_function needs module, the dotted module its function is in (%s)", form)
	}
	if fn.Function == "" {
		r.add(f+".function", problem.CodeRequired, "batch_function needs function, the function's name in its module (%s)", form)
	}
	if fn.Module != "" && fn.Function != "" {
		sink.BatchFunction = &fn
	}
}
