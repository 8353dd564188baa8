package client

import (
	"context"
	"fmt"
	"iter"
	"sync"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// ExperimentOptions describe a hyperparameter search. Declared starts an
// experiment of the project's experiments config, whose settings fill the
// fields left empty.
type ExperimentOptions struct {
	Declared           string
	Pipeline           string
	Env                string
	Select             []string
	Space              []*execv1.SearchDimension
	Objective          *execv1.Objective
	Trials             int32
	MaxParallelTrials  int32
	Seed               *int64
	Sampler            execv1.Sampler
	StartDate, EndDate string
	Hyperparams        map[string]any // fixed, under the searched ones
	RequestID          string         // random when empty, as in ExecuteOptions
	Project            string         // the client's when ""
}

// RunExperiment starts a hyperparameter search and returns its handle at once.
func (c *Client) RunExperiment(ctx context.Context, o ExperimentOptions) (*Experiment, error) {
	req := &execv1.RunExperimentRequest{RequestId: o.RequestID, Experiment: o.Declared, Pipeline: o.Pipeline, Env: o.Env,
		Select: o.Select, Space: o.Space, Objective: o.Objective, NTrials: o.Trials, MaxParallelTrials: o.MaxParallelTrials,
		Seed: o.Seed, Sampler: o.Sampler, StartDate: o.StartDate, EndDate: o.EndDate, Project: c.in(o.Project)}
	hp, err := hyperparams(o.Hyperparams)
	if err != nil {
		return nil, err
	}
	req.RequestId, req.Hyperparams = requestID(req.RequestId), hp
	resp, err := retry(ctx, c, func(ctx context.Context) (*execv1.RunExperimentResponse, error) {
		return c.svc.RunExperiment(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	x := c.Experiment(resp.GetExperiment().GetExperimentId())
	x.set(resp.GetExperiment())
	return x, nil
}

// Experiment is the handle of an experiment by id; it makes no call.
func (c *Client) Experiment(id string) *Experiment { return &Experiment{c: c, id: id} }

// ExperimentIn is Experiment for one the caller knows the project of.
func (c *Client) ExperimentIn(project, id string) *Experiment {
	return &Experiment{c: c, id: id, project: project}
}

// ExperimentsOptions filter a listing of experiments, as RunsOptions.
type ExperimentsOptions struct {
	Pipeline    string
	Project     string
	AllProjects bool
	PageSize    int32
}

// Experiments lists experiments, newest first, a page at a time; their
// snapshots have no trials (Get reads them).
func (c *Client) Experiments(ctx context.Context, o ExperimentsOptions) iter.Seq2[*Experiment, error] {
	project := c.in(o.Project)
	if o.AllProjects {
		project = ""
	}
	return pages(ctx, c, func(ctx context.Context, token string) ([]*Experiment, string, error) {
		req := &execv1.ListExperimentsRequest{PageSize: o.PageSize, PageToken: token, Pipeline: o.Pipeline, Project: project}
		resp, err := c.svc.ListExperiments(ctx, req)
		if err != nil {
			return nil, "", err
		}
		out := make([]*Experiment, 0, len(resp.GetExperiments()))
		for _, px := range resp.GetExperiments() {
			x := c.Experiment(px.GetExperimentId())
			x.set(px)
			out = append(out, x)
		}
		return out, resp.GetNextPageToken(), nil
	})
}

// Experiment is the handle of an experiment, as Run is of a run.
type Experiment struct {
	c       *Client
	id      string
	project string

	mu   sync.Mutex
	snap *execv1.Experiment
}

func (x *Experiment) ID() string { return x.id }

// Snapshot is the experiment as last read, or nil before any read.
func (x *Experiment) Snapshot() *execv1.Experiment {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.snap
}

func (x *Experiment) set(px *execv1.Experiment) *execv1.Experiment {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.snap = px
	return px
}

// Get reads the experiment with its trials.
func (x *Experiment) Get(ctx context.Context) (*execv1.Experiment, error) {
	resp, err := retry(ctx, x.c, func(ctx context.Context) (*execv1.GetExperimentResponse, error) {
		return x.c.svc.GetExperiment(ctx, &execv1.GetExperimentRequest{ExperimentId: x.id, Project: x.project})
	})
	if err != nil {
		return nil, err
	}
	return x.set(resp.GetExperiment()), nil
}

// Watch yields the experiment's events from the first, as Run.Watch.
func (x *Experiment) Watch(ctx context.Context) iter.Seq2[ExperimentEvent, error] {
	return x.WatchAfter(ctx, 0)
}

// WatchAfter yields the events with a sequence above after, as Run.WatchAfter.
func (x *Experiment) WatchAfter(ctx context.Context, after int64) iter.Seq2[ExperimentEvent, error] {
	return follow(ctx, x.c, after,
		func(ctx context.Context, after int64) (func() (ExperimentEvent, int64, error), error) {
			req := &execv1.WatchExperimentRequest{ExperimentId: x.id, AfterSequence: after, Project: x.project}
			stream, err := x.c.svc.WatchExperiment(ctx, req)
			if err != nil {
				return nil, err
			}
			return func() (ExperimentEvent, int64, error) {
				resp, err := stream.Recv()
				if err != nil {
					return ExperimentEvent{}, 0, err
				}
				return experimentEventFromProto(resp.GetEvent()), resp.GetEvent().GetSequence(), nil
			}, nil
		},
		func(ctx context.Context) (bool, int64, error) {
			resp, err := x.c.svc.GetExperiment(ctx, &execv1.GetExperimentRequest{ExperimentId: x.id, Project: x.project})
			if err != nil {
				return false, 0, err
			}
			px := x.set(resp.GetExperiment())
			return ExperimentTerminal(px.GetState()), px.GetLastSequence(), nil
		})
}

// Wait follows the experiment until it ends and returns it with its best
// trial; one that did not succeed is an *ExperimentFailedError.
func (x *Experiment) Wait(ctx context.Context) (*execv1.Experiment, error) {
	for _, err := range x.WatchAfter(ctx, x.Snapshot().GetLastSequence()) {
		if err != nil {
			return nil, fmt.Errorf("wait for experiment %s: %w", x.id, err)
		}
	}
	px := x.Snapshot()
	if px.GetState() != ExperimentSucceeded {
		return px, &ExperimentFailedError{ExperimentID: x.id, Project: px.GetProject(), State: px.GetState(), Message: px.GetMessage()}
	}
	return px, nil
}

// Cancel stops the experiment's trials; not retried, as Run.Cancel.
func (x *Experiment) Cancel(ctx context.Context, reason string) (*execv1.Experiment, error) {
	resp, err := once(ctx, func(ctx context.Context) (*execv1.CancelExperimentResponse, error) {
		return x.c.svc.CancelExperiment(ctx, &execv1.CancelExperimentRequest{ExperimentId: x.id, Reason: reason, Project: x.project})
	})
	if err != nil {
		return nil, err
	}
	return x.set(resp.GetExperiment()), nil
}
