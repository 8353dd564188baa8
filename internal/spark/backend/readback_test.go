package backend_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// TestReadBack_ASelectedNodeReadsItsLeftOutDependencyByName: a node selected
// without its upstream reads the upstream's result by name, read back from
// what it wrote (it used to fail with TABLE_OR_VIEW_NOT_FOUND).
func TestReadBack_ASelectedNodeReadsItsLeftOutDependencyByName(t *testing.T) {
	remote := sparktest.Remote(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_parallel_nodes: 2\nmax_retries: 0\n",
		"pipelines.yaml":    "p: {nodes: [a, b]}\n",
		"nodes.yaml": `a: {sql: "SELECT id FROM range(7)", output: [o.t.a]}
b: {sql: "SELECT id * 2 AS twice FROM a WHERE id > 2", dependencies: [a], output: [o.t.b]}
`,
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.a: {format: parquet}\no.t.b: {format: parquet}\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng := newEngine(ctx, t, dir, remote)
	first, err := eng.Execute(ctx, "", run.Params{Pipeline: "p", Select: []string{"a"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if done := waitRun(ctx, t, eng, first.ID); done.State != run.Succeeded {
		t.Fatalf("writing a: %v %s", done.State, done.Message)
	}
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p", Select: []string{"b"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, eng, r.ID)
	if done.State != run.Succeeded || len(done.Nodes) != 1 {
		t.Fatalf("b alone: %v %s %+v", done.State, done.Message, done.Nodes)
	}
	b := done.Nodes[0]
	if got := b.Attempts[len(b.Attempts)-1].Metrics["rows_written.o.t.b"]; got != 4 {
		t.Errorf("b wrote %v rows from a's output read back, want 4", got)
	}
}

// TestReadBack_AKafkaTopicIsNotReadBackAsItsNodesResult: what a node left
// out of the selection wrote is read back for the nodes that read it, but a
// kafka topic holds Kafka's records (and every earlier write), not the
// node's result. A node reading the topic's key as an input, and one
// reading its writer by name, fail at once with UpstreamNotStored saying to
// run the writer too (they used to fail on "format kafka needs a path" and
// on a missing view). Dependencies read back by a repair follow the same
// rule (plan.Node.Stored).
func TestReadBack_AKafkaTopicIsNotReadBackAsItsNodesResult(t *testing.T) {
	remote := sparktest.Remote(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_parallel_nodes: 2\nmax_retries: 0\n",
		"pipelines.yaml":    "p: {nodes: [a, b, c]}\n",
		"nodes.yaml": `a: {sql: "SELECT 'k' AS key, 'v' AS value", output: [o.k.a]}
b: {sql: "SELECT value FROM a", dependencies: [a], output: [o.t.b]}
c: {sql: "SELECT count(*) AS n FROM ` + "`o.k.a`" + `", input: [o.k.a], output: [o.t.c]}
`,
		"input.yaml": "{}\n",
		"output.yaml": `o.k.a: {format: kafka, options: {kafka.bootstrap.servers: "127.0.0.1:9", topic: ta}}
o.t.b: {format: parquet}
o.t.c: {format: parquet}
`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng := newEngine(ctx, t, dir, remote)
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p", Select: []string{"b", "c"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, eng, r.ID)
	nodes := map[string]run.Node{}
	for _, n := range done.Nodes {
		nodes[n.Name] = n
	}
	for _, name := range []string{"b", "c"} {
		n := nodes[name]
		if n.State != run.NodeFailed || n.Error == nil || n.Error.Type != "UpstreamNotStored" ||
			!strings.Contains(n.Error.Message, "kafka topic") || !strings.Contains(n.Error.Message, `run "a" too`) {
			t.Errorf("node %s: %v %+v; want FAILED with UpstreamNotStored naming the kafka topic and saying to run a", name, n.State, n.Error)
		}
	}
	if done.State != run.Failed {
		t.Errorf("run %v, want FAILED", done.State)
	}
}
