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
