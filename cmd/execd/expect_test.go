package main

import (
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// Through execd: a drop's counts in the events, the run, the CLI and the
// metrics; a fail's error and its blocked dependent; an unknown column in
// a condition refused by ValidatePipeline at its field.
func TestExpectations_ReachTheEventsTheRunTheCLIAndTheMetrics(t *testing.T) {
	d := startDaemon(t, copyProject(t, "expectproj"), t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)

	id := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "clean"})
	var seen *execv1.NodeExpectations
	for _, ev := range collect(ctx, t, cl, id, 0) {
		if x := ev.GetNodeExpectations(); x != nil {
			seen = x
		}
	}
	if seen == nil || seen.GetNode() != "clean" || seen.BatchId != nil || len(seen.GetResults()) != 2 ||
		seen.GetResults()[0].GetPassed() != 963 || seen.GetResults()[0].GetFailed() != 37 {
		t.Fatalf("the run's expectations event = %v", seen)
	}
	got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	a := got.GetRun().GetNodes()[0].GetAttempts()
	if got.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || len(a) != 1 || len(a[0].GetExpectations()) != 2 ||
		a[0].GetExpectations()[0].GetFailed() != 37 || a[0].GetMetrics()["rows_quarantined.exp.quarantine.clean"] != 37 {
		t.Fatalf("run %v; attempts %v", got.GetRun().GetState(), a)
	}
	out, _ := cli(t, d, "get", id)
	if !strings.Contains(out, "every_27th") || !strings.Contains(out, "963") || !strings.Contains(out, "37") {
		t.Errorf("execd get %s lacks the expectation table:\n%s", id, out)
	}
	m := scrape(t, d.metrics) // counted before the run ended
	labels := map[string]string{"pipeline": "clean", "node": "clean", "expectation": "every_27th"}
	if p, f := m.value("tauro_exec_expectation_rows_total", with(labels, "outcome", "passed")),
		m.value("tauro_exec_expectation_rows_total", with(labels, "outcome", "failed")); p != 963 || f != 37 {
		t.Errorf("tauro_exec_expectation_rows_total: %v passed, %v failed; want 963 and 37", p, f)
	}

	strict := waitRun(ctx, t, cl, startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "strict"}))
	var node, after *execv1.NodeRun
	for _, n := range strict.GetNodes() {
		switch n.GetName() {
		case "strict":
			node = n
		case "after_strict":
			after = n
		}
	}
	if strict.GetState() != execv1.RunState_RUN_STATE_FAILED || node.GetError().GetType() != "ExpectationFailed" ||
		!strings.Contains(node.GetError().GetMessage(), "every_27th") || !strings.Contains(node.GetError().GetMessage(), "37 of 1000") ||
		len(node.GetAttempts()) != 1 || after.GetState() == execv1.NodeState_NODE_STATE_SUCCEEDED {
		t.Errorf("strict run %v: node %v %v after %d attempts, dependent %v", strict.GetState(), node.GetState(), node.GetError(), len(node.GetAttempts()), after.GetState())
	}

	_, err = cl.ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "typo"})
	v := badRequest(t, err).GetFieldViolations()
	if len(v) != 1 || v[0].GetField() != "nodes.typo.expectations[0].condition" || !strings.Contains(v[0].GetDescription(), "price") {
		t.Errorf("ValidatePipeline typo: %v", v)
	}
}

func with(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for lk, lv := range labels {
		out[lk] = lv
	}
	return out
}
