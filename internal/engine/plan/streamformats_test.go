package plan

import (
	"reflect"
	"testing"
)

func TestStreamFormats_ThePolicyAndCompatibilityComeFromTheTables(t *testing.T) {
	p := DefaultFormatPolicy()
	if want := []string{"kafka", "kinesis", "delta_stream", "file_stream", "socket", "rate", "memory"}; !reflect.DeepEqual(p.StreamingInputs, want) {
		t.Errorf("streaming inputs %v, want %v", p.StreamingInputs, want)
	}
	if want := []string{"kafka", "memory", "console", "delta", "parquet", "json", "csv"}; !reflect.DeepEqual(p.StreamingOutputs, want) {
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
