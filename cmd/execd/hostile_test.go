package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/service"
	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// inProcess is the whole gRPC service over a real store and engine, wired
// as execd wires it, on an in-memory listener. Its Spark backend points at
// a loopback port that accepts connections and never answers, so runs that
// start stay RUNNING until they are cancelled, and ready says whether the
// backend takes new runs.
type inProcess struct {
	client execv1.ExecServiceClient
	store  store.Store
	ready  func(bool)
}

func startInProcess(t testing.TB) *inProcess {
	t.Helper()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	var readyMu sync.Mutex
	up := false
	backend := sparkbackend.New(func() string { return "sc://" + silent.Addr().String() }, func() error {
		readyMu.Lock()
		defer readyMu.Unlock()
		if !up {
			return errors.New("no Spark in this test")
		}
		return nil
	}, log)
	eng := engine.New(engine.Options{ProjectDir: "testdata/sqlproj", Env: "dev", Store: st, Backend: backend, Logger: log})
	if err := eng.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := service.NewServer(service.New(eng), health.NewServer(), log)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Close(ctx)
		srv.Stop()
		st.Close()
		silent.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return &inProcess{client: execv1.NewExecServiceClient(conn), store: st, ready: func(b bool) {
		readyMu.Lock()
		up = b
		readyMu.Unlock()
	}}
}

// endedRun records a run of pipeline quick that failed, with 12 events.
func (p *inProcess) endedRun(t testing.TB, id string) {
	t.Helper()
	ctx := context.Background()
	names := []string{"numbers", "evens", "odds", "summary"}
	r := run.Run{ID: id, Params: run.Params{Pipeline: "quick", Env: "dev", StartDate: "2025-01-01", EndDate: "2025-01-31"}, State: run.Pending, CreateTime: time.Now()}
	for _, n := range names {
		r.Nodes = append(r.Nodes, run.Node{Name: n, State: run.NodePending})
	}
	if _, _, err := p.store.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	evs := []run.Event{{Kind: run.RunStateChanged, RunState: run.Running}}
	for i := 0; i < 7; i++ {
		evs = append(evs, run.Event{Kind: run.NodeMessage, Node: "numbers", Message: "working"})
	}
	evs = append(evs,
		run.Event{Kind: run.NodeStateChanged, Node: "numbers", NodeState: run.NodeFailed, Error: &run.Error{Type: "X", Message: "boom"}},
		run.Event{Kind: run.NodeStateChanged, Node: "evens", NodeState: run.NodeSkipped},
		run.Event{Kind: run.RunStateChanged, RunState: run.Failed, Message: "a failed"})
	out, err := p.store.Append(ctx, id, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if last := out[len(out)-1].Sequence; last != 12 {
		t.Fatalf("the ended run's last event is %d, want 12", last)
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

// Each bad input gets the code that names the caller's mistake, never
// INTERNAL.
func TestHostile_BadInputsGetTheirCodes(t *testing.T) {
	p := startInProcess(t)
	p.endedRun(t, "r-ended")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deep := map[string]any{"leaf": 1.0}
	for i := 0; i < 120; i++ {
		deep = map[string]any{"x": deep}
	}
	deepStruct, err := structpb.NewStruct(deep)
	if err != nil {
		t.Fatal(err)
	}
	watch := func(after int64) error {
		stream, err := p.client.WatchRun(ctx, &execv1.WatchRunRequest{RunId: "r-ended", AfterSequence: after})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err != nil {
				return err
			}
		}
	}
	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"execute with a tab in request_id", func() error {
			_, err := p.client.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{RequestId: "a\tb", Pipeline: "quick"})
			return err
		}, codes.InvalidArgument},
		{"repair with a tab in request_id", func() error {
			_, err := p.client.RepairRun(ctx, &execv1.RepairRunRequest{RunId: "r-ended", RequestId: "a\tb"})
			return err
		}, codes.InvalidArgument},
		{"watch after the last event", func() error { return watch(13) }, codes.InvalidArgument},
		{"watch after 10^12", func() error { return watch(1_000_000_000_000) }, codes.InvalidArgument},
		{"hyperparams nested 120 deep", func() error {
			_, err := p.client.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "quick", Hyperparams: deepStruct})
			return err
		}, codes.InvalidArgument},
		{"unknown run", func() error {
			_, err := p.client.GetRun(ctx, &execv1.GetRunRequest{RunId: "nope"})
			return err
		}, codes.NotFound},
		{"cancel an ended run", func() error {
			_, err := p.client.CancelRun(ctx, &execv1.CancelRunRequest{RunId: "r-ended"})
			return err
		}, codes.FailedPrecondition},
		{"no Spark", func() error {
			_, err := p.client.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "quick", StartDate: "2025-01-01", EndDate: "2025-01-01"})
			return err
		}, codes.Unavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := codeOf(c.call()); got != c.want {
				t.Errorf("code %s, want %s", got, c.want)
			}
		})
	}
	// The run with 12 events is whole after all that, and watching from its
	// last event ends cleanly.
	if err := watch(12); err != nil && !strings.Contains(err.Error(), "EOF") && codeOf(err) != codes.OK {
		t.Errorf("watching from the last event: %v", err)
	}
}

// Concurrent repairs of one run: one reopens it, the others are told it is
// no longer an ended run.
func TestHostile_ConcurrentRepairsRepairOnce(t *testing.T) {
	p := startInProcess(t)
	p.endedRun(t, "r-ended")
	p.ready(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	codesSeen := make([]codes.Code, 10)
	for i := range codesSeen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.client.RepairRun(ctx, &execv1.RepairRunRequest{RunId: "r-ended"})
			codesSeen[i] = codeOf(err)
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, c := range codesSeen {
		switch c {
		case codes.OK:
			ok++
		case codes.FailedPrecondition:
			refused++
		default:
			t.Errorf("a concurrent repair got %s", c)
		}
	}
	if ok != 1 || refused != 9 {
		t.Errorf("%d repairs succeeded and %d were refused; want 1 and 9", ok, refused)
	}
	if _, err := p.client.CancelRun(ctx, &execv1.CancelRunRequest{RunId: "r-ended"}); err != nil {
		t.Errorf("cancelling the repair: %v", err)
	}
}

// FuzzHandlers sends arbitrary request messages of every call through the
// real service, store and engine: invalid input must never come back as
// INTERNAL (nor UNKNOWN), which stays the mark of a bug.
func FuzzHandlers(f *testing.F) {
	seeds := []proto.Message{
		&execv1.ExecutePipelineRequest{Pipeline: "quick", RequestId: "x\ty", Priority: 5},
		&execv1.ValidatePipelineRequest{Pipeline: "quick", StartDate: "2025-02-30"},
		&execv1.WatchRunRequest{RunId: "r-ended", AfterSequence: 99},
		&execv1.GetRunRequest{RunId: "r-ended"},
		&execv1.ListRunsRequest{PageSize: 3, PageToken: "bogus"},
		&execv1.CancelRunRequest{RunId: "r-ended"},
		&execv1.StopRunRequest{RunId: "missing"},
		&execv1.RepairRunRequest{RunId: "r-ended", RequestId: "r1"},
		&execv1.GetPipelineRequest{Name: "quick"},
		&execv1.ListPipelinesRequest{Env: "prod"},
		&execv1.RunExperimentRequest{Pipeline: "quick", Space: []*execv1.SearchDimension{{Name: "x", Kind: execv1.DimensionKind_DIMENSION_KIND_REAL, Low: 1, High: 0, Prior: 7}}},
		&execv1.GetExperimentRequest{ExperimentId: "missing"},
		&execv1.ListExperimentsRequest{PageToken: "bogus"},
		&execv1.WatchExperimentRequest{ExperimentId: "missing", AfterSequence: 3},
		&execv1.CancelExperimentRequest{ExperimentId: "missing"},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	p := startInProcess(f)
	p.endedRun(f, "r-ended")
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c := p.client
		var err error
		switch which % 15 {
		case 0:
			err = fuzzCall(ctx, data, &execv1.ExecutePipelineRequest{}, c.ExecutePipeline)
		case 1:
			err = fuzzCall(ctx, data, &execv1.ValidatePipelineRequest{}, c.ValidatePipeline)
		case 2:
			req := &execv1.WatchRunRequest{}
			_ = proto.Unmarshal(data, req)
			var stream execv1.ExecService_WatchRunClient
			if stream, err = c.WatchRun(ctx, req); err == nil {
				for err == nil {
					_, err = stream.Recv()
				}
				if errors.Is(err, io.EOF) { // the stream ended after the run's last event
					err = nil
				}
			}
		case 3:
			err = fuzzCall(ctx, data, &execv1.GetRunRequest{}, c.GetRun)
		case 4:
			err = fuzzCall(ctx, data, &execv1.ListRunsRequest{}, c.ListRuns)
		case 5:
			err = fuzzCall(ctx, data, &execv1.CancelRunRequest{}, c.CancelRun)
		case 6:
			err = fuzzCall(ctx, data, &execv1.StopRunRequest{}, c.StopRun)
		case 7:
			err = fuzzCall(ctx, data, &execv1.RepairRunRequest{}, c.RepairRun)
		case 8:
			err = fuzzCall(ctx, data, &execv1.GetPipelineRequest{}, c.GetPipeline)
		case 9:
			err = fuzzCall(ctx, data, &execv1.ListPipelinesRequest{}, c.ListPipelines)
		case 10:
			err = fuzzCall(ctx, data, &execv1.RunExperimentRequest{}, c.RunExperiment)
		case 11:
			err = fuzzCall(ctx, data, &execv1.GetExperimentRequest{}, c.GetExperiment)
		case 12:
			err = fuzzCall(ctx, data, &execv1.ListExperimentsRequest{}, c.ListExperiments)
		case 13:
			req := &execv1.WatchExperimentRequest{}
			_ = proto.Unmarshal(data, req)
			var stream execv1.ExecService_WatchExperimentClient
			if stream, err = c.WatchExperiment(ctx, req); err == nil {
				for err == nil {
					_, err = stream.Recv()
				}
				if errors.Is(err, io.EOF) {
					err = nil
				}
			}
		case 14:
			err = fuzzCall(ctx, data, &execv1.CancelExperimentRequest{}, c.CancelExperiment)
		}
		if code := codeOf(err); code == codes.Internal || code == codes.Unknown {
			t.Fatalf("call %d answered %s: %v", which%15, code, err)
		}
	})
}

// fuzzCall decodes data into req (whatever decodes is sent) and makes the
// unary call.
func fuzzCall[R proto.Message, S any](ctx context.Context, data []byte, req R, call func(context.Context, R, ...grpc.CallOption) (S, error)) error {
	_ = proto.Unmarshal(data, req)
	_, err := call(ctx, req)
	return err
}

func getRun(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, id string) *execv1.Run {
	t.Helper()
	resp, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRun()
}

func waitState(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, id string, want execv1.RunState) *execv1.Run {
	t.Helper()
	for {
		r := getRun(ctx, t, cl, id)
		if r.GetState() == want {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s stayed %s, want %s", id, r.GetState(), want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The queue without Spark: the backend's server never answers, so the
// first run holds its pipeline's only slot while the tests look at what
// waits behind it.
func TestQueue_ARunWaitsForItsPipelinesSlotCanBeCancelledAndRefusedWithNoWait(t *testing.T) {
	p := startInProcess(t)
	p.ready(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := func(id string) *execv1.ExecutePipelineRequest {
		return &execv1.ExecutePipelineRequest{RequestId: id, Pipeline: "quick"}
	}
	first := startRun(ctx, t, p.client, req("first"))
	waitState(ctx, t, p.client, first, execv1.RunState_RUN_STATE_RUNNING)
	second := startRun(ctx, t, p.client, req("second"))
	if r := waitState(ctx, t, p.client, second, execv1.RunState_RUN_STATE_QUEUED); r.GetStartTime() != nil {
		t.Errorf("a queued run has a start time: %v", r.GetStartTime())
	}
	_, err := p.client.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "quick", NoWait: true})
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), first) {
		t.Errorf("no_wait behind a running run: %v; want FAILED_PRECONDITION naming %s", err, first)
	}
	resp, err := p.client.CancelRun(ctx, &execv1.CancelRunRequest{RunId: second, Reason: "not needed"})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetRun(); r.GetState() != execv1.RunState_RUN_STATE_CANCELLED || r.GetStartTime() != nil || !strings.Contains(r.GetMessage(), "before it started") {
		t.Errorf("cancelled queued run: %s, start %v, %q", r.GetState(), r.GetStartTime(), r.GetMessage())
	}
	// The events of a queued run say QUEUED, then CANCELLED.
	stream, err := p.client.WatchRun(ctx, &execv1.WatchRunRequest{RunId: second})
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for {
		ev, err := stream.Recv()
		if err != nil {
			break
		}
		if rs := ev.GetEvent().GetRunStateChanged(); rs != nil {
			states = append(states, strings.TrimPrefix(rs.GetState().String(), "RUN_STATE_"))
		}
	}
	if strings.Join(states, " ") != "PENDING QUEUED CANCELLED" {
		t.Errorf("run states %v; want PENDING QUEUED CANCELLED", states)
	}
}

// Queued runs are stored: a restart of the engine queues them again and
// admits them.
func TestQueue_QueuedRunsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers: runs stay RUNNING
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	open := func() (*engine.Engine, store.Store) {
		st, err := sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		be := sparkbackend.New(func() string { return "sc://" + silent.Addr().String() }, func() error { return nil }, log)
		eng := engine.New(engine.Options{ProjectDir: "testdata/sqlproj", Env: "dev", Store: st, Backend: be, Logger: log, MaxConcurrentRuns: 1})
		if err := eng.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		return eng, st
	}
	eng, st := open()
	// slow's nap keeps the single slot busy; quick waits behind it.
	slow, err := eng.Execute(ctx, "", run.Params{Pipeline: "slow"}, false)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := eng.Execute(ctx, "", run.Params{Pipeline: "quick", Priority: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := eng.Get(ctx, queued.ID); r.State != run.Queued {
		t.Fatalf("the second run is %s with one slot taken; want QUEUED", r.State)
	}
	closeCtx, closeCancel := context.WithTimeout(ctx, 30*time.Second)
	if err := eng.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	closeCancel()
	st.Close()

	eng, st = open()
	defer st.Close()
	defer func() { c, cc := context.WithTimeout(context.Background(), 30*time.Second); _ = eng.Close(c); cc() }()
	if r, _ := eng.Get(ctx, slow.ID); r.State != run.Interrupted {
		t.Errorf("the running run is %s after the restart; want INTERRUPTED", r.State)
	}
	for {
		r, _ := eng.Get(ctx, queued.ID)
		if r.State != run.Queued {
			if r.Params.Priority != 3 {
				t.Errorf("the requeued run lost its priority: %d", r.Params.Priority)
			}
			break // admitted
		}
		select {
		case <-ctx.Done():
			t.Fatal("the queued run was never admitted after the restart")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
