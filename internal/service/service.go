// Package service is the gRPC face of the engine. Each handler checks what
// protovalidate cannot, calls one engine method and maps its error in one
// place (toStatus). No scheduling, Spark or SQL lives here.
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Service implements execv1.ExecServiceServer over an Engine.
type Service struct {
	execv1.UnimplementedExecServiceServer
	eng     *engine.Engine
	log     *slog.Logger   // set by NewServer
	catalog ProjectCatalog // nil: ListProjects describes the engine's

	stopping chan struct{} // closed by EndWatches
	stopOnce sync.Once
}

// New returns the service for eng.
func New(eng *engine.Engine) *Service {
	return &Service{eng: eng, log: slog.Default(), stopping: make(chan struct{})}
}

// EndWatches ends the WatchRun and WatchExperiment streams of runs and
// experiments that have not ended (a queued run, an experiment the next
// execd carries on) with UNAVAILABLE saying after which sequence to watch
// again, and refuses new ones likewise: execd is stopping, and a stream
// left open would hold its stop until the shutdown timeout. A stream of
// one that has ended finishes by itself with its terminal event. Call it
// once the runs have recorded how they ended.
func (s *Service) EndWatches() { s.stopOnce.Do(func() { close(s.stopping) }) }

// watching is ctx, cancelled as well once EndWatches is called unless
// what is watched has ended by then.
func (s *Service) watching(ctx context.Context, ended func(context.Context) bool) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-s.stopping:
			if !ended(ctx) {
				cancel(errStopping)
			}
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// errStopping is the cause of a watch EndWatches ended.
var errStopping = errors.New("execd is stopping")

// watchEnded is what a watch that stopped sending returns: UNAVAILABLE
// when EndWatches ended it, the watcher's error otherwise (nil when the
// caller went away or the stream reached its end).
func (s *Service) watchEnded(ctx context.Context, err error, last int64) error {
	if errors.Is(context.Cause(ctx), errStopping) {
		return status.Errorf(codes.Unavailable, "execd is stopping; watch again with after_sequence %d once it is back", last)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return toStatus(err)
	}
	return nil
}

func (s *Service) ValidatePipeline(ctx context.Context, req *execv1.ValidatePipelineRequest) (*execv1.ValidatePipelineResponse, error) {
	project, err := s.inProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	p, err := s.eng.Validate(ctx, engine.ValidateRequest{
		Project:   project,
		Pipeline:  req.GetPipeline(),
		Env:       req.GetEnv(),
		StartDate: req.GetStartDate(),
		EndDate:   req.GetEndDate(),
		Select:    req.GetSelect(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.ValidatePipelineResponse{Plan: planToProto(p)}, nil
}

func (s *Service) ExecutePipeline(ctx context.Context, req *execv1.ExecutePipelineRequest) (*execv1.ExecutePipelineResponse, error) {
	project, err := s.inProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	hp, err := hyperparamsFromProto(req.GetHyperparams())
	if err != nil {
		return nil, toStatus(err)
	}
	r, err := s.eng.Execute(ctx, req.GetRequestId(), run.Params{
		Project:      project,
		Pipeline:     req.GetPipeline(),
		Env:          req.GetEnv(),
		StartDate:    req.GetStartDate(),
		EndDate:      req.GetEndDate(),
		MaxWorkers:   int(req.GetMaxWorkers()),
		Hyperparams:  hp,
		ModelVersion: req.GetModelVersion(),
		Select:       req.GetSelect(),
		FailFast:     req.GetFailFast(),
		Priority:     int(req.GetPriority()),
		// ExecutePipeline needs the operator role already (auth.go), so
		// clearing a checkpoint or a sink needs no more.
		FullRefresh:     req.GetFullRefresh(),
		ResetCheckpoint: req.GetResetCheckpoint(),
	}, req.GetNoWait())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.ExecutePipelineResponse{Run: runToProto(r)}, nil
}

func (s *Service) WatchRun(req *execv1.WatchRunRequest, stream execv1.ExecService_WatchRunServer) error {
	ctx, cancel := s.watching(stream.Context(), func(ctx context.Context) bool {
		r, err := s.eng.Get(ctx, req.GetRunId())
		return err == nil && r.State.Terminal()
	})
	defer cancel()
	r, err := s.runIn(ctx, req.GetRunId(), req.GetProject())
	if err != nil {
		return err
	}
	w, err := s.eng.Watch(ctx, req.GetRunId(), req.GetAfterSequence())
	if err != nil {
		return s.watchEnded(ctx, err, req.GetAfterSequence())
	}
	last := req.GetAfterSequence()
	for ev := range w.Events() {
		if err := stream.Send(&execv1.WatchRunResponse{Event: eventToProto(ev, r.Params.Project)}); err != nil {
			return err
		}
		last = ev.Sequence
	}
	return s.watchEnded(ctx, w.Err(), last)
}

func (s *Service) GetRun(ctx context.Context, req *execv1.GetRunRequest) (*execv1.GetRunResponse, error) {
	r, err := s.runIn(ctx, req.GetRunId(), req.GetProject())
	if err != nil {
		return nil, err
	}
	return &execv1.GetRunResponse{Run: runToProto(r)}, nil
}

func (s *Service) ListRuns(ctx context.Context, req *execv1.ListRunsRequest) (*execv1.ListRunsResponse, error) {
	projects, none, err := s.listedProjects(ctx, req.GetProject())
	if err != nil || none {
		return &execv1.ListRunsResponse{}, err
	}
	f := store.ListFilter{Projects: projects, Pipeline: req.GetPipeline()}
	for _, st := range req.GetStates() {
		f.States = append(f.States, runStateFromProto(st))
	}
	runs, next, err := s.eng.ListRuns(ctx, f, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &execv1.ListRunsResponse{NextPageToken: next}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, runToProto(r))
	}
	return resp, nil
}

func (s *Service) CancelRun(ctx context.Context, req *execv1.CancelRunRequest) (*execv1.CancelRunResponse, error) {
	if _, err := s.runIn(ctx, req.GetRunId(), req.GetProject()); err != nil {
		return nil, err
	}
	r, err := s.eng.Cancel(ctx, req.GetRunId(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.CancelRunResponse{Run: runToProto(r)}, nil
}

func (s *Service) StopRun(ctx context.Context, req *execv1.StopRunRequest) (*execv1.StopRunResponse, error) {
	if _, err := s.runIn(ctx, req.GetRunId(), req.GetProject()); err != nil {
		return nil, err
	}
	r, err := s.eng.Stop(ctx, req.GetRunId(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.StopRunResponse{Run: runToProto(r)}, nil
}

func (s *Service) RepairRun(ctx context.Context, req *execv1.RepairRunRequest) (*execv1.RepairRunResponse, error) {
	if _, err := s.runIn(ctx, req.GetRunId(), req.GetProject()); err != nil {
		return nil, err
	}
	r, err := s.eng.Repair(ctx, req.GetRunId(), req.GetRequestId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.RepairRunResponse{Run: runToProto(r)}, nil
}

func (s *Service) ListPipelines(ctx context.Context, req *execv1.ListPipelinesRequest) (*execv1.ListPipelinesResponse, error) {
	project, err := s.inProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	ps, err := s.eng.Pipelines(ctx, project, req.GetEnv())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &execv1.ListPipelinesResponse{}
	for _, p := range ps {
		resp.Pipelines = append(resp.Pipelines, &execv1.PipelineSummary{
			Name: p.Name, Type: pipelineTypeToProto(p.Type), NodeCount: int32(p.Nodes),
		})
	}
	return resp, nil
}

func (s *Service) GetPipeline(ctx context.Context, req *execv1.GetPipelineRequest) (*execv1.GetPipelineResponse, error) {
	project, err := s.inProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	p, err := s.eng.Pipeline(ctx, project, req.GetName(), req.GetEnv())
	if err != nil {
		return nil, toStatus(err)
	}
	return &execv1.GetPipelineResponse{Pipeline: pipelineToProto(p)}, nil
}

// ListReplicas lists the replicas sharing the store.
func (s *Service) ListReplicas(ctx context.Context, _ *execv1.ListReplicasRequest) (*execv1.ListReplicasResponse, error) {
	rs, now, err := s.eng.Replicas(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &execv1.ListReplicasResponse{}
	for _, r := range rs {
		resp.Replicas = append(resp.Replicas, &execv1.Replica{
			Name: r.Name, Address: r.Address, StartTime: ts(r.Started), HeartbeatTime: ts(r.Heartbeat),
			ExpireTime: ts(r.Expires), Alive: r.Expires.After(now), RunIds: r.Runs,
		})
	}
	return resp, nil
}
