package main

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// The CLI shows where a run and each tracked attempt are in MLflow.
func TestPrintRun_ShowsTheMLflowRunsOfTheRunAndItsAttempts(t *testing.T) {
	r := &execv1.Run{RunId: "r1", Pipeline: "train", State: execv1.RunState_RUN_STATE_SUCCEEDED,
		Mlflow: &execv1.MlflowRun{RunId: "p1", Url: "http://mlflow/#/experiments/1/runs/p1"},
		Nodes: []*execv1.NodeRun{{Name: "fit", State: execv1.NodeState_NODE_STATE_SUCCEEDED, Attempt: 2, Attempts: []*execv1.Attempt{
			{Attempt: 1, Mlflow: &execv1.MlflowRun{Url: "http://mlflow/#/experiments/1/runs/c1"}},
			{Attempt: 2, Mlflow: &execv1.MlflowRun{Url: "http://mlflow/#/experiments/1/runs/c2"}},
		}}}}
	var out bytes.Buffer
	printRun(&out, r)
	for _, want := range []string{"MLflow: http://mlflow/#/experiments/1/runs/p1", "fit attempt 1 in MLflow: http://mlflow/#/experiments/1/runs/c1",
		"fit attempt 2 in MLflow: http://mlflow/#/experiments/1/runs/c2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printRun's output lacks %q:\n%s", want, out.String())
		}
	}
}

// Every kind of event has its line: run messages, lag, and a metric's step.
func TestPrintEvent_ShowsRunMessagesLagAndSteps(t *testing.T) {
	for _, c := range []struct {
		ev   *execv1.RunEvent
		want string
	}{
		{&execv1.RunEvent{Kind: &execv1.RunEvent_RunMessage{RunMessage: &execv1.RunMessage{Level: "warning", Text: "MLflow does not answer"}}},
			"run warning: MLflow does not answer"},
		{&execv1.RunEvent{Kind: &execv1.RunEvent_NodeLag{NodeLag: &execv1.NodeLag{Node: "s", State: execv1.LagState_LAG_STATE_LAGGING, Reason: "batch 3 took 4s"}}},
			"lagging: batch 3 took 4s"},
		{&execv1.RunEvent{Kind: &execv1.RunEvent_NodeMetric{NodeMetric: &execv1.NodeMetric{Node: "fit", Name: "loss", Value: 0.5, Step: 7}}},
			"metric loss = 0.5  step 7"},
	} {
		c.ev.Time = timestamppb.Now()
		var out bytes.Buffer
		printEvent(&out, c.ev)
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("printEvent(%v) = %q, want it to hold %q", c.ev.GetKind(), out.String(), c.want)
		}
	}
}

// A node's expectation counts show as event lines and under the run's
// node table.
func TestPrint_ShowsExpectationCounts(t *testing.T) {
	batch := int64(4)
	ev := &execv1.RunEvent{Time: timestamppb.Now(), Kind: &execv1.RunEvent_NodeExpectations{NodeExpectations: &execv1.NodeExpectations{
		Node: "clean", Attempt: 1, BatchId: &batch, Results: []*execv1.ExpectationResult{
			{Name: "every_27th", Kind: "drop", Passed: 963, Failed: 37, Severity: "warn", Message: "37 of 1000 rows do not meet ..."}}}}}
	var out bytes.Buffer
	printEvent(&out, ev)
	if want := "clean batch 4            expect every_27th drop 963 passed 37 failed  BROKEN (warn)"; !strings.Contains(out.String(), want) {
		t.Errorf("printEvent = %q, want it to hold %q", out.String(), want)
	}
	r := &execv1.Run{RunId: "r1", State: execv1.RunState_RUN_STATE_FAILED, Nodes: []*execv1.NodeRun{{Name: "clean", Attempts: []*execv1.Attempt{
		{Attempt: 1, Expectations: []*execv1.ExpectationResult{{Name: "n", Kind: "fail", Passed: 1, Failed: 2, Severity: "error", Message: "2 of 3 rows"}}}}}}}
	out.Reset()
	printRun(&out, r)
	for _, want := range []string{"EXPECTATION", "clean  n            fail  1       2       ERROR: 2 of 3 rows"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printRun lacks %q:\n%s", want, out.String())
		}
	}
}
