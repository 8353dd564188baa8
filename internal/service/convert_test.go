package service

import (
	"strings"
	"testing"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
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
