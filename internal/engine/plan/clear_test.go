package plan

import (
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

const clearProject = `
pipelines:
  s: {type: streaming, nodes: [land, publish, ticks]}
nodes:
  land:
    input: {format: file_stream, path: in, options: {format: csv}, schema: "id INT"}
    output: {format: delta, path: out/land}
  publish:
    input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: t}}
    output: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", topic: u}}
  ticks:
    input: {format: rate}
    output: {format: parquet, path: "s3a://bucket/ticks"}
`

func TestResolveClears_MarksTheNodesAndRefusesWhatCannotBeClearedNamingTheField(t *testing.T) {
	p := project(t, clearProject)
	pl := mustResolve(t, p, Request{Pipeline: "s", FullRefresh: []string{"land"}, ResetCheckpoint: []string{"publish"}})
	got := map[string]Clear{}
	for _, n := range pl.Nodes {
		got[n.Name] = n.Stream.Clear
	}
	if got["land"] != ClearFullRefresh || got["publish"] != ClearCheckpoint || got["ticks"] != "" {
		t.Errorf("clears %v", got)
	}

	for _, c := range []struct {
		name       string
		req        Request
		field, say string
	}{
		{"a kafka sink", Request{FullRefresh: []string{"publish"}}, "full_refresh[0]", "kafka sink, which execd cannot clear"},
		{"an object store sink", Request{FullRefresh: []string{"ticks"}}, "full_refresh[0]", "own file system"},
		{"a rate source", Request{ResetCheckpoint: []string{"ticks"}}, "reset_checkpoint[0]", "rate stream"},
		{"a node left out of the selection", Request{Select: []string{"land"}, ResetCheckpoint: []string{"publish"}}, "reset_checkpoint[0]", "not in the run's selection"},
	} {
		c.req.Pipeline = "s"
		_, err := Resolve(p, c.req)
		wantProblem(t, problems(t, err), problem.CodeInvalidValue, c.field, c.say)
	}
}
