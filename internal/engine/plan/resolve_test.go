package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// salesProject is a small batch pipeline in tauro's format:
// extract -> transform -> load, with report on the side.
const salesProject = `
global_settings:
  input_path: /data/in
  output_path: /data/out
  mode: local
  max_parallel_nodes: 8
  max_retries: 1
  retry_delay: 2
  node_timeout_seconds: 600
  start_date: "2025-01-01"
  end_date: "2025-01-31"
  default_hyperparams: {alpha: 1, beta: 2}
  default_model_version: v1
  spark_config: {spark.sql.shuffle.partitions: 200, spark.sql.adaptive.enabled: true}
pipelines:
  daily:
    type: batch
    nodes: [extract, transform, load, report]
    hyperparams: {beta: 3}
    model_version: v2
    spark_config: {spark.sql.shuffle.partitions: "300"}
nodes:
  extract:
    function: nodes.sales.extract
    input: [raw_sales]
    output: [bronze.sales.raw]
  transform:
    module: nodes.sales
    function: clean
    input: [bronze/sales/raw, customers]
    output: [silver.sales.clean]
    max_retries: 5
    timeout_seconds: 60
  load:
    sql: "SELECT * FROM silver_sales_clean"
    input: [silver.sales.clean]
    output: [gold.sales.daily]
    description: publish the daily table
  report:
    function: {module: nodes.reports, function: daily}
    dependencies: [load]
    hyperparams: {top: 10}
input:
  raw_sales: {format: csv, filepath: /data/raw/sales.csv}
  customers: {format: delta, filepath: /data/customers}
output:
  bronze.sales.raw: {format: parquet, write_mode: overwrite}
  silver.sales.clean: {format: delta, write_mode: append}
  gold/sales/daily: {format: delta}
`

func TestResolve_BuildsThePlanOfAValidPipeline(t *testing.T) {
	pl := mustResolve(t, project(t, salesProject), Request{Pipeline: "daily"})

	if got := names(pl.Nodes); !equal(got, []string{"extract", "transform", "load", "report"}) {
		t.Errorf("nodes %q", got)
	}
	if !equal(pl.Plan.Order, []string{"extract", "transform", "load", "report"}) {
		t.Errorf("order %q", pl.Plan.Order)
	}
	if FormatDate(pl.StartDate) != "2025-01-01" || FormatDate(pl.EndDate) != "2025-01-31" {
		t.Errorf("dates %q..%q; want the global defaults", pl.StartDate, pl.EndDate)
	}
	if pl.MaxWorkers != 8 {
		t.Errorf("max workers %d; want global max_parallel_nodes 8", pl.MaxWorkers)
	}
	if pl.ModelVersion != "v2" {
		t.Errorf("model version %q; want the pipeline's", pl.ModelVersion)
	}
	if pl.Hyperparams["alpha"] != int64(1) || pl.Hyperparams["beta"] != int64(3) {
		t.Errorf("hyperparams %v; want global defaults overridden by the pipeline", pl.Hyperparams)
	}
	if pl.SparkConfig["spark.sql.shuffle.partitions"] != "300" || pl.SparkConfig["spark.sql.adaptive.enabled"] != "true" {
		t.Errorf("spark config %v", pl.SparkConfig)
	}

	byName := map[string]*Node{}
	for _, n := range pl.Nodes {
		byName[n.Name] = n
	}
	ex, tr, ld, rp := byName["extract"], byName["transform"], byName["load"], byName["report"]
	if ex.Kind != KindPython || ex.Module != "nodes.sales" || ex.Function != "extract" {
		t.Errorf("extract: %s %s.%s; want the dotted function split at its last dot", ex.Kind, ex.Module, ex.Function)
	}
	if rp.Module != "nodes.reports" || rp.Function != "daily" {
		t.Errorf("report: %s.%s; want tauro's function mapping form read", rp.Module, rp.Function)
	}
	if ld.Kind != KindSQL || ld.SQL == "" || ld.Description != "publish the daily table" {
		t.Errorf("load: kind %s sql %q description %q", ld.Kind, ld.SQL, ld.Description)
	}
	if ex.MaxRetries() != 1 || ex.Retry.Initial != 2*time.Second || ex.Timeout != 10*time.Minute {
		t.Errorf("extract retry policy %d/%v/%v; want the global one", ex.MaxRetries(), ex.Retry.Initial, ex.Timeout)
	}
	if tr.MaxRetries() != 5 || tr.Timeout != time.Minute {
		t.Errorf("transform retry policy %d/%v; want the node's own", tr.MaxRetries(), tr.Timeout)
	}
	if ex.Retry.Coefficient != DefaultRetryBackoff || ex.Retry.Max != DefaultRetryMaxDelay {
		t.Errorf("extract backoff %v max %v; want defaults", ex.Retry.Coefficient, ex.Retry.Max)
	}
	if rp.Hyperparams["top"] != int64(10) {
		t.Errorf("report hyperparams %v", rp.Hyperparams)
	}
	if len(ld.OutputKeys) != 1 || ld.OutputKeys[0].Table != "daily" {
		t.Errorf("load output keys %v", ld.OutputKeys)
	}
	if !equal(pl.Plan.Batch, pl.Plan.Order) || len(pl.Plan.Streaming) != 0 {
		t.Errorf("batch %q streaming %q", pl.Plan.Batch, pl.Plan.Streaming)
	}
}

func TestResolve_InputWrittenByAnotherNodeIsADependency(t *testing.T) {
	pl := mustResolve(t, project(t, salesProject), Request{Pipeline: "daily"})
	tr := pl.Nodes[1]
	// transform reads "bronze/sales/raw", which extract writes as
	// "bronze.sales.raw": the same table in the other spelling.
	if !equal(tr.Dependencies, []string{"extract"}) {
		t.Errorf("transform depends on %q; want [extract]", tr.Dependencies)
	}
	if tr.ProducedBy["bronze/sales/raw"] != "extract" || len(tr.ProducedBy) != 1 {
		t.Errorf("transform ProducedBy %v; customers comes from the input config", tr.ProducedBy)
	}
	if ld := pl.Nodes[2]; !equal(ld.Dependencies, []string{"transform"}) {
		t.Errorf("load depends on %q; want [transform]", ld.Dependencies)
	}
}

func TestResolve_DependenciesAreDeduplicatedInDeclarationOrder(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines:
  p: {nodes: [a, b, c], requires_dates: false}
nodes:
  a: {function: m.f, output: [x.y.a]}
  b: {function: m.f}
  c: {function: m.f, input: [x.y.a], dependencies: [b, a, {b: {}}]}
output:
  x.y.a: {format: parquet}
`), Request{Pipeline: "p"})
	if got := pl.Nodes[2].Dependencies; !equal(got, []string{"a", "b"}) {
		t.Errorf("c depends on %q; want [a b]", got)
	}
}

func TestResolve_NodeReadingItsOwnOutputDoesNotDependOnItself(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines:
  p: {nodes: [merge], requires_dates: false}
nodes:
  merge: {function: m.f, input: [gold.sales.state], output: [gold.sales.state]}
output:
  gold.sales.state: {format: delta, write_mode: overwrite}
`), Request{Pipeline: "p"})
	if n := pl.Nodes[0]; len(n.Dependencies) != 0 {
		t.Errorf("merge depends on %q", n.Dependencies)
	}
}

func TestResolve_UnknownDependencyNamesTheFieldAndTheFix(t *testing.T) {
	_, err := Resolve(project(t, `
pipelines:
  p: {nodes: [a, b], requires_dates: false}
nodes:
  a: {function: m.f}
  b: {function: m.f, dependencies: [a, c, other]}
  other: {function: m.f}
`), Request{Pipeline: "p"})
	l := problems(t, err)
	wantProblem(t, l, problem.CodeUnknownDependency, "nodes.b.dependencies[1]", "node 'b' depends on 'c' which is not in the pipeline")
	wantProblem(t, l, problem.CodeUnknownDependency, "nodes.b.dependencies[2]", "defined in the nodes config but not listed in pipeline 'p'")
}

func TestResolve_CycleErrorNamesTheFieldOfItsFirstEdge(t *testing.T) {
	_, err := Resolve(project(t, `
pipelines:
  p: {nodes: [a, b, c, d, e], requires_dates: false}
nodes:
  a: {function: m.f, dependencies: [c]}
  b: {function: m.f, dependencies: [a]}
  c: {function: m.f, dependencies: [b]}
  d: {function: m.f, dependencies: [e]}
  e: {function: m.f, dependencies: [d]}
`), Request{Pipeline: "p"})
	l := problems(t, err)
	// Two separate cycles, each reported, each from its first-declared node.
	wantProblem(t, l, problem.CodeCycle, "nodes.a.dependencies[0]", "a -> c -> b -> a")
	wantProblem(t, l, problem.CodeCycle, "nodes.d.dependencies[0]", "d -> e -> d")
}

func TestResolve_CycleThroughInputsPointsAtTheInput(t *testing.T) {
	_, err := Resolve(project(t, `
pipelines:
  p: {nodes: [a, b], requires_dates: false}
nodes:
  a: {function: m.f, input: [s.t.b], output: [s.t.a]}
  b: {function: m.f, input: [s.t.a], output: [s.t.b]}
output:
  s.t.a: {format: parquet}
  s.t.b: {format: parquet}
`), Request{Pipeline: "p"})
	wantProblem(t, problems(t, err), problem.CodeCycle, "nodes.a.input[0]", "a -> b -> a")
}

func TestResolve_ReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Resolve(project(t, `
global_settings:
  max_parallel_nodes: 0
pipelines:
  p:
    nodes: [a, b, {name: c, retries: many}, a, ghost]
nodes:
  a: {function: not-a-module.f, output: [bad key]}
  b: {function: m.f, input: [nowhere], dependencies: [zz], output: [s.t.b]}
  c: {function: m.f, streaming: {trigger: {type: processing_time, interval: "1 year"}}}
output:
  s.t.b: {format: parquet, write_mode: upsert}
`), Request{Pipeline: "p", StartDate: "2025-02-30", EndDate: "31/01/2025", Select: []string{"nope"}, MaxWorkers: -1})
	l := problems(t, err)
	for _, w := range []struct{ code, field, text string }{
		{problem.CodeInvalidValue, "global_settings.max_parallel_nodes", "max_parallel_nodes"},
		{problem.CodeInvalidValue, "max_workers", "max_workers"},
		{problem.CodeInvalidValue, "pipelines.p.nodes[3]", "listed twice"},
		{problem.CodeMissingNodeConfig, "pipelines.p.nodes", "missing node configurations: ghost"},
		{problem.CodeInvalidValue, "pipelines.p.nodes[2].retries", "node 'c': retries"},
		{problem.CodeInvalidFunction, "nodes.a.function", "not a python identifier"},
		{problem.CodeInvalidOutputKey, "nodes.a.output[0]", "output key"},
		{problem.CodeUnknownInput, "nodes.b.input[0]", "neither in the input config"},
		{problem.CodeUnknownDependency, "nodes.b.dependencies[0]", "'zz'"},
		{problem.CodeInvalidValue, "output.s.t.b.write_mode", "write_mode"},
		{problem.CodeInvalidValue, "nodes.c.streaming.trigger.interval", "unknown unit 'year'"},
		{problem.CodeIncompatible, "pipelines.p.type", "set type: hybrid"},
		{problem.CodeInvalidDate, "start_date", "not a valid date"},
		{problem.CodeInvalidDate, "end_date", "yyyy-mm-dd"},
		{problem.CodeInvalidSelector, "select[0]", "no node 'nope'"},
	} {
		wantProblem(t, l, w.code, w.field, w.text)
	}
}

func TestResolve_UnknownPipelineListsTheAvailableOnes(t *testing.T) {
	_, err := Resolve(project(t, salesProject), Request{Pipeline: "weekly"})
	wantProblem(t, problems(t, err), problem.CodeUnknownPipeline, "pipeline", "available: daily")
}

func TestResolve_NodeKinds(t *testing.T) {
	for _, tc := range []struct {
		name, node       string
		module, function string
		kind, code, text string
	}{
		{name: "dotted function", node: `{function: pkg.mod.fn}`, kind: KindPython, module: "pkg.mod", function: "fn"},
		{name: "module and function", node: `{module: pkg.mod, function: fn}`, kind: KindPython, module: "pkg.mod", function: "fn"},
		{name: "module repeated in function", node: `{module: pkg.mod, function: pkg.mod.fn}`, kind: KindPython, module: "pkg.mod", function: "fn"},
		{name: "function mapping", node: `{function: {module: pkg.mod, function: fn}}`, kind: KindPython, module: "pkg.mod", function: "fn"},
		{name: "sql", node: `{sql: "select 1"}`, kind: KindSQL},
		{name: "nothing to run", node: `{description: idle}`, code: problem.CodeInvalidFunction, text: "has nothing to run"},
		{name: "sql and function", node: `{sql: "select 1", function: a.b}`, code: problem.CodeInvalidFunction, text: "both sql and a python function"},
		{name: "empty sql", node: `{sql: "  "}`, code: problem.CodeInvalidValue, text: "sql must be the text"},
		{name: "function without module", node: `{function: fn}`, code: problem.CodeInvalidFunction, text: "set module"},
		{name: "module without function", node: `{module: pkg.mod}`, code: problem.CodeInvalidFunction, text: "but no function"},
		{name: "dotted function with other module", node: `{module: a, function: b.c}`, code: problem.CodeInvalidFunction, text: "plain name"},
		{name: "invalid module", node: `{function: my-pkg.fn}`, code: problem.CodeInvalidFunction, text: "'my-pkg' is not a python identifier"},
		{name: "keyword", node: `{function: pkg.class.fn}`, code: problem.CodeInvalidFunction, text: "'class'"},
		{name: "empty module part", node: `{function: pkg..fn}`, code: problem.CodeInvalidFunction, text: "empty part"},
		{name: "invalid function", node: `{module: pkg, function: 1fn}`, code: problem.CodeInvalidFunction, text: "not a valid python function name"},
		{name: "path traversal", node: `{function: ../../etc.fn}`, code: problem.CodeInvalidFunction, text: "not a valid dotted module path"},
		{name: "function of wrong type", node: `{function: 5}`, code: problem.CodeInvalidType, text: "function must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := Resolve(project(t, `
pipelines:
  p: {nodes: [n], requires_dates: false}
nodes:
  n: `+tc.node+`
`), Request{Pipeline: "p"})
			if tc.code != "" {
				wantProblem(t, problems(t, err), tc.code, "", tc.text)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := pl.Nodes[0]
			if n.Kind != tc.kind || n.Module != tc.module || n.Function != tc.function {
				t.Errorf("got %s %q %q; want %s %q %q", n.Kind, n.Module, n.Function, tc.kind, tc.module, tc.function)
			}
		})
	}
}

func TestResolve_AllowedModulePrefixesConfinePythonNodes(t *testing.T) {
	_, err := Resolve(project(t, `
global_settings:
  allowed_module_prefixes: ["nodes.", pipelines]
  requires_dates: false
pipelines:
  p: {nodes: [ok1, ok2, bad1, bad2]}
nodes:
  ok1: {function: nodes.sales.f}
  ok2: {module: pipelines, function: f}
  bad1: {function: os.system}
  bad2: {function: nodes_extra.f}
`), Request{Pipeline: "p"})
	l := problems(t, err)
	if len(l) != 2 {
		t.Fatalf("want exactly the two outside modules; got:\n%s", dump(l))
	}
	wantProblem(t, l, problem.CodeInvalidFunction, "nodes.bad1.function", "outside the allowed modules")
	wantProblem(t, l, problem.CodeInvalidFunction, "nodes.bad2.function", "outside the allowed modules")
}

func TestResolve_PipelineEntryOverridesTheNodeForThatPipeline(t *testing.T) {
	p := project(t, `
pipelines:
  p:
    requires_dates: false
    nodes:
      - {name: a, retries: 7}
      - b: {timeout_seconds: 5, dependencies: [a]}
nodes:
  a: {function: m.f, max_retries: 1}
  b: {function: m.f}
`)
	pl := mustResolve(t, p, Request{Pipeline: "p"})
	if a := pl.Nodes[0]; a.MaxRetries() != 7 {
		t.Errorf("a retries %d; want the entry's 7", a.MaxRetries())
	}
	if b := pl.Nodes[1]; b.Timeout != 5*time.Second || !equal(b.Dependencies, []string{"a"}) {
		t.Errorf("b timeout %v deps %q", b.Timeout, b.Dependencies)
	}
	// The override does not leak into the shared node configuration.
	if _, ok := p.Nodes.Values["a"].(interface{ Get(string) (any, bool) }).Get("retries"); ok {
		t.Error("override written into the nodes config")
	}

	_, err := Resolve(project(t, `
pipelines:
  p:
    requires_dates: false
    nodes: [{b: {dependencies: [zz]}}]
nodes:
  b: {function: m.f}
`), Request{Pipeline: "p"})
	wantProblem(t, problems(t, err), problem.CodeUnknownDependency, "pipelines.p.nodes[0].dependencies[0]", "'zz'")
}

func TestResolve_NodeNamesAreChecked(t *testing.T) {
	for _, name := range []string{"+a", "a+", "a b", "a/b", "..", strings.Repeat("x", 300)} {
		t.Run(name[:min(len(name), 10)], func(t *testing.T) {
			p := project(t, `pipelines: {p: {requires_dates: false}}`)
			pipe, _ := p.Pipelines.Get("p")
			pipe.(interface{ Set(string, any) }).Set("nodes", []any{name})
			_, err := Resolve(p, Request{Pipeline: "p"})
			wantProblem(t, problems(t, err), problem.CodeInvalidValue, "pipelines.p.nodes[0]", "node name")
		})
	}
}

func TestResolve_Dates(t *testing.T) {
	p := project(t, salesProject)
	pl := mustResolve(t, p, Request{Pipeline: "daily", StartDate: "2025-03-01", EndDate: "2025-03-01"})
	if FormatDate(pl.StartDate) != "2025-03-01" || FormatDate(pl.EndDate) != "2025-03-01" {
		t.Errorf("dates %s..%s; want the request's, which win over the defaults", pl.StartDate, pl.EndDate)
	}
	_, err := Resolve(p, Request{Pipeline: "daily", StartDate: "2025-03-02", EndDate: "2025-03-01"})
	wantProblem(t, problems(t, err), problem.CodeDateRange, "start_date", "must be on or before")
}

func TestResolve_StreamingPipelinesNeedNoDates(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines:
  s: {type: streaming, nodes: [ingest]}
nodes:
  ingest:
    input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: events}}
    output: {format: delta, path: /data/events}
`), Request{Pipeline: "s"})
	n := pl.Nodes[0]
	if !n.Streaming || n.Kind != KindPassthrough {
		t.Errorf("ingest streaming %v kind %s; want a streaming passthrough", n.Streaming, n.Kind)
	}
	if n.Trigger != defaultTrigger || n.OutputMode != "append" || n.Timeout != 0 {
		t.Errorf("trigger %+v mode %s timeout %v; want tauro's defaults and no timeout", n.Trigger, n.OutputMode, n.Timeout)
	}
	if !equal(pl.Plan.Streaming, []string{"ingest"}) || len(pl.Plan.Batch) != 0 {
		t.Errorf("split %q / %q", pl.Plan.Batch, pl.Plan.Streaming)
	}
}

func TestResolve_StreamingNodeSettings(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines:
  s: {type: streaming, nodes: [agg]}
nodes:
  agg:
    function: nodes.stream.agg
    input: [events]
    output: [stream.events.agg]
    timeout_seconds: 120
    streaming:
      trigger: {type: continuous, interval: "5  SECONDS"}
      output_mode: complete
      checkpoint_location: /chk/agg
input:
  events: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: events}}
output:
  stream.events.agg: {format: delta}
`), Request{Pipeline: "s"})
	n := pl.Nodes[0]
	if n.Trigger != (Trigger{TriggerContinuous, 5 * time.Second}) || n.OutputMode != "complete" || n.Checkpoint != "/chk/agg" {
		t.Errorf("trigger %+v mode %s checkpoint %s", n.Trigger, n.OutputMode, n.Checkpoint)
	}
	if n.Timeout != 2*time.Minute {
		t.Errorf("timeout %v; a streaming node keeps a timeout it sets", n.Timeout)
	}
}

func TestResolve_StreamingRules(t *testing.T) {
	for _, tc := range []struct {
		name, doc, code, field, text string
	}{
		{
			name: "batch pipeline with a streaming node",
			doc: `
pipelines: {p: {nodes: [s]}}
nodes: {s: {input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}, output: {format: console}}}`,
			code: problem.CodeIncompatible, field: "pipelines.p.type", text: "set type: hybrid",
		},
		{
			name: "streaming node without output",
			doc: `
pipelines: {p: {type: streaming, nodes: [s]}}
nodes: {s: {function: m.f, input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}}}`,
			code: problem.CodeRequired, field: "nodes.s.output", text: "needs a sink",
		},
		{
			name: "streaming node reading no stream",
			doc: `
pipelines: {p: {type: streaming, nodes: [s]}}
nodes: {s: {function: m.f, input: [static], output: {format: console}}}
input: {static: {format: parquet, filepath: /x}}`,
			code: problem.CodeRequired, field: "nodes.s.input", text: "reads no stream",
		},
		{
			name: "streaming false reading kafka",
			doc: `
pipelines: {p: {type: hybrid, nodes: [s]}}
nodes: {s: {function: m.f, streaming: false, input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}, output: {format: console}}}`,
			code: problem.CodeIncompatible, field: "nodes.s.streaming", text: "reads a stream",
		},
		{
			name: "passthrough with two inputs",
			doc: `
pipelines: {p: {type: streaming, nodes: [s]}}
nodes: {s: {input: [a, b], output: {format: console}}}
input: {a: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}, b: {format: rate}}`,
			code: problem.CodeInvalidFunction, field: "nodes.s", text: "add module and function",
		},
		{
			name: "continuous trigger without interval",
			doc: `
pipelines: {p: {type: streaming, nodes: [s]}}
nodes: {s: {input: {format: rate}, output: {format: console}, streaming: {trigger: {type: continuous}}}}`,
			code: problem.CodeRequired, field: "nodes.s.streaming.trigger.interval", text: "needs an interval",
		},
		{
			name: "stream reading orc written by a batch node",
			doc: `
pipelines: {p: {type: hybrid, nodes: [b, s]}}
nodes:
  b: {function: m.f, output: [a.b.c]}
  s: {function: m.g, streaming: true, input: [a.b.c], output: {format: console}}
output: {a.b.c: {format: orc}}`,
			code: problem.CodeIncompatible, field: "nodes.s.input[0]", text: "incompatible format",
		},
		{
			name: "batch node reading a stream's output",
			doc: `
pipelines: {p: {type: hybrid, nodes: [s, b]}}
nodes:
  s: {input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}, output: [a.b.c]}
  b: {function: m.f, streaming: false, input: [a.b.c]}
output: {a.b.c: {format: delta}}`,
			code: problem.CodeIncompatible, field: "nodes.b.input[0]", text: "cannot depend on streaming node 's'",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(project(t, tc.doc), dated("p"))
			wantProblem(t, problems(t, err), tc.code, tc.field, tc.text)
		})
	}
}

func TestResolve_NodeReadingAStreamsOutputIsStreaming(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines:
  h: {type: hybrid, nodes: [dim, events, joined]}
nodes:
  dim: {function: m.dim, output: [gold.dim.customers]}
  events: {input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}, output: [bronze.events.raw]}
  joined: {function: m.join, input: [bronze.events.raw, gold.dim.customers], output: {format: console}}
output:
  gold.dim.customers: {format: parquet}
  bronze.events.raw: {format: delta}
`), dated("h"))
	j := pl.Nodes[2]
	if !j.Streaming {
		t.Fatal("joined reads a stream's output but is not streaming")
	}
	if j.ReadAs["bronze.events.raw"] != "delta_stream" || j.ReadAs["gold.dim.customers"] != "file_stream" {
		t.Errorf("ReadAs %v", j.ReadAs)
	}
	if !equal(pl.Plan.Batch, []string{"dim"}) || !equal(pl.Plan.Streaming, []string{"events", "joined"}) {
		t.Errorf("split %q / %q", pl.Plan.Batch, pl.Plan.Streaming)
	}
}

func TestResolve_StreamReadingABatchOutputByKeyIsNotCheckedAgainstItsOtherStreams(t *testing.T) {
	// s names b explicitly and also reads b's output by key; the key is read
	// with file_stream, so s's kafka input has nothing to do with b.
	mustResolve(t, project(t, `
pipelines:
  h: {type: hybrid, nodes: [b, s]}
nodes:
  b: {function: m.f, output: [gold.t.b]}
  s: {function: m.g, input: [events, gold.t.b], dependencies: [b], output: {format: console}}
input:
  events: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}
output:
  gold.t.b: {format: parquet}
`), dated("h"))
}

func TestResolve_FormatPolicy(t *testing.T) {
	const nodes = `
nodes:
  a: {function: m.f, input: [raw], output: [s.t.a]}
  s: {input: [events], output: [s.t.s]}
input:
  raw: {format: csv, filepath: /x}
  events: {format: kinesis}
output:
  s.t.a: {format: json}
  s.t.s: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", topic: t}}
`
	// tauro's format_policy speaks of streaming formats only: restricting
	// supported_inputs must not touch a batch node reading csv.
	_, err := Resolve(project(t, `
global_settings:
  format_policy: {supported_inputs: [kafka], supported_outputs: [delta]}
pipelines: {p: {type: hybrid, nodes: [a, s]}}
`+nodes), dated("p"))
	l := problems(t, err)
	wantProblem(t, l, problem.CodeInvalidFormat, "input.events.format", "format_policy.supported_inputs (kafka)")
	wantProblem(t, l, problem.CodeInvalidFormat, "output.s.t.s.format", "format_policy.supported_outputs (delta)")
	if len(l) != 2 {
		t.Errorf("want only the two streaming problems; got:\n%s", dump(l))
	}

	_, err = Resolve(project(t, `
global_settings:
  format_policy: {batch_inputs: [parquet], batch_outputs: [parquet, delta]}
pipelines: {p: {type: hybrid, nodes: [a, s]}}
`+nodes), dated("p"))
	l = problems(t, err)
	wantProblem(t, l, problem.CodeInvalidFormat, "input.raw.format", "batch_inputs (parquet)")
	wantProblem(t, l, problem.CodeInvalidFormat, "output.s.t.a.format", "batch_outputs (parquet, delta)")

	_, err = Resolve(project(t, `
pipelines: {p: {nodes: [a]}}
nodes: {a: {function: m.f, input: [raw], output: [s.t.a]}}
input: {raw: {format: pickle, filepath: /x}}
output: {s.t.a: {format: avro}}
`), dated("p"))
	l = problems(t, err)
	wantProblem(t, l, problem.CodeInvalidFormat, "input.raw.format", "unknown input format 'pickle'")
	wantProblem(t, l, problem.CodeInvalidFormat, "output.s.t.a.format", "a batch node cannot write")
}

func TestResolve_InputAndOutputConfigEntries(t *testing.T) {
	_, err := Resolve(project(t, `
pipelines: {p: {nodes: [a, b]}}
nodes:
  a: {function: m.f, input: [nofile, noquery, nofmt, notmap], output: [s.t.a, s.t.missing]}
  b: {function: m.f, input: [a], output: [s.t.a]}
input:
  nofile: {format: parquet}
  noquery: {format: query}
  nofmt: {filepath: /x}
  notmap: /x
output:
  s.t.a: {format: parquet}
`), dated("p"))
	l := problems(t, err)
	wantProblem(t, l, problem.CodeRequired, "input.nofile.filepath", "needs a filepath")
	wantProblem(t, l, problem.CodeRequired, "input.noquery.query", "needs the query text")
	wantProblem(t, l, problem.CodeRequired, "input.nofmt.format", "needs a format")
	wantProblem(t, l, problem.CodeInvalidType, "input.notmap", "must be a mapping")
	wantProblem(t, l, problem.CodeUnknownOutput, "nodes.a.output[1]", "add s.t.missing: {format: parquet")
	wantProblem(t, l, problem.CodeUnknownInput, "nodes.b.input[0]", "use its output key 's.t.a'")
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.b.output[0]", "written by both 'a' and 'b'")
}

func TestResolve_MaxWorkers(t *testing.T) {
	p := project(t, salesProject)
	if pl := mustResolve(t, p, Request{Pipeline: "daily", MaxWorkers: 2}); pl.MaxWorkers != 2 {
		t.Errorf("max workers %d; want the request's 2", pl.MaxWorkers)
	}
	p.Global.Set("max_parallel_nodes", nil)
	if pl := mustResolve(t, p, Request{Pipeline: "daily"}); pl.MaxWorkers != DefaultMaxWorkers {
		t.Errorf("max workers %d; want the default %d", pl.MaxWorkers, DefaultMaxWorkers)
	}
}

func TestResolve_InterpolatedNumbersAreAccepted(t *testing.T) {
	// After ${VAR} interpolation numbers arrive as strings.
	pl := mustResolve(t, project(t, `
global_settings: {max_retries: "2", retry_delay: "1.5", node_timeout_seconds: "90s", max_parallel_nodes: "3", requires_dates: "false"}
pipelines: {p: {nodes: [a]}}
nodes: {a: {function: m.f, retry_backoff: "1.5", retry_max_delay: "2 minutes"}}
`), Request{Pipeline: "p"})
	a := pl.Nodes[0]
	if a.MaxRetries() != 2 || a.Retry.Initial != 1500*time.Millisecond || a.Timeout != 90*time.Second ||
		a.Retry.Coefficient != 1.5 || a.Retry.Max != 2*time.Minute || pl.MaxWorkers != 3 {
		t.Errorf("got %d %v %v %v %v %d", a.MaxRetries(), a.Retry.Initial, a.Timeout, a.Retry.Coefficient, a.Retry.Max, pl.MaxWorkers)
	}
}
