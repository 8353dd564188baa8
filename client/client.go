// Package client is the Go client of execd: start, follow and manage the
// runs and experiments of tauro pipelines.
//
//	c, err := client.Dial(ctx, "127.0.0.1:50051", client.WithProject("sales"))
//	run, err := c.Execute(ctx, "daily_sales", client.ExecuteOptions{StartDate: "2025-01-01"})
//	for ev, err := range run.Watch(ctx) { ... }
//	final, err := run.Wait(ctx) // a *RunFailedError names each failed node's error
//
// Every call takes a context; its deadline or cancellation bounds the call,
// including the retries and reconnects made on its behalf. Errors are typed
// (see StatusError, InvalidArgumentError, PermissionDeniedError,
// RunFailedError) and match the Err* sentinels with errors.Is.
//
// It imports gRPC, protobuf and the generated contract (gen/tauro/exec/v1)
// only, so a service that calls execd stays small.
package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"iter"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// Environment variables read by Dial when no option says otherwise; the
// Python client and the CLI read the same ones.
const (
	TokenEnv   = "TAURO_EXEC_TOKEN"
	ProjectEnv = "TAURO_EXEC_PROJECT"
)

// Client is a connection to execd. It is safe for concurrent use; Close
// releases it.
type Client struct {
	conn       *grpc.ClientConn
	svc        execv1.ExecServiceClient
	project    string
	retryFor   time.Duration
	reconnects time.Duration
}

// Dial connects to execd at target (host:port) and checks that it answers
// and accepts the credentials (GetCaller), so a wrong address or token fails
// here rather than at the first run. While execd is unreachable it retries
// until ctx ends or the retry budget (WithRetryTimeout) is spent.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	cfg := config{retryFor: defaultRetryFor, reconnects: defaultReconnectTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.token == nil {
		if tok := os.Getenv(TokenEnv); tok != "" {
			cfg.token = staticToken(tok)
		}
	}
	if !cfg.projectSet {
		cfg.project = os.Getenv(ProjectEnv)
	}
	conn, err := grpc.NewClient(target, cfg.dialOptions(target)...)
	if err != nil {
		return nil, fmt.Errorf("dial execd at %s: %w", target, err)
	}
	c := &Client{conn: conn, svc: execv1.NewExecServiceClient(conn), project: cfg.project, retryFor: cfg.retryFor, reconnects: cfg.reconnects}
	if _, err := c.Caller(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("execd at %s: %w", target, err)
	}
	return c, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Project is the project calls about pipelines name when they name none
// ("" means execd's only project).
func (c *Client) Project() string { return c.project }

// Service is the generated client on the same connection, for every call
// this package does not wrap.
func (c *Client) Service() execv1.ExecServiceClient { return c.svc }

// in is the project a call about a pipeline names: its own, else the client's.
func (c *Client) in(project string) string {
	if project != "" {
		return project
	}
	return c.project
}

// Caller says who execd takes this client's credentials for, and their role.
func (c *Client) Caller(ctx context.Context) (*execv1.GetCallerResponse, error) {
	return retry(ctx, c, func(ctx context.Context) (*execv1.GetCallerResponse, error) {
		return c.svc.GetCaller(ctx, &execv1.GetCallerRequest{})
	})
}

// Projects lists the projects execd serves that the caller may view, each
// with its state and the caller's role in it.
func (c *Client) Projects(ctx context.Context) ([]*execv1.Project, error) {
	resp, err := retry(ctx, c, func(ctx context.Context) (*execv1.ListProjectsResponse, error) {
		return c.svc.ListProjects(ctx, &execv1.ListProjectsRequest{})
	})
	return resp.GetProjects(), err
}

// Pipelines lists the pipelines of a project (the client's when "").
func (c *Client) Pipelines(ctx context.Context, project string) ([]*execv1.PipelineSummary, error) {
	resp, err := retry(ctx, c, func(ctx context.Context) (*execv1.ListPipelinesResponse, error) {
		return c.svc.ListPipelines(ctx, &execv1.ListPipelinesRequest{Project: c.in(project)})
	})
	return resp.GetPipelines(), err
}

// ValidateOptions narrow a validation; every field may be left empty.
type ValidateOptions struct {
	Env                string
	StartDate, EndDate string // YYYY-MM-DD
	Select             []string
	Project            string // the client's when ""
}

// Validate checks a pipeline without running anything and returns its plan.
// An invalid pipeline is an *InvalidArgumentError whose Problems list every
// problem found, each with its field path.
func (c *Client) Validate(ctx context.Context, pipeline string, o ValidateOptions) (*execv1.Plan, error) {
	req := &execv1.ValidatePipelineRequest{Pipeline: pipeline, Env: o.Env, StartDate: o.StartDate, EndDate: o.EndDate,
		Select: o.Select, Project: c.in(o.Project)}
	resp, err := retry(ctx, c, func(ctx context.Context) (*execv1.ValidatePipelineResponse, error) {
		return c.svc.ValidatePipeline(ctx, req)
	})
	return resp.GetPlan(), err
}

// ExecuteOptions are a run's settings; every field may be left empty.
type ExecuteOptions struct {
	Env                string
	StartDate, EndDate string // YYYY-MM-DD
	Hyperparams        map[string]any
	ModelVersion       string
	Select             []string // dbt style: "node", "+node", "node+"
	MaxWorkers         int32
	FailFast           bool
	Priority           int32
	// FullRefresh names streaming nodes to rebuild from scratch (their
	// checkpoint and sink data deleted before their query starts);
	// ResetCheckpoint those whose checkpoint to delete, keeping the sink.
	FullRefresh, ResetCheckpoint []string
	// NoWait refuses the run (ErrFailedPrecondition) instead of queueing it
	// when it cannot start at once.
	NoWait bool
	// RequestID makes the call idempotent: the same id in the same project
	// returns the run the first call started. A random one is used when
	// empty, so a call execd did not answer is retried safely.
	RequestID string
	Project   string // the client's when ""
}

// Execute starts a run and returns its handle at once; Wait waits for it.
func (c *Client) Execute(ctx context.Context, pipeline string, o ExecuteOptions) (*Run, error) {
	req := &execv1.ExecutePipelineRequest{RequestId: o.RequestID, Pipeline: pipeline, Env: o.Env, StartDate: o.StartDate,
		EndDate: o.EndDate, ModelVersion: o.ModelVersion, Select: o.Select, MaxWorkers: o.MaxWorkers, FailFast: o.FailFast,
		Priority: o.Priority, NoWait: o.NoWait, Project: c.in(o.Project), FullRefresh: o.FullRefresh, ResetCheckpoint: o.ResetCheckpoint}
	hp, err := hyperparams(o.Hyperparams)
	if err != nil {
		return nil, err
	}
	req.RequestId, req.Hyperparams = requestID(req.RequestId), hp
	resp, err := retry(ctx, c, func(ctx context.Context) (*execv1.ExecutePipelineResponse, error) {
		return c.svc.ExecutePipeline(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	r := c.Run(resp.GetRun().GetRunId())
	r.set(resp.GetRun())
	return r, nil
}

// requestID is id, or a random one: a request with an id can be retried
// without starting a second run.
func requestID(id string) string {
	if id == "" {
		return rand.Text()
	}
	return id
}

// hyperparams is m as the contract carries it; nil when empty.
func hyperparams(m map[string]any) (*structpb.Struct, error) {
	if len(m) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("hyperparams: %w", err)
	}
	return s, nil
}

// Run is the handle of a run by id; it makes no call. By-id calls find the
// run whatever its project; RunIn makes a run of another project not found.
func (c *Client) Run(runID string) *Run { return &Run{c: c, id: runID} }

// RunIn is Run for a run the caller knows the project of.
func (c *Client) RunIn(project, runID string) *Run { return &Run{c: c, id: runID, project: project} }

// RunsOptions filter a listing of runs.
type RunsOptions struct {
	Pipeline string
	States   []RunState
	// Project lists the runs of one project: the client's when "", every
	// project the caller may view with AllProjects.
	Project     string
	AllProjects bool
	PageSize    int32 // runs fetched per call; 0 means execd's default
}

// Runs lists runs, newest first, fetching a page at a time as the loop
// asks for more. Each is a handle whose Snapshot is the run as listed.
func (c *Client) Runs(ctx context.Context, o RunsOptions) iter.Seq2[*Run, error] {
	project := c.in(o.Project)
	if o.AllProjects {
		project = ""
	}
	return pages(ctx, c, func(ctx context.Context, token string) ([]*Run, string, error) {
		req := &execv1.ListRunsRequest{PageSize: o.PageSize, PageToken: token, Pipeline: o.Pipeline, States: o.States, Project: project}
		resp, err := c.svc.ListRuns(ctx, req)
		if err != nil {
			return nil, "", err
		}
		out := make([]*Run, 0, len(resp.GetRuns()))
		for _, pr := range resp.GetRuns() {
			r := c.Run(pr.GetRunId())
			r.set(pr)
			out = append(out, r)
		}
		return out, resp.GetNextPageToken(), nil
	})
}

// pages yields the items of a paged listing, calling list (retried like
// any read) only when the loop has used up the page before.
func pages[T any](ctx context.Context, c *Client, list func(ctx context.Context, token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := ""
		for {
			type page struct {
				items []T
				next  string
			}
			p, err := retry(ctx, c, func(ctx context.Context) (page, error) {
				items, next, err := list(ctx, token)
				return page{items, next}, err
			})
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range p.items {
				if !yield(it, nil) {
					return
				}
			}
			if p.next == "" {
				return
			}
			token = p.next
		}
	}
}
