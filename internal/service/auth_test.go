package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/testcerts"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveWith starts the real server stack with opts; its service has no
// engine, so a call that gets past authentication and the role check
// panics into INTERNAL.
func serveWith(t *testing.T, logs io.Writer, opts ...Option) string {
	t.Helper()
	srv, err := NewServer(New(nil), health.NewServer(), slog.New(slog.NewTextHandler(logs, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// bearerToken sends a token without requiring TLS, as a test on loopback may.
type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerToken) RequireTransportSecurity() bool { return false }

// tokensFile writes a tokens file with one token per role and returns the
// tokens by role.
func tokensFile(t *testing.T) (*Tokens, map[Role]string) {
	t.Helper()
	var lines []string
	tokens := map[Role]string{}
	for _, r := range []Role{RoleViewer, RoleOperator, RoleAdmin} {
		tok, line, err := NewToken("the-"+r.String(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = tok
		lines = append(lines, line)
	}
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, []byte("# test tokens\n\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	return ts, tokens
}

func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

func TestAuth_EachRoleMayCallItsMethodsAndNoMore(t *testing.T) {
	ts, tokens := tokensFile(t)
	logs := &syncBuffer{}
	addr := serveWith(t, logs, WithTokens(ts))
	// A call that passes the role check reaches the engine-less handler
	// and panics: INTERNAL. One that does not is PERMISSION_DENIED.
	read := func(cl execv1.ExecServiceClient) error {
		_, err := cl.GetRun(ctx(t), &execv1.GetRunRequest{RunId: "run-x"})
		return err
	}
	execute := func(cl execv1.ExecServiceClient) error {
		_, err := cl.ExecutePipeline(ctx(t), &execv1.ExecutePipelineRequest{Pipeline: "p"})
		return err
	}
	cancel := func(cl execv1.ExecServiceClient) error {
		_, err := cl.CancelRun(ctx(t), &execv1.CancelRunRequest{RunId: "run-x"})
		return err
	}
	cases := []struct {
		role Role
		call func(execv1.ExecServiceClient) error
		want codes.Code
	}{
		{RoleViewer, read, codes.Internal},
		{RoleViewer, execute, codes.PermissionDenied},
		{RoleViewer, cancel, codes.PermissionDenied},
		{RoleOperator, read, codes.Internal},
		{RoleOperator, execute, codes.Internal},
		{RoleOperator, cancel, codes.Internal},
		{RoleAdmin, execute, codes.Internal},
	}
	for _, c := range cases {
		cl := execv1.NewExecServiceClient(dial(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearerToken(tokens[c.role]))))
		err := c.call(cl)
		if status.Code(err) != c.want {
			t.Errorf("%s: %v, want %v", c.role, err, c.want)
			continue
		}
		if c.want == codes.PermissionDenied {
			ei := errorInfo(err)
			if ei.GetReason() != "PERMISSION_DENIED" || ei.GetDomain() != errorDomain || ei.GetMetadata()["required_role"] != "operator" {
				t.Errorf("%s: ErrorInfo %v, want reason PERMISSION_DENIED naming the operator role", c.role, ei)
			}
		}
	}
	if l := logs.String(); !strings.Contains(l, "audit: mutating call") || !strings.Contains(l, "principal=the-operator") {
		t.Errorf("no audit line naming the operator:\n%s", l)
	}
}

func TestAuth_NoTokenOrAnUnknownOneIsUnauthenticated(t *testing.T) {
	ts, _ := tokensFile(t)
	addr := serveWith(t, io.Discard, WithTokens(ts))
	cases := map[string][]grpc.DialOption{
		"no token":      nil,
		"unknown token": {grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerToken("tauro_guess"))},
	}
	want := map[string]string{"no token": "MISSING_TOKEN", "unknown token": "INVALID_TOKEN"}
	for name, opts := range cases {
		cl := execv1.NewExecServiceClient(dial(t, addr, opts...))
		_, err := cl.ListPipelines(ctx(t), &execv1.ListPipelinesRequest{})
		if status.Code(err) != codes.Unauthenticated || errorInfo(err).GetReason() != want[name] {
			t.Errorf("%s: %v (%v), want UNAUTHENTICATED with reason %s", name, err, errorInfo(err), want[name])
		}
		s, err := cl.WatchRun(ctx(t), &execv1.WatchRunRequest{RunId: "run-x"})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: WatchRun %v, want UNAUTHENTICATED", name, err)
		}
	}
}

func TestAuth_GetCallerNamesTheCallerAndItsRole(t *testing.T) {
	ts, tokens := tokensFile(t)
	addr := serveWith(t, io.Discard, WithTokens(ts))
	want := map[Role]execv1.Role{RoleViewer: execv1.Role_ROLE_VIEWER, RoleOperator: execv1.Role_ROLE_OPERATOR, RoleAdmin: execv1.Role_ROLE_ADMIN}
	for role, tok := range tokens {
		cl := execv1.NewExecServiceClient(dial(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearerToken(tok))))
		got, err := cl.GetCaller(ctx(t), &execv1.GetCallerRequest{})
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		if got.GetName() != "the-"+role.String() || got.GetRole() != want[role] || !got.GetAuthenticationRequired() {
			t.Errorf("%s: %v, want the-%s, %v, authentication required", role, got, role, want[role])
		}
	}
	_, err := execv1.NewExecServiceClient(dial(t, addr)).GetCaller(ctx(t), &execv1.GetCallerRequest{})
	if status.Code(err) != codes.Unauthenticated || errorInfo(err).GetReason() != "MISSING_TOKEN" {
		t.Errorf("GetCaller without a token: %v, want UNAUTHENTICATED (MISSING_TOKEN), which tells a client to ask for one", err)
	}
	open, err := execv1.NewExecServiceClient(dial(t, serveWith(t, io.Discard))).GetCaller(ctx(t), &execv1.GetCallerRequest{})
	if err != nil || open.GetName() != "anonymous" || open.GetRole() != execv1.Role_ROLE_ADMIN || open.GetAuthenticationRequired() {
		t.Errorf("GetCaller on a server without authentication: %v, %v; want anonymous admin, no authentication", open, err)
	}
}

func TestAuth_HealthStaysOpenAndReflectionNeedsAViewer(t *testing.T) {
	ts, tokens := tokensFile(t)
	logs := &syncBuffer{}
	addr := serveWith(t, logs, WithTokens(ts))
	if _, err := healthpb.NewHealthClient(dial(t, addr)).Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without a token: %v", err)
	}
	if strings.Contains(logs.String(), "audit") {
		t.Errorf("a health check was audited as a call that changes runs:\n%s", logs.String())
	}
	reflect := func(conn *grpc.ClientConn) error {
		s, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx(t))
		if err != nil {
			return err
		}
		// A stream the server has already ended fails Send with io.EOF;
		// Recv tells why.
		if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return err
		}
		_, err = s.Recv()
		return err
	}
	if err := reflect(dial(t, addr)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without a token: %v, want UNAUTHENTICATED", err)
	}
	if err := reflect(dial(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerToken(tokens[RoleViewer])))); err != nil {
		t.Errorf("reflection with a viewer token: %v", err)
	}
	noReflection := serveWith(t, io.Discard, WithReflection(false))
	if err := reflect(dial(t, noReflection)); status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection turned off: %v, want UNIMPLEMENTED", err)
	}
}

func TestAuth_MutualTLSRefusesACertificateItsCADidNotSign(t *testing.T) {
	files, err := testcerts.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.LoadX509KeyPair(files.ServerCert, files.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(files.CA)
	pool.AppendCertsFromPEM(ca)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	logs := &syncBuffer{}
	addr := serveWith(t, logs, WithTLS(creds), WithClientCertificates())

	client := func(cert, key string) execv1.ExecServiceClient {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != "" {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		return execv1.NewExecServiceClient(dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg))))
	}
	execute := func(cl execv1.ExecServiceClient) error {
		_, err := cl.ExecutePipeline(ctx(t), &execv1.ExecutePipelineRequest{Pipeline: "p"})
		return err
	}
	if err := execute(client(files.ClientCert, files.ClientKey)); status.Code(err) != codes.Internal {
		t.Errorf("a client the CA signed: %v, want to reach the handler", err)
	}
	if !strings.Contains(logs.String(), "principal=cert:test-client") {
		t.Errorf("the audit line does not name the certificate:\n%s", logs.String())
	}
	for name, cl := range map[string]execv1.ExecServiceClient{
		"a stranger's certificate": client(files.StrangerCert, files.StrangerKey),
		"no certificate":           client("", ""),
	} {
		if err := execute(cl); status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want the handshake refused (UNAVAILABLE)", name, err)
		}
	}
}

func TestTokens_FileProblemsAreNamedByLine(t *testing.T) {
	_, good, _ := NewToken("a", RoleViewer, nil)
	cases := map[string]string{
		"":                 "no tokens",
		good + "\n" + good: `name "a" is used twice`,
		`{"name":"b","role":"root","sha256":"00"}`:               "unknown role",
		`{"name":"b","role":"viewer","sha256":"00"}`:             "64 hex digits",
		`{"name":"","role":"viewer","sha256":"00"}`:              "no name",
		`{"name":"b","role":"viewer","sha256":"00","token":"x"}`: "line 1",
		"not json": "line 1",
	}
	for text, want := range cases {
		_, err := parseTokens(strings.NewReader(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTokens(%q) = %v, want an error with %q", text, err, want)
		}
	}
	tok, line, _ := NewToken("ci", RoleOperator, nil)
	entries, err := parseTokens(strings.NewReader("# who\n" + line + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	ts := &Tokens{}
	ts.entries.Store(&entries)
	if p, ok := ts.lookup(tok); !ok || p.Name != "ci" || p.Role != RoleOperator || p.Projects != nil {
		t.Errorf("lookup of a listed token = %v, %v", p, ok)
	}
	if _, ok := ts.lookup(tok + "x"); ok {
		t.Error("lookup of another token succeeded")
	}
	if strings.Contains(line, tok) {
		t.Errorf("the file line holds the token itself: %s", line)
	}
}

func TestRedaction_HidesValuesInResponsesStreamsAndErrors(t *testing.T) {
	redact := strings.NewReplacer("hunter22", "${SECRET}").Replace
	deps := []string{"a", "hunter22"}
	resp := &execv1.GetPipelineResponse{Pipeline: &execv1.Pipeline{Name: "p", Nodes: []*execv1.NodeSpec{
		{Name: "n", Sql: "SELECT 'hunter22'", Dependencies: deps},
	}}}
	got := redactMessage(resp, redact).(*execv1.GetPipelineResponse)
	if n := got.GetPipeline().GetNodes()[0]; n.GetSql() != "SELECT '${SECRET}'" || n.GetDependencies()[1] != "${SECRET}" {
		t.Errorf("redacted node = %v", n)
	}
	if deps[1] != "hunter22" || resp.GetPipeline().GetNodes()[0].GetSql() != "SELECT 'hunter22'" {
		t.Error("redaction changed the handler's own values")
	}
	if same := redactMessage(got, redact); same.(*execv1.GetPipelineResponse) != got {
		t.Error("a message with nothing to hide was copied")
	}
	err := withDetails(codes.InvalidArgument, "bad hunter22", "INVALID_PIPELINE", &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f", Description: "path /x/hunter22 not found"}}})
	st := status.Convert(redactError(err, redact))
	if st.Message() != "bad ${SECRET}" {
		t.Errorf("message %q", st.Message())
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && br.GetFieldViolations()[0].GetDescription() != "path /x/${SECRET} not found" {
			t.Errorf("violation %v", br.GetFieldViolations()[0])
		}
	}
}
