package plan

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func TestResolve_StreamingNodesCarryTheirStreamSpec(t *testing.T) {
	p := project(t, `
global_settings: {output_path: data/out}
pipelines:
  h: {type: hybrid, nodes: [stores, joined, events]}
nodes:
  stores: {sql: "SELECT 1 AS store", output: [silver.ref.stores]}
  joined:
    sql: "SELECT * FROM orders JOIN dims USING (store)"
    input: [orders, dims]
    output: [gold.orders.joined]
    streaming: {trigger: {type: processing_time, interval: "5 seconds"}, output_mode: append, query_name: joinq}
  events:
    input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: ev}, parse_json: true, json_schema: "id INT, at TIMESTAMP", watermark: {column: at, delay: "1 minute"}}
    output: {format: delta, path: sinks/events}
    streaming: {checkpoint_location: chk/events}
input:
  orders: {format: file_stream, path: in/orders, options: {format: csv, header: true}, schema: "id INT, store INT"}
  dims: {format: parquet, filepath: ref/dims}
output:
  silver.ref.stores: {format: parquet}
  gold.orders.joined: {format: delta}
`)
	p.BasePath = "/proj"
	pl := mustResolve(t, p, Request{Pipeline: "h", StartDate: "2025-01-01", EndDate: "2025-01-01"})
	joined, events := pl.Nodes[1].Stream, pl.Nodes[2].Stream
	if pl.Nodes[0].Stream != nil || joined == nil || events == nil {
		t.Fatalf("stream specs: stores %v, joined %v, events %v; want only the streaming nodes'", pl.Nodes[0].Stream, joined, events)
	}
	orders, dims := joined.Sources[0], joined.Sources[1]
	if orders.Static || orders.Format != "csv" || orders.Path != filepath.Join("/proj", "in/orders") || orders.Schema != "id INT, store INT" ||
		orders.Options["header"] != "true" || orders.Options["format"] != "" {
		t.Errorf("orders source = %+v; want a csv file stream", orders)
	}
	if !dims.Static || dims.Read.Format != "parquet" {
		t.Errorf("dims source = %+v; want a static parquet table", dims)
	}
	if joined.Sink.Format != "delta" || joined.Sink.Path != filepath.Join("/proj", "data/out", "gold", "orders", "joined") ||
		joined.Trigger != (Trigger{Type: TriggerProcessingTime, Interval: 5 * time.Second}) || joined.OutputMode != "append" || joined.QueryName != "joinq" {
		t.Errorf("joined = %+v", joined)
	}
	// A checkpoint is stable per environment, pipeline and node.
	if want := filepath.Join("/proj", "data/out", "_checkpoints", "dev", "h", "joined"); joined.Checkpoint != want {
		t.Errorf("checkpoint %s; want %s", joined.Checkpoint, want)
	}
	ev := events.Sources[0]
	if ev.Key != "events_input" || ev.Format != "kafka" || ev.JSONSchema != "id INT, at TIMESTAMP" || ev.WatermarkColumn != "at" || ev.WatermarkDelay != "1 minute" {
		t.Errorf("events source = %+v", ev)
	}
	if events.Sink.Path != filepath.Join("/proj", "sinks/events") || events.Checkpoint != filepath.Join("/proj", "chk/events") || events.QueryName != "h_events" {
		t.Errorf("events = %+v", events)
	}
}

func TestResolve_StreamingInputMistakesNameTheField(t *testing.T) {
	cases := []struct {
		name, input, field, inMessage string
	}{
		{"kafka without brokers", `{format: kafka, options: {subscribe: t}}`, "nodes.s.input.options.kafka.bootstrap.servers", "bootstrap"},
		{"kafka with two subscriptions", `{format: kafka, options: {kafka.bootstrap.servers: "b:1", subscribe: t, assign: x}}`, "nodes.s.input.options", "exactly one of subscribe"},
		{"file stream without a schema", `{format: file_stream, path: in, options: {format: json}}`, "nodes.s.input.schema", "needs a schema"},
		{"file stream without a path", `{format: file_stream, schema: "a INT"}`, "nodes.s.input.path", "needs the path"},
		{"memory source", `{format: memory}`, "nodes.s.input.format", "Spark Connect"},
		{"json without a schema", `{format: rate, parse_json: true}`, "nodes.s.input.json_schema", "json_schema"},
		{"bad watermark", `{format: rate, watermark: {column: timestamp, delay: "soon"}}`, "nodes.s.input.watermark.delay", "watermark delay"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Resolve(project(t, `
pipelines: {p: {type: streaming, nodes: [s]}}
nodes: {s: {input: `+c.input+`, output: {format: console}}}
`), dated("p"))
			found := false
			for _, pr := range problems(t, err) {
				found = found || (pr.Field == c.field && strings.Contains(pr.Message, c.inMessage))
			}
			if !found {
				t.Errorf("problems %v; want one at %s saying %q", err, c.field, c.inMessage)
			}
		})
	}
}

func TestResolve_KafkaOutputWritesToItsTopicWithoutAPathAndAppends(t *testing.T) {
	pl := specProject(t, `{format: kafka, options: {kafka.bootstrap.servers: "b:9092", topic: daily}}`)
	out := pl.Nodes[1].OutputSpecs[0]
	if out.Format != "kafka" || out.Path != "" || out.WriteMode != "append" || out.Options["topic"] != "daily" {
		t.Errorf("kafka output = %+v; want no path, write mode append and the topic option", out)
	}
}

func TestResolve_KafkaOutputMistakesNameTheField(t *testing.T) {
	cases := []struct {
		name, nodes, output, code, field, inMessage string
	}{
		{"batch output without a topic", `{sql: "SELECT 1 AS value", output: [k.t.events]}`, `{format: kafka, options: {kafka.bootstrap.servers: "b:1"}}`,
			problem.CodeRequired, "output.k.t.events.options.topic", "needs options.topic"},
		{"batch output without brokers", `{sql: "SELECT 1 AS value", output: [k.t.events]}`, `{format: kafka, options: {topic: t}}`,
			problem.CodeRequired, "output.k.t.events.options.kafka.bootstrap.servers", "needs options.kafka.bootstrap.servers"},
		{"batch output overwriting", `{sql: "SELECT 1 AS value", output: [k.t.events]}`, `{format: kafka, write_mode: overwrite, options: {kafka.bootstrap.servers: "b:1", topic: t}}`,
			problem.CodeIncompatible, "output.k.t.events.write_mode", "appends records to its topic"},
		{"streaming output without a topic", `{input: {format: rate}, output: [k.t.events]}`, `{format: kafka, options: {kafka.bootstrap.servers: "b:1"}}`,
			problem.CodeRequired, "output.k.t.events.options.topic", "needs options.topic"},
		{"inline sink without brokers", `{input: {format: rate}, output: {format: kafka, options: {topic: t}}}`, `{format: parquet}`,
			problem.CodeRequired, "nodes.s.output.options.kafka.bootstrap.servers", "a kafka sink needs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Resolve(project(t, `
pipelines: {p: {type: hybrid, nodes: [s]}}
nodes: {s: `+c.nodes+`}
output: {k.t.events: `+c.output+`}
`), dated("p"))
			wantProblem(t, problems(t, err), c.code, c.field, c.inMessage)
		})
	}
}

func TestResolve_StreamReadingABatchNodesKafkaOutputSubscribesToItsTopicFromTheStart(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines: {h: {type: hybrid, nodes: [produce, consume]}}
nodes:
  produce: {sql: "SELECT 'x' AS value", output: [k.t.events]}
  consume: {input: [k.t.events], output: {format: console}, streaming: {trigger: {type: available_now}}}
output:
  k.t.events: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", topic: events, kafka.acks: all}}
`), dated("h"))
	src := pl.Nodes[1].Stream.Sources[0]
	want := map[string]string{"kafka.bootstrap.servers": "b:9092", "kafka.acks": "all", "subscribe": "events", "startingOffsets": "earliest"}
	if src.Static || src.Format != "kafka" || src.Producer != "produce" || !maps.Equal(src.Options, want) {
		t.Errorf("consume's source = %+v; want a kafka stream with options %v", src, want)
	}
}

func TestResolve_StreamJoiningABatchNodesTableWaitsForItWhateverItsFormat(t *testing.T) {
	// The batch node writes a dimension; the streaming node reads it as a
	// table through an input entry at the same path (a stream-static join)
	// and names the batch node as a dependency so that it starts after it.
	// Its stream (file_stream) has nothing to do with the dimension's format.
	for _, format := range []string{"parquet", "delta", "orc", "json"} {
		t.Run(format, func(t *testing.T) {
			p := project(t, `
global_settings: {output_path: out, mode: local}
pipelines:
  h: {type: hybrid, nodes: [stores, enrich]}
nodes:
  stores: {sql: "SELECT 1 AS store", output: [silver.ref.stores]}
  enrich:
    sql: "SELECT * FROM orders JOIN stores_table USING (store)"
    input: [orders, stores_table]
    dependencies: [stores]
    output: [gold.orders.enriched]
input:
  orders: {format: file_stream, path: in/orders, options: {format: csv}, schema: "id INT, store INT"}
  stores_table: {format: `+format+`, filepath: out/dev/silver/ref/stores}
output:
  silver.ref.stores: {format: `+format+`}
  gold.orders.enriched: {format: delta}
`)
			p.BasePath = "/proj"
			pl := mustResolve(t, p, dated("h"))
			enrich := pl.Nodes[1]
			if !enrich.Streaming || !equal(enrich.Dependencies, []string{"stores"}) {
				t.Fatalf("enrich: streaming %v, dependencies %q; want a streaming node after stores", enrich.Streaming, enrich.Dependencies)
			}
			dim := enrich.Stream.Sources[1]
			if !dim.Static || dim.Read.Format != format || dim.Read.Path != pl.Nodes[0].OutputSpecs[0].Path {
				t.Errorf("stores_table source = %+v; want a static %s table at %s", dim, format, pl.Nodes[0].OutputSpecs[0].Path)
			}
		})
	}
}

func TestResolve_StreamDependingOnABatchNodeItCannotReadSaysHowToJoinItsTable(t *testing.T) {
	// The same pipeline, but the table the stream reads is elsewhere: the
	// dependency is checked against the stream's format and the message
	// names the input entry that would join the batch node's output.
	p := project(t, `
global_settings: {output_path: out}
pipelines:
  h: {type: hybrid, nodes: [stores, enrich]}
nodes:
  stores: {sql: "SELECT 1 AS store", output: [silver.ref.stores]}
  enrich:
    sql: "SELECT * FROM orders JOIN stores_table USING (store)"
    input: [orders, stores_table]
    dependencies: [stores]
    output: [gold.orders.enriched]
input:
  orders: {format: file_stream, path: in/orders, options: {format: csv}, schema: "id INT, store INT"}
  stores_table: {format: delta, filepath: elsewhere/stores}
output:
  silver.ref.stores: {format: delta}
  gold.orders.enriched: {format: delta}
`)
	p.BasePath = "/proj"
	_, err := Resolve(p, dated("h"))
	wantProblem(t, problems(t, err), problem.CodeIncompatible, "nodes.enrich.dependencies[0]",
		"input config entry of format 'delta' whose filepath is "+filepath.Join("/proj", "out", "silver", "ref", "stores"))
}

// A node written for tauro's streaming query manager: an inline input, the
// function as {module, function}, an inline sink. Its function is handed
// the inline input, and its configuration as written.
func TestResolve_ATauroStreamingNodeHandsItsFunctionItsInlineInputAndConfiguration(t *testing.T) {
	p := project(t, `
global_settings: {output_path: out}
pipelines:
  s: {type: streaming, nodes: [ticks, joined]}
  b: {type: batch, nodes: [daily]}
nodes:
  ticks:
    input: {format: rate, options: {rowsPerSecond: 5}}
    function: {module: streamnodes, function: label}
    output: {format: delta, path: sinks/ticks}
    streaming: {trigger: {type: processing_time, interval: "2 seconds"}}
    label: hello
  joined: {input: [orders, dims], function: streamnodes.join, output: {format: console}}
  daily: {function: nodes.daily, input: [dims, facts], output: [gold.d.daily]}
input:
  orders: {format: rate}
  dims: {format: parquet, filepath: in/dims}
  facts: {format: parquet, filepath: in/facts}
output:
  gold.d.daily: {format: parquet}
`)
	pl := mustResolve(t, p, dated("s"))
	ticks := pl.Nodes[0]
	if ticks.Kind != KindPython || ticks.Module != "streamnodes" || ticks.Function != "label" || ticks.Stream == nil {
		t.Fatalf("ticks = %+v; want a streaming Python node calling streamnodes.label", ticks)
	}
	if src := ticks.Stream.Sources[0]; src.Key != "ticks_input" || src.Format != "rate" || src.Options["rowsPerSecond"] != "5" {
		t.Errorf("ticks' source = %+v; want its inline rate input", src)
	}
	if got := ticks.FunctionInputs(); !slices.Equal(got, []string{"ticks_input"}) {
		t.Errorf("ticks' function gets %q; want its inline input", got)
	}
	fn, _ := ticks.Config["function"].(map[string]any)
	in, _ := ticks.Config["input"].(map[string]any)
	if ticks.Config["label"] != "hello" || fn["module"] != "streamnodes" || in["format"] != "rate" {
		t.Errorf("ticks' configuration = %v; want its mapping as written", ticks.Config)
	}
	// A streaming node of input keys: its stream and its table, in order.
	if got := pl.Nodes[1].FunctionInputs(); !slices.Equal(got, []string{"orders", "dims"}) {
		t.Errorf("joined's function gets %q; want orders, dims", got)
	}

	// A batch node's function gets its input keys, in order.
	daily := mustResolve(t, p, dated("b")).Nodes[0]
	if got := daily.FunctionInputs(); daily.Stream != nil || !slices.Equal(got, []string{"dims", "facts"}) {
		t.Errorf("daily's function gets %q; want its inputs dims, facts", got)
	}
}
