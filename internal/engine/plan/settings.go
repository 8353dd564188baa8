package plan

import (
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
)

// Settings are the typed global settings. Defaults follow tauro where tauro
// has one (4 parallel nodes, 3 retries 5 s apart, 30-minute node timeout).
type Settings struct {
	InputPath, OutputPath string
	// Mode is tauro's execution mode (local, databricks, distributed...); it
	// decides whether output paths carry the environment.
	Mode  string
	Layer string
	// StartDate and EndDate are the defaults for a request without dates.
	StartDate, EndDate string
	// RequiresDates is nil when not set: then batch, ml and hybrid
	// pipelines require dates and streaming ones do not, as in tauro.
	RequiresDates    *bool
	MaxParallelNodes int
	// Retry policy and timeout for every node that does not set its own.
	MaxRetries    int
	RetryDelay    time.Duration
	RetryBackoff  float64
	RetryMaxDelay time.Duration
	// NodeTimeout is node_timeout_seconds; 0 means no limit.
	NodeTimeout         time.Duration
	SparkConfig         map[string]string
	FormatPolicy        FormatPolicy
	DefaultHyperparams  map[string]any
	DefaultModelVersion string
	// AllowedModulePrefixes, when set, confines Python nodes to modules
	// under these packages (tauro's allowed_module_prefixes).
	AllowedModulePrefixes []string
	// BreakerThreshold is circuit_breaker_threshold: a run stops after this
	// many node failures in a row.
	BreakerThreshold int
	// MLOps is the mlops block: where ML runs are tracked.
	MLOps MLOps
	// EarlyCalls is early_function_calls: a batch Python node's function
	// may be called once the results it reads exist, while its upstreams
	// still write their outputs; its result is used only when they succeed.
	EarlyCalls bool
	// ParallelSourceReads is parallel_source_reads: a batch run's sources
	// (a CSV or JSON one's schema inference scans it) are read at once
	// rather than one at a time, the critical path's first.
	ParallelSourceReads bool
}

// Defaults for settings that are not configured.
const (
	DefaultMaxWorkers    = 4
	DefaultMaxRetries    = 3
	DefaultRetryDelay    = 5 * time.Second
	DefaultRetryBackoff  = 2.0
	DefaultRetryMaxDelay = 5 * time.Minute
	DefaultNodeTimeout   = 30 * time.Minute
	DefaultBreaker       = 5
	// retryJitter spreads retries of nodes that failed together.
	retryJitter = 0.2
	// maxRetriesLimit stops a typo (max_retries: 1000000) from keeping a
	// failing node alive for days.
	maxRetriesLimit = 100
	// maxParallelLimit matches the contract's cap on max_workers.
	maxParallelLimit = 256
)

const globalField = "global_settings."

// ParseSettings reads the global settings, reporting every unusable value
// with its field ("global_settings.max_retries") and falling back to the
// default for it so that later checks still run.
func ParseSettings(global *config.Map) (Settings, problem.List) {
	s := Settings{
		MaxParallelNodes: DefaultMaxWorkers,
		MaxRetries:       DefaultMaxRetries,
		RetryDelay:       DefaultRetryDelay,
		RetryBackoff:     DefaultRetryBackoff,
		RetryMaxDelay:    DefaultRetryMaxDelay,
		NodeTimeout:      DefaultNodeTimeout,
		FormatPolicy:     DefaultFormatPolicy(),
		BreakerThreshold: DefaultBreaker,
		EarlyCalls:       true,
	}
	var probs problem.List
	str := func(key string, dst *string) {
		v, ok := global.Get(key)
		if !ok || v == nil {
			return
		}
		t, ok := scalarString(v)
		if !ok {
			probs.Add(globalField+key, problem.CodeInvalidType, "%s must be a string, got %s", key, typeName(v))
			return
		}
		*dst = t
	}
	str("input_path", &s.InputPath)
	str("output_path", &s.OutputPath)
	str("mode", &s.Mode)
	str("layer", &s.Layer)
	str("start_date", &s.StartDate)
	str("end_date", &s.EndDate)
	str("default_model_version", &s.DefaultModelVersion)

	if v, ok := global.Get("requires_dates"); ok && v != nil {
		if b, ok := asBool(v); ok {
			s.RequiresDates = &b
		} else {
			probs.Add(globalField+"requires_dates", problem.CodeInvalidType, "requires_dates must be true or false, got %s", typeName(v))
		}
	}
	if v, ok := global.Get("early_function_calls"); ok && v != nil {
		if b, ok := asBool(v); ok {
			s.EarlyCalls = b
		} else {
			probs.Add(globalField+"early_function_calls", problem.CodeInvalidType,
				"early_function_calls must be true (call a Python node's function while its upstreams write) or false (after they succeed), got %s", typeName(v))
		}
	}
	if v, ok := global.Get("parallel_source_reads"); ok && v != nil {
		if b, ok := asBool(v); ok {
			s.ParallelSourceReads = b
		} else {
			probs.Add(globalField+"parallel_source_reads", problem.CodeInvalidType,
				"parallel_source_reads must be true (read a run's sources at once) or false (one at a time, the critical path's first), got %s", typeName(v))
		}
	}
	if v, ok := global.Get("max_parallel_nodes"); ok && v != nil {
		if n, ok := asInt(v); ok && n >= 1 && n <= maxParallelLimit {
			s.MaxParallelNodes = n
		} else {
			probs.Add(globalField+"max_parallel_nodes", problem.CodeInvalidValue,
				"max_parallel_nodes must be a whole number from 1 to %d", maxParallelLimit)
		}
	}
	if v, ok := global.Get("circuit_breaker_threshold"); ok && v != nil {
		if n, ok := asInt(v); ok && n >= 1 && n <= 1000 {
			s.BreakerThreshold = n
		} else {
			probs.Add(globalField+"circuit_breaker_threshold", problem.CodeInvalidValue,
				"circuit_breaker_threshold must be a whole number from 1 to 1000 (node failures in a row that stop a run), got %s", describe(v))
		}
	}
	rp := retryPolicy{s.MaxRetries, s.RetryDelay, s.RetryBackoff, s.RetryMaxDelay, s.NodeTimeout}
	rp.read(func(key string) (any, bool, string) {
		v, ok := global.Get(key)
		return v, ok, key
	}, func(key string) string { return globalField + key },
		"node_timeout_seconds", func() string { return "" }, &probs)
	s.MaxRetries, s.RetryDelay, s.RetryBackoff, s.RetryMaxDelay, s.NodeTimeout =
		rp.maxRetries, rp.delay, rp.backoff, rp.maxDelay, rp.timeout

	if v, ok := global.Get("spark_config"); ok {
		s.SparkConfig = sparkConfig(v, globalField+"spark_config", &probs)
	}
	if v, ok := global.Get("default_hyperparams"); ok && v != nil {
		if _, isMap := mapKeys(v); isMap {
			s.DefaultHyperparams, _ = config.Plain(v).(map[string]any)
		} else {
			probs.Add(globalField+"default_hyperparams", problem.CodeInvalidType,
				"default_hyperparams must be a mapping of name to value, got %s", typeName(v))
		}
	}
	if v, ok := global.Get("allowed_module_prefixes"); ok && v != nil {
		s.AllowedModulePrefixes = stringList(v, globalField+"allowed_module_prefixes", &probs)
	}
	if v, ok := global.Get("format_policy"); ok && v != nil {
		parseFormatPolicy(v, &s.FormatPolicy, &probs)
	}
	if v, ok := global.Get("mlops"); ok && v != nil {
		s.MLOps = parseMLOps(v, &probs)
	}
	return s, probs
}

// retryPolicy is the retry and timeout settings read at one level (global
// settings, or a node over the global values).
type retryPolicy struct {
	maxRetries int
	delay      time.Duration
	backoff    float64
	maxDelay   time.Duration
	timeout    time.Duration
}

// policy is the retry part as a retry.Policy value. A delay above the
// maximum raises the maximum: the delay was asked for, the cap defaulted.
func (r retryPolicy) policy() retry.Policy {
	return retry.Policy{
		Initial:     r.delay,
		Coefficient: r.backoff,
		Max:         max(r.maxDelay, r.delay),
		MaxAttempts: r.maxRetries + 1,
		Jitter:      retryJitter,
	}
}

// read overrides the policy with the keys get finds. timeoutKey differs by
// level: tauro spells the global one node_timeout_seconds.
// read overrides the policy with the settings get finds. get returns a
// value, whether it is set and the key as written (nodes may use an alias);
// field gives a written key's path and who prefixes messages ("node 'a': ").
// Both are called only for a problem, keeping the common path free of
// string building.
func (r *retryPolicy) read(get func(key string) (any, bool, string), field func(key string) string,
	timeoutKey string, who func() string, probs *problem.List) {
	if v, ok, key := get("max_retries"); ok && v != nil {
		if n, ok := asInt(v); ok && n >= 0 && n <= maxRetriesLimit {
			r.maxRetries = n
		} else {
			probs.Add(field(key), problem.CodeInvalidValue, "%s%s must be a whole number from 0 to %d, got %s", who(), key, maxRetriesLimit, describe(v))
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok, key := get(name); ok && v != nil {
			if d, ok := asDuration(v); ok {
				*dst = d
			} else {
				probs.Add(field(key), problem.CodeInvalidValue,
					"%s%s must be a number of seconds (e.g. 30) or a duration like \"90s\" or \"5 minutes\", at most a year; got %s", who(), key, describe(v))
			}
		}
	}
	dur("retry_delay", &r.delay)
	dur("retry_max_delay", &r.maxDelay)
	dur(timeoutKey, &r.timeout)
	if v, ok, key := get("retry_backoff"); ok && v != nil {
		if f, ok := asFloat(v); ok && f >= 1 && f <= 10 {
			r.backoff = f
		} else {
			probs.Add(field(key), problem.CodeInvalidValue, "%s%s must be a number from 1 (constant delay) to 10, got %s", who(), key, describe(v))
		}
	}
}

// sparkConfig reads a spark_config mapping; Spark takes every value as text,
// so numbers and booleans are rendered as Spark would read them.
func sparkConfig(v any, field string, probs *problem.List) map[string]string {
	if v == nil {
		return nil
	}
	keys, ok := mapKeys(v)
	if !ok {
		probs.Add(field, problem.CodeInvalidType, "spark_config must be a mapping of Spark property to value, got %s", typeName(v))
		return nil
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		e, _ := mapGet(v, k)
		s, ok := scalarString(e)
		if !ok {
			probs.Add(field+"."+k, problem.CodeInvalidType, "Spark property %s must be a string, number or boolean, got %s", q(k), typeName(e))
			continue
		}
		out[k] = s
	}
	return out
}

// stringList reads a list of strings (or one string).
func stringList(v any, field string, probs *problem.List) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				probs.Add(field+"["+itoa(i)+"]", problem.CodeInvalidType, "expected a string, got %s", typeName(e))
				continue
			}
			out = append(out, s)
		}
		return out
	}
	probs.Add(field, problem.CodeInvalidType, "expected a list of strings, got %s", typeName(v))
	return nil
}

// parseFormatPolicy applies the format_policy overrides onto p.
func parseFormatPolicy(v any, p *FormatPolicy, probs *problem.List) {
	const field = globalField + "format_policy"
	if _, ok := mapKeys(v); !ok {
		probs.Add(field, problem.CodeInvalidType, "format_policy must be a mapping, got %s", typeName(v))
		return
	}
	lower := func(xs []string) []string {
		for i, x := range xs {
			xs[i] = strings.ToLower(strings.TrimSpace(x))
		}
		return xs
	}
	for _, l := range []struct {
		key string
		dst *[]string
	}{
		{"supported_inputs", &p.StreamingInputs},
		{"supported_outputs", &p.StreamingOutputs},
		{"batch_inputs", &p.BatchInputs},
		{"batch_outputs", &p.BatchOutputs},
	} {
		if e, ok := mapGet(v, l.key); ok && e != nil {
			*l.dst = lower(stringList(e, field+"."+l.key, probs))
		}
	}
	if e, ok := mapGet(v, "compatibility_map"); ok && e != nil {
		keys, ok := mapKeys(e)
		if !ok {
			probs.Add(field+".compatibility_map", problem.CodeInvalidType,
				"compatibility_map must map a batch output format to a list of streaming input formats, got %s", typeName(e))
			return
		}
		m := make(map[string][]string, len(keys))
		for _, k := range keys {
			list, _ := mapGet(e, k)
			m[strings.ToLower(k)] = lower(stringList(list, field+".compatibility_map."+k, probs))
		}
		p.Compatibility = m
	}
}
