package plan

import (
	"reflect"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func TestStreamFormats_ThePolicyAndCompatibilityComeFromTheTables(t *testing.T) {
	p := DefaultFormatPolicy()
	if want := []string{"kafka", "kinesis", "delta_stream", "file_stream", "socket", "rate", "memory"}; !reflect.DeepEqual(p.StreamingInputs, want) {
		t.Errorf("streaming inputs %v, want %v", p.StreamingInputs, want)
	}
	if want := []string{"kafka", "memory", "console", "delta", "parquet", "json", "csv", "foreachbatch"}; !reflect.DeepEqual(p.StreamingOutputs, want) {
		t.Errorf("streaming outputs %v, want %v", p.StreamingOutputs, want)
	}
	want := map[string][]string{"parquet": {"file_stream"}, "delta": {"delta_stream"}, "json": {"file_stream"}, "csv": {"file_stream"}, "kafka": {"kafka"}}
	if !reflect.DeepEqual(p.Compatibility, want) {
		t.Errorf("compatibility %v, want tauro's default %v", p.Compatibility, want)
	}
	for _, s := range streamSources {
		if s.resolve == nil {
			t.Errorf("source %s says nothing of how it is read: give it a resolve", s.name)
		}
	}
}

func TestResolve_AMemorySinksTableIsItsQueryName(t *testing.T) {
	p := project(t, `
pipelines:
  s: {type: streaming, nodes: [counts]}
nodes:
  counts:
    input: {format: rate}
    output: {format: memory, table_name: live_counts}
    streaming: {query_name: ignored}
`)
	pl := mustResolve(t, p, Request{Pipeline: "s", StartDate: "2025-01-01", EndDate: "2025-01-01"})
	spec := pl.Nodes[0].Stream
	if spec.QueryName != "live_counts" || spec.Sink.Table != "" || spec.Sink.Format != "memory" {
		t.Errorf("query %q, sink %+v; want the query named live_counts and no sink table", spec.QueryName, spec.Sink)
	}
}

func TestResolve_AForeachBatchSinkCarriesItsBatchFunction(t *testing.T) {
	p := project(t, `
pipelines:
  s: {type: streaming, nodes: [upserts]}
nodes:
  upserts:
    input: {format: rate}
    output:
      format: foreachBatch
      batch_function: {module: pipelines.sinks, function: upsert}
`)
	pl := mustResolve(t, p, dated("s"))
	sink := pl.Nodes[0].Stream.Sink
	want := &BatchFunction{Module: "pipelines.sinks", Function: "upsert", Field: "nodes.upserts.output.batch_function"}
	if sink.Format != "foreachbatch" || !reflect.DeepEqual(sink.BatchFunction, want) {
		t.Errorf("sink %+v, batch function %+v; want foreachbatch calling %+v", sink, sink.BatchFunction, want)
	}
}

func TestResolve_AForeachBatchSinkWithoutAFunctionNamesTheField(t *testing.T) {
	for _, c := range []struct{ output, field, code string }{
		{`{format: foreachBatch}`, "nodes.upserts.output.batch_function", problem.CodeRequired},
		{`{format: foreachBatch, batch_function: pipelines.sinks.upsert}`, "nodes.upserts.output.batch_function", problem.CodeInvalidType},
		{`{format: foreachBatch, batch_function: {module: pipelines.sinks}}`, "nodes.upserts.output.batch_function.function", problem.CodeRequired},
	} {
		p := project(t, `
pipelines:
  s: {type: streaming, nodes: [upserts]}
nodes:
  upserts:
    input: {format: rate}
    output: `+c.output+`
`)
		_, err := Resolve(p, dated("s"))
		wantProblem(t, problems(t, err), c.code, c.field, "def upsert(batch_df, batch_id)")
	}
}
