package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func (s *Service) RunExperiment(ctx context.Context, req *execv1.RunExperimentRequest) (*execv1.RunExperimentResponse, error) {
	spec, err := specFromProto(req)
	if err != nil {
		return nil, toStatus(err)
	}
	x, err := s.eng.RunExperiment(ctx, req.GetRequestId(), spec, req.Seed != nil)
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.RunExperimentResponse{Experiment: experimentToProto(x, true)}, nil
}

func (s *Service) GetExperiment(ctx context.Context, req *execv1.GetExperimentRequest) (*execv1.GetExperimentResponse, error) {
	x, err := s.eng.GetExperiment(ctx, req.GetExperimentId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.GetExperimentResponse{Experiment: experimentToProto(x, true)}, nil
}

func (s *Service) ListExperiments(ctx context.Context, req *execv1.ListExperimentsRequest) (*execv1.ListExperimentsResponse, error) {
	xs, next, err := s.eng.ListExperiments(ctx, req.GetPipeline(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &execv1.ListExperimentsResponse{NextPageToken: next}
	for _, x := range xs {
		resp.Experiments = append(resp.Experiments, experimentToProto(x, false))
	}
	return resp, nil
}

func (s *Service) WatchExperiment(req *execv1.WatchExperimentRequest, stream execv1.ExecService_WatchExperimentServer) error {
	var sendErr error
	err := s.eng.WatchExperiment(stream.Context(), req.GetExperimentId(), req.GetAfterSequence(), func(ev experiment.Event) bool {
		sendErr = stream.Send(&execv1.WatchExperimentResponse{Event: experimentEventToProto(ev)})
		return sendErr == nil
	})
	if sendErr != nil {
		return sendErr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return toStatus(err)
	}
	return nil
}

func (s *Service) CancelExperiment(ctx context.Context, req *execv1.CancelExperimentRequest) (*execv1.CancelExperimentResponse, error) {
	x, err := s.eng.CancelExperiment(ctx, req.GetExperimentId(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.CancelExperimentResponse{Experiment: experimentToProto(x, true)}, nil
}

// specFromProto is the request as the engine's Spec; checking it is the
// engine's, which names the fields.
func specFromProto(req *execv1.RunExperimentRequest) (experiment.Spec, error) {
	hp, err := hyperparamsFromProto(req.GetHyperparams())
	if err != nil {
		return experiment.Spec{}, err
	}
	spec := experiment.Spec{
		Name:        req.GetExperiment(),
		Pipeline:    req.GetPipeline(),
		Env:         req.GetEnv(),
		Select:      req.GetSelect(),
		NTrials:     int(req.GetNTrials()),
		MaxParallel: int(req.GetMaxParallelTrials()),
		Seed:        req.GetSeed(),
		StartDate:   req.GetStartDate(),
		EndDate:     req.GetEndDate(),
		Hyperparams: hp,
	}
	if spec.Name == "" && spec.Pipeline == "" {
		return spec, problem.List{{Field: "pipeline", Code: problem.CodeRequired,
			Message: "name the pipeline to search (pipeline) or an experiment declared in the project's experiments config (experiment)"}}
	}
	switch req.GetSampler() {
	case execv1.Sampler_SAMPLER_TPE:
		spec.Sampler = experiment.TPE
	case execv1.Sampler_SAMPLER_RANDOM:
		spec.Sampler = experiment.Random
	}
	if o := req.GetObjective(); o != nil {
		spec.Objective = experiment.Objective{Metric: o.GetMetric(), Node: o.GetNode()}
		switch o.GetDirection() {
		case execv1.Direction_DIRECTION_MINIMIZE:
			spec.Objective.Direction = experiment.Minimize
		case execv1.Direction_DIRECTION_MAXIMIZE:
			spec.Objective.Direction = experiment.Maximize
		}
	}
	for _, d := range req.GetSpace() {
		dim := experiment.Dimension{Name: d.GetName(), Low: d.GetLow(), High: d.GetHigh()}
		switch d.GetKind() {
		case execv1.DimensionKind_DIMENSION_KIND_REAL:
			dim.Kind = experiment.Real
		case execv1.DimensionKind_DIMENSION_KIND_INTEGER:
			dim.Kind = experiment.Integer
		case execv1.DimensionKind_DIMENSION_KIND_CATEGORICAL:
			dim.Kind = experiment.Categorical
		}
		switch d.GetPrior() {
		case execv1.Prior_PRIOR_LOG_UNIFORM:
			dim.Prior = experiment.LogUniform
		case execv1.Prior_PRIOR_UNIFORM:
			dim.Prior = experiment.Uniform
		case execv1.Prior_PRIOR_UNSPECIFIED:
		default: // the engine's check names it with the rest
			dim.Prior = experiment.Prior(fmt.Sprintf("enum value %d", d.GetPrior()))
		}
		for _, c := range d.GetCategories() {
			v := c.AsInterface()
			if f, ok := v.(float64); ok && f == float64(int64(f)) {
				v = int64(f)
			}
			dim.Categories = append(dim.Categories, v)
		}
		spec.Space = append(spec.Space, dim)
	}
	return spec, nil
}

func experimentStateToProto(s experiment.State) execv1.ExperimentState {
	return execv1.ExperimentState(execv1.ExperimentState_value["EXPERIMENT_STATE_"+string(s)])
}

func trialStateToProto(s experiment.TrialState) execv1.TrialState {
	return execv1.TrialState(execv1.TrialState_value["TRIAL_STATE_"+string(s)])
}

func dimensionToProto(d experiment.Dimension) *execv1.SearchDimension {
	out := &execv1.SearchDimension{Name: d.Name, Low: d.Low, High: d.High,
		Kind: execv1.DimensionKind(execv1.DimensionKind_value["DIMENSION_KIND_"+strings.ToUpper(string(d.Kind))])}
	switch d.Prior {
	case experiment.Uniform:
		out.Prior = execv1.Prior_PRIOR_UNIFORM
	case experiment.LogUniform:
		out.Prior = execv1.Prior_PRIOR_LOG_UNIFORM
	}
	for _, c := range d.Categories {
		if i, ok := c.(int64); ok {
			c = float64(i)
		}
		if v, err := structpb.NewValue(c); err == nil {
			out.Categories = append(out.Categories, v)
		}
	}
	return out
}

func trialToProto(t experiment.Trial) *execv1.Trial {
	params, _ := structpb.NewStruct(t.Params)
	return &execv1.Trial{
		Number: int32(t.Number), State: trialStateToProto(t.State), Params: params, Value: t.Value,
		RunId: t.RunID, StartTime: ts(t.StartTime), EndTime: ts(t.EndTime), Message: t.Message,
	}
}

func experimentToProto(x experiment.Record, withTrials bool) *execv1.Experiment {
	hp, _ := structpb.NewStruct(x.Spec.Hyperparams)
	out := &execv1.Experiment{
		ExperimentId:      x.ID,
		Name:              x.Spec.Name,
		Pipeline:          x.Spec.Pipeline,
		Env:               x.Spec.Env,
		State:             experimentStateToProto(x.State),
		Message:           x.Message,
		NTrials:           int32(x.Spec.NTrials),
		MaxParallelTrials: int32(x.Spec.MaxParallel),
		Seed:              x.Spec.Seed,
		StartDate:         x.Spec.StartDate,
		EndDate:           x.Spec.EndDate,
		Hyperparams:       hp,
		Select:            x.Spec.Select,
		RequestId:         x.RequestID,
		SharedNodes:       x.SharedNodes,
		SharedRunId:       x.SharedRunID,
		TrialNodes:        x.TrialNodes,
		CreateTime:        ts(x.CreateTime),
		StartTime:         ts(x.StartTime),
		EndTime:           ts(x.EndTime),
		LastSequence:      x.LastSequence,
		Objective:         &execv1.Objective{Metric: x.Spec.Objective.Metric, Node: x.Spec.Objective.Node},
	}
	if x.Spec.Objective.Direction == experiment.Maximize {
		out.Objective.Direction = execv1.Direction_DIRECTION_MAXIMIZE
	} else {
		out.Objective.Direction = execv1.Direction_DIRECTION_MINIMIZE
	}
	if x.Spec.Sampler == experiment.Random {
		out.Sampler = execv1.Sampler_SAMPLER_RANDOM
	} else {
		out.Sampler = execv1.Sampler_SAMPLER_TPE
	}
	for _, d := range x.Spec.Space {
		out.Space = append(out.Space, dimensionToProto(d))
	}
	if best := x.Best(); best != nil {
		out.Best = trialToProto(*best)
	}
	if withTrials {
		for _, t := range x.Trials {
			out.Trials = append(out.Trials, trialToProto(t))
		}
	}
	return out
}

func experimentEventToProto(ev experiment.Event) *execv1.ExperimentEvent {
	out := &execv1.ExperimentEvent{ExperimentId: ev.ExperimentID, Sequence: ev.Sequence, Time: ts(ev.Time)}
	switch ev.Kind {
	case experiment.StateChanged:
		out.Kind = &execv1.ExperimentEvent_ExperimentStateChanged{ExperimentStateChanged: &execv1.ExperimentStateChanged{
			State: experimentStateToProto(ev.State), Message: ev.Message}}
	case experiment.TrialChanged:
		if ev.Trial != nil {
			out.Kind = &execv1.ExperimentEvent_TrialStateChanged{TrialStateChanged: &execv1.TrialStateChanged{
				Trial: trialToProto(*ev.Trial), Best: ev.Best}}
		}
	case experiment.SharedRunChanged:
		out.Kind = &execv1.ExperimentEvent_SharedRunStateChanged{SharedRunStateChanged: &execv1.SharedRunStateChanged{
			RunId: ev.RunID, State: execv1.RunState(execv1.RunState_value["RUN_STATE_"+ev.RunState]), Message: ev.Message}}
	}
	return out
}
