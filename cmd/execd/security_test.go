package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/testcerts"
)

// newTokens makes a tokens file with `execd token --append`, one token per
// role, and returns its path and the tokens by role.
func newTokens(t *testing.T, roles ...string) (string, map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	tokens := map[string]string{}
	for _, role := range roles {
		out, err := exec.Command(execdBin(t), "token", "--name", "the-"+role, "--role", role, "--append", path).Output()
		if err != nil {
			t.Fatalf("execd token: %v", err)
		}
		tokens[role] = strings.TrimSpace(string(out))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	return path, tokens
}

// grpcurlCall runs grpcurl against d; method "" lists services.
func grpcurlCall(t *testing.T, d *daemon, flags []string, method, body string) (string, error) {
	t.Helper()
	args := append([]string{"-max-time", "60"}, flags...)
	if body != "" {
		args = append(args, "-d", body)
	}
	args = append(args, d.addr)
	if method != "" {
		args = append(args, method)
	} else {
		args = append(args, "list")
	}
	out, err := exec.Command(grpcurlBin(t), args...).CombinedOutput()
	return string(out), err
}

func TestSecurity_GRPCurlWithoutATokenIsUnauthenticatedAndAViewerCannotExecute(t *testing.T) {
	tokensPath, tokens := newTokens(t, "viewer", "operator")
	// Reflection is off by default with tokens; on here, it needs a viewer.
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--tokens", tokensPath, "--reflection")
	if !strings.Contains(d.Logs(), "execd requires bearer tokens") {
		t.Errorf("the start log does not say tokens are required:\n%s", d.Logs())
	}
	viewer := "authorization: Bearer " + tokens["viewer"]
	operator := "authorization: Bearer " + tokens["operator"]
	reflectAs := []string{"-plaintext", "-reflect-header", viewer}
	execute := `{"pipeline":"quick","request_id":"grpcurl-auth-1"}`

	cases := []struct {
		name         string
		flags        []string
		method, body string
		want         []string // in the output
		fails        bool
	}{
		{"reflection without a token", []string{"-plaintext"}, "", "", []string{"Unauthenticated"}, true},
		{"no token", reflectAs, "tauro.exec.v1.ExecService/ListPipelines", "", []string{"Unauthenticated", "bearer token"}, true},
		{"an unknown token", append(reflectAs, "-rpc-header", "authorization: Bearer tauro_nope"), "tauro.exec.v1.ExecService/ListPipelines", "", []string{"Unauthenticated"}, true},
		{"a viewer reads", append(reflectAs, "-rpc-header", viewer), "tauro.exec.v1.ExecService/ListPipelines", "", []string{`"name": "quick"`}, false},
		{"a viewer cannot execute", append(reflectAs, "-rpc-header", viewer), "tauro.exec.v1.ExecService/ExecutePipeline", execute, []string{"PermissionDenied", "operator role"}, true},
		{"an operator executes", append(reflectAs, "-rpc-header", operator), "tauro.exec.v1.ExecService/ExecutePipeline", execute, []string{`"runId"`}, false},
		{"health needs no token", reflectAs, "grpc.health.v1.Health/Check", "", []string{"SERVING"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := grpcurlCall(t, d, c.flags, c.method, c.body)
			if c.fails != (err != nil) {
				t.Errorf("err = %v, want failure %v:\n%s", err, c.fails, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if l := d.Logs(); !strings.Contains(l, "audit: mutating call") || !strings.Contains(l, "principal=the-operator") || !strings.Contains(l, "request_id=grpcurl-auth-1") {
		t.Errorf("no audit line naming the operator and the request:\n%s", l)
	}
}

// tlsClient dials d over TLS trusting files.CA, with the client
// certificate cert/key when given and a token when given.
func tlsClient(t *testing.T, d *daemon, files testcerts.Files, cert, key, token string) execv1.ExecServiceClient {
	t.Helper()
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: token, overTLS: true}))
	}
	return d.client(t, opts...)
}

func TestSecurity_MutualTLSRefusesAnUnknownClientCertificate(t *testing.T) {
	files, err := testcerts.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tokensPath, tokens := newTokens(t, "viewer", "operator")
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(),
		"--tokens", tokensPath, "--tls-cert", files.ServerCert, "--tls-key", files.ServerKey, "--client-ca", files.CA, "--reflection")
	ctx := testCtx(t, time.Minute)

	// Go client: the CA's client with a token gets in; a stranger's
	// certificate and none at all fail the handshake.
	if _, err := tlsClient(t, d, files, files.ClientCert, files.ClientKey, tokens["viewer"]).ListPipelines(ctx, &execv1.ListPipelinesRequest{}); err != nil {
		t.Errorf("the CA's client with a viewer token: %v", err)
	}
	if _, err := tlsClient(t, d, files, files.ClientCert, files.ClientKey, "").ListPipelines(ctx, &execv1.ListPipelinesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the CA's client without a token: %v, want UNAUTHENTICATED", err)
	}
	for name, cert := range map[string][2]string{"a stranger's certificate": {files.StrangerCert, files.StrangerKey}, "no certificate": {"", ""}} {
		_, err := tlsClient(t, d, files, cert[0], cert[1], tokens["operator"]).ListPipelines(ctx, &execv1.ListPipelinesRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want the handshake refused", name, err)
		}
	}

	// grpcurl.
	tlsFlags := func(cert, key string) []string {
		f := []string{"-cacert", files.CA, "-H", "authorization: Bearer " + tokens["operator"]}
		if cert != "" {
			f = append(f, "-cert", cert, "-key", key)
		}
		return f
	}
	out, err := grpcurlCall(t, d, tlsFlags(files.ClientCert, files.ClientKey), "tauro.exec.v1.ExecService/ListPipelines", "")
	if err != nil || !strings.Contains(out, `"name": "quick"`) {
		t.Errorf("grpcurl with the CA's client certificate: %v\n%s", err, out)
	}
	for name, flags := range map[string][]string{
		"a stranger's certificate": tlsFlags(files.StrangerCert, files.StrangerKey),
		"no certificate":           tlsFlags("", ""),
		"plaintext":                {"-plaintext", "-H", "authorization: Bearer " + tokens["operator"]},
	} {
		if out, err := grpcurlCall(t, d, flags, "tauro.exec.v1.ExecService/ListPipelines", ""); err == nil {
			t.Errorf("grpcurl with %s got in:\n%s", name, out)
		}
	}

	// The CLI.
	cliTLS := func(args ...string) (string, int) {
		return cli(t, d, append(args, "--tls-ca", files.CA, "--tls-cert", files.ClientCert, "--tls-key", files.ClientKey)...)
	}
	if out, code := cliTLS("pipelines", "--token", tokens["viewer"]); code != 0 || !strings.Contains(out, "quick") {
		t.Errorf("execd pipelines over mutual TLS exited %d:\n%s", code, out)
	}
	if out, code := cliTLS("pipelines"); code != 1 || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("execd pipelines without a token exited %d:\n%s", code, out)
	}
	if out, code := cliTLS("run", "quick", "--token", tokens["viewer"]); code != 1 || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("execd run as a viewer exited %d:\n%s", code, out)
	}
	if out, code := cli(t, d, "pipelines", "--token", tokens["viewer"], "--tls-ca", files.CA, "--tls-cert", files.StrangerCert, "--tls-key", files.StrangerKey); code == 0 {
		t.Errorf("execd pipelines with a stranger's certificate got in:\n%s", out)
	}
	// TAURO_EXEC_TOKEN stands in for --token.
	cmd := exec.Command(execdBin(t), "run", "quick", "--watch", "--addr", d.addr, "--tls-ca", files.CA, "--tls-cert", files.ClientCert, "--tls-key", files.ClientKey)
	cmd.Env = append(os.Environ(), "TAURO_EXEC_TOKEN="+tokens["operator"])
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "run SUCCEEDED") {
		t.Errorf("execd run with $TAURO_EXEC_TOKEN: %v\n%s", err, out)
	}
}

func TestSecurity_AListenerOtherMachinesReachNeedsAuthenticationOrInsecure(t *testing.T) {
	project := copyProject(t, "sqlproj")
	serve := func(extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := append([]string{"serve", "--project", project, "--state", t.TempDir(), "--workers", "0", "--spark-remote", "sc://127.0.0.1:1"}, extra...)
		out, err := exec.CommandContext(ctx, execdBin(t), args...).CombinedOutput()
		return string(out), err
	}
	tokensPath, _ := newTokens(t, "viewer")
	for name, args := range map[string][]string{
		"no authentication":  {"--listen", "0.0.0.0:0"},
		"tokens without TLS": {"--listen", "0.0.0.0:0", "--tokens", tokensPath},
	} {
		out, err := serve(args...)
		if err == nil || !strings.Contains(out, "--insecure") {
			t.Errorf("%s: err %v, want a refusal naming --insecure:\n%s", name, err, out)
		}
	}
	// --insecure serves it open, and says so.
	d := startDaemon(t, project, t.TempDir(), "--listen", "0.0.0.0:0", "--insecure", "--workers", "0")
	if !strings.Contains(d.Logs(), "execd is open") {
		t.Errorf("an open daemon does not say so at start:\n%s", d.Logs())
	}
}
