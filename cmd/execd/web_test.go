package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/testcerts"
)

// webProtocol is one way a browser or Node client reaches execd.
type webProtocol struct {
	name string
	opts []connect.ClientOption
	http *http.Client
}

var (
	http1 = &http.Client{Transport: &http.Transport{}}
	h2c   = func() *http.Client {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: &p}}
	}()
)

// webProtocols are the protocols a browser client may pick: Connect with
// JSON or binary protobuf, and gRPC-Web, over HTTP/1.1, and Connect over
// cleartext HTTP/2 as Node's client speaks it.
var webProtocols = []webProtocol{
	{"connect+json/http1.1", []connect.ClientOption{connect.WithProtoJSON()}, http1},
	{"connect+proto/http1.1", nil, http1},
	{"grpc-web+proto/http1.1", []connect.ClientOption{connect.WithGRPCWeb()}, http1},
	{"connect+json/h2c", []connect.ClientOption{connect.WithProtoJSON()}, h2c},
}

// webClient is the part of ExecService the tests call over Connect or
// gRPC-Web, built from the generated messages with connect-go's generic
// client.
type webClient struct {
	execute *connect.Client[execv1.ExecutePipelineRequest, execv1.ExecutePipelineResponse]
	watch   *connect.Client[execv1.WatchRunRequest, execv1.WatchRunResponse]
	get     *connect.Client[execv1.GetRunRequest, execv1.GetRunResponse]
	list    *connect.Client[execv1.ListPipelinesRequest, execv1.ListPipelinesResponse]
	token   string
}

func newWebClient(base string, p webProtocol, token string) webClient {
	url := func(m string) string { return base + "/tauro.exec.v1.ExecService/" + m }
	return webClient{
		execute: connect.NewClient[execv1.ExecutePipelineRequest, execv1.ExecutePipelineResponse](p.http, url("ExecutePipeline"), p.opts...),
		watch:   connect.NewClient[execv1.WatchRunRequest, execv1.WatchRunResponse](p.http, url("WatchRun"), p.opts...),
		get:     connect.NewClient[execv1.GetRunRequest, execv1.GetRunResponse](p.http, url("GetRun"), p.opts...),
		list:    connect.NewClient[execv1.ListPipelinesRequest, execv1.ListPipelinesResponse](p.http, url("ListPipelines"), p.opts...),
		token:   token,
	}
}

func request[T any](c webClient, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	if c.token != "" {
		r.Header().Set("Authorization", "Bearer "+c.token)
	}
	return r
}

// watchAll reads a WatchRun stream to its end.
func (c webClient) watchAll(ctx context.Context, runID string, after int64) ([]*execv1.RunEvent, error) {
	return c.watchNotifying(ctx, runID, after, nil)
}

// watchNotifying is watchAll that closes first, if not nil, on the first
// event.
func (c webClient) watchNotifying(ctx context.Context, runID string, after int64, first chan<- struct{}) ([]*execv1.RunEvent, error) {
	stream, err := c.watch.CallServerStream(ctx, request(c, &execv1.WatchRunRequest{RunId: runID, AfterSequence: after}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	var out []*execv1.RunEvent
	for stream.Receive() {
		out = append(out, stream.Msg().GetEvent())
		if len(out) == 1 && first != nil {
			close(first)
		}
	}
	return out, stream.Err()
}

// checkContiguous fails unless events have the sequences from+1, from+2...
// and the last one ends the run in want.
func checkContiguous(t *testing.T, events []*execv1.RunEvent, from int64, want execv1.RunState) {
	t.Helper()
	if len(events) == 0 {
		t.Fatalf("no events after %d", from)
	}
	for i, ev := range events {
		if ev.GetSequence() != from+int64(i)+1 {
			t.Fatalf("event %d has sequence %d, want %d", i, ev.GetSequence(), from+int64(i)+1)
		}
	}
	if got := events[len(events)-1].GetRunStateChanged().GetState(); got != want {
		t.Fatalf("the last event is %v, want the run %v", events[len(events)-1], want)
	}
}

func TestWeb_ConnectAndGRPCWebExecuteAndStreamTheSameEventsAsGRPC(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0")
	base := "http://" + d.addr
	ctx := testCtx(t, 3*time.Minute)

	// Every protocol watches the run live while it executes.
	start := newWebClient(base, webProtocols[0], "")
	resp, err := start.execute.CallUnary(ctx, request(start, &execv1.ExecutePipelineRequest{Pipeline: "quick", RequestId: "web-1"}))
	if err != nil {
		t.Fatal(err)
	}
	runID := resp.Msg.GetRun().GetRunId()
	type result struct {
		events []*execv1.RunEvent
		err    error
	}
	results := make([]chan result, len(webProtocols))
	for i, p := range webProtocols {
		results[i] = make(chan result, 1)
		go func() {
			ev, err := newWebClient(base, p, "").watchAll(ctx, runID, 0)
			results[i] <- result{ev, err}
		}()
	}
	viaGRPC := collect(ctx, t, d.client(t), runID, 0)
	checkContiguous(t, viaGRPC, 0, execv1.RunState_RUN_STATE_SUCCEEDED)
	for i, p := range webProtocols {
		r := <-results[i]
		if r.err != nil {
			t.Errorf("%s: WatchRun: %v", p.name, r.err)
			continue
		}
		if len(r.events) != len(viaGRPC) {
			t.Errorf("%s: %d events, gRPC saw %d", p.name, len(r.events), len(viaGRPC))
			continue
		}
		for j := range r.events {
			if !proto.Equal(r.events[j], viaGRPC[j]) {
				t.Errorf("%s: event %d is %v, gRPC saw %v", p.name, j+1, r.events[j], viaGRPC[j])
			}
		}
	}

	// A resumed watch replays from after_sequence; unary calls answer on
	// every protocol.
	for _, p := range webProtocols {
		c := newWebClient(base, p, "")
		rest, err := c.watchAll(ctx, runID, 2)
		if err != nil {
			t.Fatalf("%s: resumed WatchRun: %v", p.name, err)
		}
		checkContiguous(t, rest, 2, execv1.RunState_RUN_STATE_SUCCEEDED)
		got, err := c.get.CallUnary(ctx, request(c, &execv1.GetRunRequest{RunId: runID}))
		if err != nil || got.Msg.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
			t.Errorf("%s: GetRun = %v, %v", p.name, got, err)
		}
	}
	// A retried submit over another protocol is the same run.
	again, err := newWebClient(base, webProtocols[2], "").execute.CallUnary(ctx,
		request(webClient{}, &execv1.ExecutePipelineRequest{Pipeline: "quick", RequestId: "web-1"}))
	if err != nil || again.Msg.GetRun().GetRunId() != runID {
		t.Errorf("the same request_id over gRPC-Web: %v, %v; want run %s", again, err, runID)
	}
}

func TestWeb_InvalidRequestsAreRefusedByTheSameValidationOnEveryProtocol(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0")
	ctx := testCtx(t, time.Minute)
	for _, p := range webProtocols {
		c := newWebClient("http://"+d.addr, p, "")
		_, err := c.get.CallUnary(ctx, request(c, &execv1.GetRunRequest{RunId: ""}))
		checkFieldViolation(t, p.name+" GetRun", err, "run_id")
		// A stream's request is validated too; the error arrives on the stream.
		_, err = c.watchAll(ctx, "", 0)
		checkFieldViolation(t, p.name+" WatchRun", err, "run_id")
	}
}

func checkFieldViolation(t *testing.T, what string, err error, field string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
		t.Errorf("%s: %v, want INVALID_ARGUMENT", what, err)
		return
	}
	for _, d := range ce.Details() {
		v, err := d.Value()
		if br, ok := v.(*errdetails.BadRequest); ok && err == nil {
			for _, fv := range br.GetFieldViolations() {
				if fv.GetField() == field {
					return
				}
			}
		}
	}
	t.Errorf("%s: %v has no BadRequest violation of %s", what, err, field)
}

func TestWeb_TokensAndRolesApplyToConnectAndGRPCWeb(t *testing.T) {
	tokensPath, tokens := newTokens(t, "viewer", "operator")
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0", "--tokens", tokensPath)
	ctx := testCtx(t, 2*time.Minute)
	base := "http://" + d.addr
	for _, p := range webProtocols[:3] {
		t.Run(p.name, func(t *testing.T) {
			code := func(err error) connect.Code {
				if err == nil {
					return 0
				}
				return connect.CodeOf(err)
			}
			none, wrong := newWebClient(base, p, ""), newWebClient(base, p, "tauro_not-a-token")
			viewer, operator := newWebClient(base, p, tokens["viewer"]), newWebClient(base, p, tokens["operator"])
			_, err := none.list.CallUnary(ctx, request(none, &execv1.ListPipelinesRequest{}))
			if code(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "bearer token") {
				t.Errorf("no token: %v, want UNAUTHENTICATED naming the bearer token", err)
			}
			if _, err := wrong.list.CallUnary(ctx, request(wrong, &execv1.ListPipelinesRequest{})); code(err) != connect.CodeUnauthenticated {
				t.Errorf("a wrong token: %v, want UNAUTHENTICATED", err)
			}
			if _, err := wrong.watchAll(ctx, "no-such-run", 0); code(err) != connect.CodeUnauthenticated {
				t.Errorf("a wrong token on WatchRun: %v, want UNAUTHENTICATED", err)
			}
			if _, err := viewer.list.CallUnary(ctx, request(viewer, &execv1.ListPipelinesRequest{})); err != nil {
				t.Errorf("a viewer lists pipelines: %v", err)
			}
			_, err = viewer.execute.CallUnary(ctx, request(viewer, &execv1.ExecutePipelineRequest{Pipeline: "quick"}))
			if code(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "operator role") {
				t.Errorf("a viewer executes: %v, want PERMISSION_DENIED naming the operator role", err)
			}
			r, err := operator.execute.CallUnary(ctx, request(operator, &execv1.ExecutePipelineRequest{Pipeline: "quick", RequestId: "auth-" + p.name}))
			if err != nil {
				t.Fatalf("an operator executes: %v", err)
			}
			events, err := viewer.watchAll(ctx, r.Msg.GetRun().GetRunId(), 0)
			if err != nil {
				t.Fatalf("a viewer watches: %v", err)
			}
			checkContiguous(t, events, 0, execv1.RunState_RUN_STATE_SUCCEEDED)
		})
	}
	if l := d.Logs(); !strings.Contains(l, "principal=the-operator") {
		t.Errorf("no audit line names the operator who executed over Connect:\n%s", l)
	}
}

// preflight sends a browser's CORS preflight for a Connect call.
func preflight(t *testing.T, base, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, base+"/tauro.exec.v1.ExecService/WatchRun", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,connect-protocol-version")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

func TestWeb_CORSAllowsTheListedOriginsOnly(t *testing.T) {
	project := copyProject(t, "sqlproj")
	d := startDaemon(t, project, t.TempDir(), "--workers", "0", "--cors-origins", "http://ui.example:5173, https://ops.example")
	base := "http://" + d.addr

	ok := preflight(t, base, "http://ui.example:5173")
	if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != "http://ui.example:5173" {
		t.Errorf("preflight from a listed origin: %d %v", ok.StatusCode, ok.Header)
	}
	allowed := strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "connect-protocol-version", "x-grpc-web"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("the preflight does not allow the %s header: %q", h, allowed)
		}
	}
	if m := ok.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
		t.Errorf("the preflight does not allow POST: %q", m)
	}
	if no := preflight(t, base, "http://evil.example"); no.StatusCode != http.StatusForbidden || no.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from an unlisted origin: %d %v", no.StatusCode, no.Header)
	}

	// The call itself: the listed origin may read the status headers.
	call := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/tauro.exec.v1.ExecService/ListPipelines", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"quick"`) {
			t.Errorf("POST from %s: %d %s", origin, resp.StatusCode, body)
		}
		return resp
	}
	r := call("https://ops.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://ops.example" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Grpc-Status") {
		t.Errorf("a call from a listed origin lacks the CORS headers: %v", r.Header)
	}
	if r := call("http://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a call from an unlisted origin is marked readable: %v", r.Header)
	}

	// No --cors-origins: no cross-origin page may call.
	plain := startDaemon(t, project, t.TempDir(), "--workers", "0")
	if r := preflight(t, "http://"+plain.addr, "http://ui.example:5173"); r.StatusCode != http.StatusForbidden {
		t.Errorf("preflight with no --cors-origins: %d, want 403", r.StatusCode)
	}
	out, err := serveOnce(t, project, "--cors-origins", "ui.example/path")
	if err == nil || !strings.Contains(out, "--cors-origins") || !strings.Contains(out, "scheme://host") {
		t.Errorf("a bad --cors-origins: %v, want a refusal naming the flag and the form:\n%s", err, out)
	}
}

// serveOnce runs `execd serve` that is expected to refuse its flags.
func serveOnce(t *testing.T, project string, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"serve", "--project", project, "--state", t.TempDir(), "--workers", "0", "--spark-remote", "sc://127.0.0.1:1", "--listen", "127.0.0.1:0"}, extra...)
	out, err := exec.CommandContext(ctx, execdBin(t), args...).CombinedOutput()
	return string(out), err
}

func TestWeb_APlainJSONPostIsAConnectCall(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0")
	// The README's curl example: no Connect-Protocol-Version header.
	resp, err := http.Post("http://"+d.addr+"/tauro.exec.v1.ExecService/ListPipelines", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"quick"`) {
		t.Errorf("POST {} to ListPipelines: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Post("http://"+d.addr+"/tauro.exec.v1.ExecService/GetRun", "application/json", strings.NewReader(`{"runId":"nope"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"code":"not_found"`) {
		t.Errorf("GetRun of an unknown run: %d %s, want 404 with code not_found", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + d.addr + "/no/such/path")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a path no service serves: %d, want 404", resp.StatusCode)
	}
}

func TestWeb_ConnectAndGRPCWebOverTLSWithHTTP1AndHTTP2(t *testing.T) {
	files, err := testcerts.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tokensPath, tokens := newTokens(t, "viewer")
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0",
		"--tokens", tokensPath, "--tls-cert", files.ServerCert, "--tls-key", files.ServerKey)
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx := testCtx(t, time.Minute)
	_, port, _ := net.SplitHostPort(d.addr)
	base := "https://localhost:" + port
	for _, version := range []string{"HTTP/1.1", "HTTP/2.0"} {
		var p http.Protocols
		p.SetHTTP1(version == "HTTP/1.1")
		p.SetHTTP2(version == "HTTP/2.0")
		var seen string
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := (&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &p}).RoundTrip(r)
			if err == nil {
				seen = resp.Proto
			}
			return resp, err
		})}
		for _, opts := range [][]connect.ClientOption{nil, {connect.WithGRPCWeb()}} {
			c := newWebClient(base, webProtocol{http: hc, opts: opts}, tokens["viewer"])
			if _, err := c.list.CallUnary(ctx, request(c, &execv1.ListPipelinesRequest{})); err != nil {
				t.Errorf("%s over TLS: %v", version, err)
			}
			if seen != version {
				t.Errorf("the call went over %s, want %s", seen, version)
			}
		}
	}
	// Cleartext is refused on a TLS listener.
	if _, err := newWebClient("http://"+d.addr, webProtocols[0], tokens["viewer"]).list.CallUnary(ctx, connect.NewRequest(&execv1.ListPipelinesRequest{})); err == nil {
		t.Error("a cleartext call to a TLS listener got an answer")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestWeb_StopEndsConnectAndGRPCStreamsWithTheRunsInterruptedEvent(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0")
	ctx := testCtx(t, 3*time.Minute)
	cl := d.client(t)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	waitForNodeState(ctx, t, cl, runID, "nap", execv1.NodeState_NODE_STATE_RUNNING)

	type result struct {
		name   string
		events []*execv1.RunEvent
		err    error
	}
	results := make(chan result, len(webProtocols)+1)
	var watching []chan struct{}
	for _, p := range webProtocols {
		first := make(chan struct{})
		watching = append(watching, first)
		go func() {
			ev, err := newWebClient("http://"+d.addr, p, "").watchNotifying(ctx, runID, 0, first)
			results <- result{p.name, ev, err}
		}()
	}
	first := make(chan struct{})
	watching = append(watching, first)
	go func() {
		stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: runID})
		var out []*execv1.RunEvent
		for err == nil {
			var resp *execv1.WatchRunResponse
			if resp, err = stream.Recv(); err == nil {
				if out = append(out, resp.GetEvent()); len(out) == 1 {
					close(first)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		results <- result{"grpc", out, err}
	}()
	for _, w := range watching { // every watcher has its stream open
		select {
		case <-w:
		case <-ctx.Done():
			t.Fatal("a watcher saw no event")
		}
	}
	start := time.Now()
	d.Stop()
	for range len(webProtocols) + 1 {
		r := <-results
		if r.err != nil {
			t.Errorf("%s: the stream ended with %v, want its end after the terminal event", r.name, r.err)
			continue
		}
		checkContiguous(t, r.events, 0, execv1.RunState_RUN_STATE_INTERRUPTED)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("execd took %s to stop", took)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("execd exited %d after SIGTERM:\n%s", code, d.Logs())
	}
}
