package service

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// States cross to the contract by name: the engine's RUNNING is the
// contract's RUN_STATE_RUNNING. The generated enum is the one list of
// names; a state the contract lacks becomes UNSPECIFIED, and a test keeps
// the engine's states and the contract's in step.

func runStateToProto(s run.State) execv1.RunState {
	return execv1.RunState(execv1.RunState_value["RUN_STATE_"+string(s)])
}

func runStateFromProto(s execv1.RunState) run.State {
	if s == execv1.RunState_RUN_STATE_UNSPECIFIED {
		return ""
	}
	return run.State(strings.TrimPrefix(s.String(), "RUN_STATE_"))
}

func nodeStateToProto(s run.NodeState) execv1.NodeState {
	return execv1.NodeState(execv1.NodeState_value["NODE_STATE_"+string(s)])
}

func pipelineTypeToProto(t string) execv1.PipelineType {
	switch t {
	case "batch", "":
		return execv1.PipelineType_PIPELINE_TYPE_BATCH
	case "streaming":
		return execv1.PipelineType_PIPELINE_TYPE_STREAMING
	case "hybrid":
		return execv1.PipelineType_PIPELINE_TYPE_HYBRID
	case "ml":
		return execv1.PipelineType_PIPELINE_TYPE_ML
	}
	return execv1.PipelineType_PIPELINE_TYPE_UNSPECIFIED
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func dur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func errToProto(e *run.Error) *execv1.NodeError {
	if e == nil {
		return nil
	}
	return &execv1.NodeError{Type: e.Type, Message: e.Message, Traceback: e.Traceback, Retryable: e.Retryable}
}

func runToProto(r run.Run) *execv1.Run {
	out := &execv1.Run{
		RunId:           r.ID,
		Project:         r.Params.Project,
		Pipeline:        r.Params.Pipeline,
		Env:             r.Params.Env,
		State:           runStateToProto(r.State),
		StartDate:       r.Params.StartDate,
		EndDate:         r.Params.EndDate,
		MaxWorkers:      int32(r.Params.MaxWorkers),
		ModelVersion:    r.Params.ModelVersion,
		Select:          r.Params.Select,
		FailFast:        r.Params.FailFast,
		FullRefresh:     r.Params.FullRefresh,
		ResetCheckpoint: r.Params.ResetCheckpoint,
		RequestId:       r.RequestID,
		CreateTime:      ts(r.CreateTime),
		StartTime:       ts(r.StartTime),
		EndTime:         ts(r.EndTime),
		Message:         r.Message,
		RepairCount:     int32(r.RepairCount),
		LastSequence:    r.LastSequence,
		Priority:        int32(r.Params.Priority),
		Replica:         r.Owner,
		Mlflow:          mlflowToProto(r.MLflow),
	}
	if len(r.Params.Hyperparams) > 0 {
		if s, err := structpb.NewStruct(r.Params.Hyperparams); err == nil {
			out.Hyperparams = s
		}
	}
	for _, n := range r.Nodes {
		pn := &execv1.NodeRun{
			Name:      n.Name,
			State:     nodeStateToProto(n.State),
			Attempt:   int32(n.Attempt),
			StartTime: ts(n.StartTime),
			EndTime:   ts(n.EndTime),
			Error:     errToProto(n.Error),
		}
		for _, a := range n.Attempts {
			pn.Attempts = append(pn.Attempts, &execv1.Attempt{
				Attempt:      int32(a.Attempt),
				State:        nodeStateToProto(a.State),
				StartTime:    ts(a.StartTime),
				EndTime:      ts(a.EndTime),
				Error:        errToProto(a.Error),
				Metrics:      a.Metrics,
				Mlflow:       mlflowToProto(a.MLflow),
				Expectations: expectationsToProto(a.Expectations),
			})
		}
		out.Nodes = append(out.Nodes, pn)
	}
	return out
}

// mlflowToProto is an MLflow run with its page in the UI; nil for none.
func mlflowToProto(m *run.MLflowRun) *execv1.MlflowRun {
	if m == nil {
		return nil
	}
	return &execv1.MlflowRun{ExperimentId: m.ExperimentID, RunId: m.RunID, Url: m.URL()}
}

func eventToProto(e run.Event, project string) *execv1.RunEvent {
	out := &execv1.RunEvent{RunId: e.RunID, Project: project, Sequence: e.Sequence, Time: ts(e.Time)}
	switch e.Kind {
	case run.RunStateChanged:
		out.Kind = &execv1.RunEvent_RunStateChanged{RunStateChanged: &execv1.RunStateChanged{
			State: runStateToProto(e.RunState), Message: e.Message,
		}}
	case run.NodeStateChanged:
		out.Kind = &execv1.RunEvent_NodeStateChanged{NodeStateChanged: &execv1.NodeStateChanged{
			Node: e.Node, State: nodeStateToProto(e.NodeState), Attempt: int32(e.Attempt),
			Error: errToProto(e.Error), RetryIn: dur(e.RetryIn), Duration: dur(e.Duration),
		}}
	case run.NodeMessage:
		out.Kind = &execv1.RunEvent_NodeMessage{NodeMessage: &execv1.NodeMessage{
			Node: e.Node, Attempt: int32(e.Attempt), Level: e.Level, Text: e.Message,
		}}
	case run.NodeMetric:
		out.Kind = &execv1.RunEvent_NodeMetric{NodeMetric: &execv1.NodeMetric{
			Node: e.Node, Attempt: int32(e.Attempt), Name: e.MetricName, Value: e.MetricValue, Step: e.MetricStep,
		}}
	case run.RunMessage:
		out.Kind = &execv1.RunEvent_RunMessage{RunMessage: &execv1.RunMessage{Level: e.Level, Text: e.Message}}
	case run.NodeProgress:
		if p := e.Progress; p != nil {
			out.Kind = &execv1.RunEvent_NodeProgress{NodeProgress: progressToProto(e, p)}
		}
	case run.NodeLag:
		if l := e.Lag; l != nil {
			out.Kind = &execv1.RunEvent_NodeLag{NodeLag: &execv1.NodeLag{
				Node: e.Node, Attempt: int32(e.Attempt), State: lagStateToProto(l.State), Reason: l.Reason, BatchId: l.BatchID,
			}}
		}
	case run.NodeExpectations:
		if x := e.Expectations; x != nil {
			out.Kind = &execv1.RunEvent_NodeExpectations{NodeExpectations: &execv1.NodeExpectations{
				Node: e.Node, Attempt: int32(e.Attempt), BatchId: x.BatchID, Results: expectationsToProto(x.Results),
			}}
		}
	}
	return out
}

func progressToProto(e run.Event, p *run.Progress) *execv1.NodeProgress {
	out := &execv1.NodeProgress{
		Node: e.Node, Attempt: int32(e.Attempt), BatchId: p.BatchID, InputRows: p.InputRows,
		InputRowsPerSecond: p.InputRate, ProcessedRowsPerSecond: p.ProcessRate,
		BatchDuration: dur(p.BatchDuration), Watermark: p.Watermark, StateRows: p.StateRows,
	}
	for _, s := range p.Sources {
		out.Sources = append(out.Sources, &execv1.SourceProgress{
			Description: s.Description, StartOffset: s.StartOffset, EndOffset: s.EndOffset, LatestOffset: s.LatestOffset,
			InputRows: s.InputRows, InputRowsPerSecond: s.InputRate, ProcessedRowsPerSecond: s.ProcessRate,
		})
	}
	if s := p.Sink; s != nil {
		out.Sink = &execv1.SinkProgress{Description: s.Description, OutputRows: s.OutputRows}
	}
	if len(p.Observed) > 0 {
		fields := make(map[string]any, len(p.Observed))
		for name, row := range p.Observed {
			fields[name] = row
		}
		// Values Spark observed that a Struct cannot hold (none it reports
		// as JSON) leave the metrics out rather than the event.
		if st, err := structpb.NewStruct(fields); err == nil {
			out.ObservedMetrics = st
		}
	}
	return out
}

func expectationsToProto(in []run.ExpectationResult) []*execv1.ExpectationResult {
	if len(in) == 0 {
		return nil
	}
	out := make([]*execv1.ExpectationResult, len(in))
	for i, r := range in {
		out[i] = &execv1.ExpectationResult{Name: r.Name, Kind: r.Kind, Passed: r.Passed, Failed: r.Failed,
			Severity: r.Severity, Ok: r.OK, Message: r.Message}
	}
	return out
}

func lagStateToProto(s run.LagState) execv1.LagState {
	return execv1.LagState(execv1.LagState_value["LAG_STATE_"+string(s)])
}

func planToProto(p *plan.Pipeline) *execv1.Plan {
	out := &execv1.Plan{
		Order:          p.Plan.Order,
		CriticalPath:   p.Plan.CriticalPath,
		BatchNodes:     p.Plan.Batch,
		StreamingNodes: p.Plan.Streaming,
	}
	for _, st := range p.Plan.Stages {
		out.Stages = append(out.Stages, &execv1.Stage{Nodes: st})
	}
	return out
}

func pipelineToProto(p *plan.Pipeline) *execv1.Pipeline {
	out := &execv1.Pipeline{Name: p.Name, Type: pipelineTypeToProto(p.Type), Plan: planToProto(p)}
	for _, n := range p.Nodes {
		fn := n.Function
		if n.Module != "" {
			fn = n.Module + "." + n.Function
		}
		out.Nodes = append(out.Nodes, &execv1.NodeSpec{
			Name:         n.Name,
			Kind:         n.Kind,
			Function:     fn,
			Sql:          n.SQL,
			Dependencies: n.Dependencies,
			Inputs:       n.Inputs,
			Outputs:      n.Outputs,
			Description:  n.Description,
			Streaming:    n.Streaming,
			MaxRetries:   int32(n.MaxRetries()),
			Timeout:      dur(n.Timeout),
		})
	}
	return out
}

// maxHyperparamsBytes and maxHyperparamsDepth bound what a request may
// carry as hyperparameters, so every stored run can be read back by every
// client (protobuf decoders refuse deep nesting).
const (
	maxHyperparamsBytes = 64 << 10
	maxHyperparamsDepth = 32
)

func hyperparamsFromProto(s *structpb.Struct) (map[string]any, error) {
	if s == nil {
		return nil, nil
	}
	if proto.Size(s) > maxHyperparamsBytes {
		return nil, problem.List{{Field: "hyperparams", Code: problem.CodeTooLarge,
			Message: "hyperparams are larger than 64 KiB; pass large values as paths or table names instead"}}
	}
	if d := structDepth(s, 1); d > maxHyperparamsDepth {
		return nil, problem.List{{Field: "hyperparams", Code: problem.CodeTooLarge,
			Message: fmt.Sprintf("hyperparams are nested %d levels deep; the limit is %d: flatten them", d, maxHyperparamsDepth)}}
	}
	return s.AsMap(), nil
}

// structDepth is how deep s nests, counting s as depth; it stops counting
// past the limit.
func structDepth(s *structpb.Struct, depth int) int {
	deepest := depth
	for _, v := range s.GetFields() {
		deepest = max(deepest, valueDepth(v, depth))
		if deepest > maxHyperparamsDepth {
			break
		}
	}
	return deepest
}

func valueDepth(v *structpb.Value, depth int) int {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return structDepth(k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		deepest := depth + 1
		for _, e := range k.ListValue.GetValues() {
			deepest = max(deepest, valueDepth(e, depth+1))
			if deepest > maxHyperparamsDepth {
				break
			}
		}
		return deepest
	}
	return depth
}
