package service

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/contract"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func (s *Service) RunExperiment(ctx context.Context, req *execv1.RunExperimentRequest) (*execv1.RunExperimentResponse, error) {
	project, err := s.inProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	spec, err := specFromProto(req)
	if err != nil {
		return nil, toStatus(err)
	}
	spec.Project = project
	x, err := s.eng.RunExperiment(ctx, req.GetRequestId(), spec, req.Seed != nil)
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := experimentToProto(x, true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.RunExperimentResponse{Experiment: out}, nil
}

func (s *Service) GetExperiment(ctx context.Context, req *execv1.GetExperimentRequest) (*execv1.GetExperimentResponse, error) {
	x, err := s.experimentIn(ctx, req.GetExperimentId(), req.GetProject())
	if err != nil {
		return nil, err
	}
	out, err := experimentToProto(x, true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.GetExperimentResponse{Experiment: out}, nil
}

func (s *Service) ListExperiments(ctx context.Context, req *execv1.ListExperimentsRequest) (*execv1.ListExperimentsResponse, error) {
	projects, none, err := s.listedProjects(ctx, req.GetProject())
	if err != nil || none {
		return &execv1.ListExperimentsResponse{}, err
	}
	f := store.ListFilter{Projects: projects, Pipeline: req.GetPipeline()}
	xs, next, err := s.eng.ListExperiments(ctx, f, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &execv1.ListExperimentsResponse{NextPageToken: next}
	for _, x := range xs {
		out, err := experimentToProto(x, false)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Experiments = append(resp.Experiments, out)
	}
	return resp, nil
}

func (s *Service) WatchExperiment(req *execv1.WatchExperimentRequest, stream execv1.ExecService_WatchExperimentServer) error {
	ctx, cancel := s.watching(stream.Context(), func(ctx context.Context) bool {
		x, err := s.eng.GetExperiment(ctx, req.GetExperimentId())
		return err == nil && x.State.Terminal()
	})
	defer cancel()
	x, err := s.experimentIn(ctx, req.GetExperimentId(), req.GetProject())
	if err != nil {
		return err
	}
	w, err := s.eng.WatchExperiment(ctx, req.GetExperimentId(), req.GetAfterSequence())
	if err != nil {
		return s.watchEnded(ctx, err, req.GetAfterSequence())
	}
	last := req.GetAfterSequence()
	for ev := range w.Events() {
		if err := stream.Send(&execv1.WatchExperimentResponse{Event: experimentEventToProto(ev, x.Spec.Project)}); err != nil {
			return err
		}
		last = ev.Sequence
	}
	return s.watchEnded(ctx, w.Err(), last)
}

func (s *Service) CancelExperiment(ctx context.Context, req *execv1.CancelExperimentRequest) (*execv1.CancelExperimentResponse, error) {
	if _, err := s.experimentIn(ctx, req.GetExperimentId(), req.GetProject()); err != nil {
		return nil, err
	}
	x, err := s.eng.CancelExperiment(ctx, req.GetExperimentId(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := experimentToProto(x, true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.CancelExperimentResponse{Experiment: out}, nil
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
		spec.Space = append(spec.Space, contract.Dimension(d))
	}
	return spec, nil
}

func experimentStateToProto(s experiment.State) execv1.ExperimentState {
	return execv1.ExperimentState(execv1.ExperimentState_value["EXPERIMENT_STATE_"+string(s)])
}

func trialStateToProto(s experiment.TrialState) execv1.TrialState {
	return execv1.TrialState(execv1.TrialState_value["TRIAL_STATE_"+string(s)])
}

func trialToProto(t experiment.Trial) *execv1.Trial {
	params, _ := structpb.NewStruct(t.Params)
	return &execv1.Trial{
		Number: int32(t.Number), State: trialStateToProto(t.State), Params: params, Value: t.Value,
		RunId: t.RunID, StartTime: ts(t.StartTime), EndTime: ts(t.EndTime), Message: t.Message,
		Mlflow: mlflowToProto(t.MLflow),
	}
}

func experimentToProto(x experiment.Record, withTrials bool) (*execv1.Experiment, error) {
	hp, _ := structpb.NewStruct(x.Spec.Hyperparams)
	out := &execv1.Experiment{
		ExperimentId:      x.ID,
		Name:              x.Spec.Name,
		Project:           x.Spec.Project,
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
		Mlflow:            mlflowToProto(x.MLflow),
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
		pd, err := contract.SearchDimension(d)
		if err != nil {
			return nil, fmt.Errorf("experiment %s: %w", x.ID, err)
		}
		out.Space = append(out.Space, pd)
	}
	if best := x.Best(); best != nil {
		out.Best = trialToProto(*best)
	}
	if withTrials {
		for _, t := range x.Trials {
			out.Trials = append(out.Trials, trialToProto(t))
		}
	}
	return out, nil
}

func experimentEventToProto(ev experiment.Event, project string) *execv1.ExperimentEvent {
	out := &execv1.ExperimentEvent{ExperimentId: ev.ExperimentID, Project: project, Sequence: ev.Sequence, Time: ts(ev.Time)}
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
