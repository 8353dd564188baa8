package service

import (
	"strings"
	"testing"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func TestStates_EveryEngineStateIsInTheContractAndBack(t *testing.T) {
	for _, s := range run.States {
		p := runStateToProto(s)
		if p == execv1.RunState_RUN_STATE_UNSPECIFIED || runStateFromProto(p) != s {
			t.Errorf("run state %s: contract %v, back %q", s, p, runStateFromProto(p))
		}
	}
	for _, s := range run.NodeStates {
		if p := nodeStateToProto(s); p == execv1.NodeState_NODE_STATE_UNSPECIFIED {
			t.Errorf("node state %s has no contract value", s)
		}
	}
}

func TestStates_EveryContractStateIsKnownToTheEngine(t *testing.T) {
	runKnown := map[run.State]bool{}
	for _, s := range run.States {
		runKnown[s] = true
	}
	for name, v := range execv1.RunState_value {
		if v == 0 {
			continue
		}
		if s := run.State(strings.TrimPrefix(name, "RUN_STATE_")); !runKnown[s] {
			t.Errorf("the contract's %s is not a run.State", name)
		}
	}
	nodeKnown := map[run.NodeState]bool{}
	for _, s := range run.NodeStates {
		nodeKnown[s] = true
	}
	for name, v := range execv1.NodeState_value {
		if v == 0 {
			continue
		}
		if s := run.NodeState(strings.TrimPrefix(name, "NODE_STATE_")); !nodeKnown[s] {
			t.Errorf("the contract's %s is not a run.NodeState", name)
		}
	}
}

func TestStates_ExperimentAndTrialStatesAreTheContractsBothWays(t *testing.T) {
	known := map[string]bool{}
	for _, s := range experiment.States {
		if experimentStateToProto(s) == execv1.ExperimentState_EXPERIMENT_STATE_UNSPECIFIED {
			t.Errorf("experiment state %s has no contract value", s)
		}
		known["EXPERIMENT_STATE_"+string(s)] = true
	}
	for _, s := range experiment.TrialStates {
		if trialStateToProto(s) == execv1.TrialState_TRIAL_STATE_UNSPECIFIED {
			t.Errorf("trial state %s has no contract value", s)
		}
		known["TRIAL_STATE_"+string(s)] = true
	}
	for name, v := range execv1.ExperimentState_value {
		if v != 0 && !known[name] {
			t.Errorf("the contract's %s is not an experiment.State", name)
		}
	}
	for name, v := range execv1.TrialState_value {
		if v != 0 && !known[name] {
			t.Errorf("the contract's %s is not an experiment.TrialState", name)
		}
	}
}

func TestExperimentToProto_ACategoryTheContractCannotCarryIsAnError(t *testing.T) {
	x := experiment.Record{ID: "x1", Spec: experiment.Spec{Space: []experiment.Dimension{
		{Name: "c", Kind: experiment.Categorical, Categories: []any{"a", struct{}{}}},
	}}}
	if _, err := experimentToProto(x, false); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("err = %v, want one naming dimension c (the category is not dropped)", err)
	}
}

func TestEventToProto_ExpectationsKeepTheirBatchAndResults(t *testing.T) {
	batch := int64(7)
	res := []run.ExpectationResult{{Name: "positive", Kind: "drop", Passed: 963, Failed: 37, Severity: "warn", Message: "37 rows"}}
	got := eventToProto(run.Event{Kind: run.NodeExpectations, Node: "clean", Attempt: 2,
		Expectations: &run.Expectations{BatchID: &batch, Results: res}}, "sales").GetNodeExpectations()
	if got == nil || got.GetNode() != "clean" || got.GetAttempt() != 2 || got.BatchId == nil || got.GetBatchId() != 7 || len(got.GetResults()) != 1 {
		t.Fatalf("eventToProto = %v", got)
	}
	if r := got.GetResults()[0]; r.GetName() != "positive" || r.GetKind() != "drop" || r.GetPassed() != 963 || r.GetFailed() != 37 ||
		r.GetSeverity() != "warn" || r.GetOk() || r.GetMessage() != "37 rows" {
		t.Errorf("result = %v", r)
	}
}
