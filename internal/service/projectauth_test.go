package service

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// hash is a well-formed sha256 for lines whose token no test sends.
var hash = strings.Repeat("ab", 32)

func TestTokens_ProjectRoles(t *testing.T) {
	cases := []struct {
		line     string
		role     Role
		projects map[string]Role
	}{
		{`{"name":"a","role":"viewer","sha256":"` + hash + `"}`, RoleViewer, nil},
		{`{"name":"a","role":"viewer","projects":{"sales":"operator","hybrid.v2":"admin"},"sha256":"` + hash + `"}`,
			RoleViewer, map[string]Role{"sales": RoleOperator, "hybrid.v2": RoleAdmin}},
		// A project may have a lower role than the rest.
		{`{"name":"a","role":"admin","projects":{"prod":"viewer"},"sha256":"` + hash + `"}`,
			RoleAdmin, map[string]Role{"prod": RoleViewer}},
		// Without a role the token reaches only the projects named.
		{`{"name":"a","projects":{"sales":"viewer"},"sha256":"` + hash + `"}`, RoleNone, map[string]Role{"sales": RoleViewer}},
		{`{"name":"a","role":"operator","projects":{},"sha256":"` + hash + `"}`, RoleOperator, nil},
	}
	for _, c := range cases {
		entries, err := parseTokens(strings.NewReader(c.line))
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if e := entries[0]; e.role != c.role || !maps.Equal(e.projects, c.projects) {
			t.Errorf("%s: role %v, projects %v; want %v, %v", c.line, e.role, e.projects, c.role, c.projects)
		}
	}
}

func TestTokens_ProjectProblemsAreNamedByLine(t *testing.T) {
	good := `{"name":"ok","role":"viewer","sha256":"` + strings.Repeat("cd", 32) + `"}` + "\n"
	cases := map[string]string{
		`{"name":"b","sha256":"` + hash + `"}`:                                                         "line 2 (b): no role and no projects",
		`{"name":"b","projects":{},"sha256":"` + hash + `"}`:                                           "line 2 (b): no role and no projects",
		`{"name":"b","projects":{"sales":"root"},"sha256":"` + hash + `"}`:                             `line 2 (b): project "sales": unknown role "root"`,
		`{"name":"b","projects":{"sales":""},"sha256":"` + hash + `"}`:                                 `line 2 (b): project "sales": unknown role ""`,
		`{"name":"b","role":"viewer","projects":{"-sales":"viewer"},"sha256":"` + hash + `"}`:          `line 2 (b): project "-sales": a project name is`,
		`{"name":"b","projects":{"":"viewer"},"sha256":"` + hash + `"}`:                                `line 2 (b): project "": a project name is`,
		`{"name":"b","projects":{"a/b":"viewer"},"sha256":"` + hash + `"}`:                             `line 2 (b): project "a/b"`,
		`{"name":"b","projects":{"` + strings.Repeat("x", 65) + `":"viewer"},"sha256":"` + hash + `"}`: "a project name is",
		`{"name":"b","projects":["sales"],"sha256":"` + hash + `"}`:                                    "line 2: json",
		`{"name":"b","projects":{"sales":"viewer"},"project":"x","sha256":"` + hash + `"}`:             `line 2: json: unknown field "project"`,
	}
	for line, want := range cases {
		_, err := parseTokens(strings.NewReader(good + line))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTokens(%q) = %v, want an error with %q", line, err, want)
		}
	}
}

func TestTokens_ReloadKeepsTheTokensInUseOnABadFile(t *testing.T) {
	tok, line, err := NewToken("ana", RoleNone, map[string]Role{"sales": RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(line, `"operator"`, `"owner"`, 1)
	if err := os.WriteFile(path, []byte(bad+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err == nil || !strings.Contains(err.Error(), `line 1 (ana): project "sales": unknown role "owner"`) {
		t.Errorf("Reload of a bad file = %v, want the bad role named", err)
	}
	if p, ok := ts.lookup(tok); !ok || p.roleIn("sales") != RoleOperator || p.roleIn("hybrid") != RoleNone {
		t.Errorf("after a failed reload, lookup = %+v, %v; want ana, operator in sales only", p, ok)
	}
}

func TestNewToken_WritesTheProjectRoles(t *testing.T) {
	tok, line, err := NewToken("ana", RoleViewer, map[string]Role{"sales": RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, `"projects":{"sales":"operator"}`) || !strings.Contains(line, `"role":"viewer"`) {
		t.Errorf("line %s, want role viewer and projects {sales: operator}", line)
	}
	only, onlyLine, err := NewToken("bob", RoleNone, map[string]Role{"hybrid": RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(onlyLine, `"role"`) {
		t.Errorf("line %s has a role; a token scoped to its projects has none", onlyLine)
	}
	entries, err := parseTokens(strings.NewReader(line + "\n" + onlyLine))
	if err != nil {
		t.Fatalf("the lines NewToken made do not parse: %v", err)
	}
	ts := &Tokens{}
	ts.entries.Store(&entries)
	if p, _ := ts.lookup(tok); p.roleIn("sales") != RoleOperator || p.roleIn("other") != RoleViewer {
		t.Errorf("ana = %+v, want operator in sales, viewer elsewhere", p)
	}
	if p, _ := ts.lookup(only); p.roleIn("hybrid") != RoleViewer || p.roleIn("sales") != RoleNone {
		t.Errorf("bob = %+v, want viewer in hybrid and nothing elsewhere", p)
	}
	for name, projects := range map[string]map[string]Role{
		"no role anywhere": nil,
		"a bad project":    {"no space": RoleViewer},
		"no role in one":   {"sales": RoleNone},
	} {
		if _, _, err := NewToken("x", RoleNone, projects); err == nil {
			t.Errorf("%s: NewToken made a token", name)
		}
	}
}

// The principals of the per-project tests.
var (
	// ana views every project and operates sales.
	ana = Principal{Name: "ana", Role: RoleViewer, Projects: map[string]Role{"sales": RoleOperator}}
	// bob views hybrid and nothing else.
	bob = Principal{Name: "bob", Projects: map[string]Role{"hybrid": RoleViewer}}
	// carl administers everything but may only view prod.
	carl = Principal{Name: "carl", Role: RoleAdmin, Projects: map[string]Role{"prod": RoleViewer}}
	// A client certificate: one role everywhere.
	cert = Principal{Name: "cert:ci", Role: RoleAdmin}
)

func TestPrincipal_RoleInAProjectAndBestRole(t *testing.T) {
	cases := []struct {
		p       Principal
		project string
		in      Role
		best    Role
	}{
		{ana, "sales", RoleOperator, RoleOperator},
		{ana, "hybrid", RoleViewer, RoleOperator},
		{bob, "hybrid", RoleViewer, RoleViewer},
		{bob, "sales", RoleNone, RoleViewer},
		{carl, "prod", RoleViewer, RoleAdmin},
		{carl, "sales", RoleAdmin, RoleAdmin},
		{cert, "sales", RoleAdmin, RoleAdmin},
		{anonymous, "sales", RoleAdmin, RoleAdmin},
	}
	for _, c := range cases {
		if got := c.p.roleIn(c.project); got != c.in {
			t.Errorf("%s in %s: %v, want %v", c.p.Name, c.project, got, c.in)
		}
		if got := roleIn(as(c.p, ""), c.project); got != c.in {
			t.Errorf("roleIn(ctx of %s, %s) = %v, want %v", c.p.Name, c.project, got, c.in)
		}
		if got := c.p.bestRole(); got != c.best {
			t.Errorf("%s best role: %v, want %v", c.p.Name, got, c.best)
		}
	}
}

// methodStream names the method of a call, as the server does for a
// handler's context.
type methodStream struct{ method string }

func (m methodStream) Method() string             { return m.method }
func (methodStream) SetHeader(metadata.MD) error  { return nil }
func (methodStream) SendHeader(metadata.MD) error { return nil }
func (methodStream) SetTrailer(metadata.MD) error { return nil }

// as is a handler's context for a call by p; method "" leaves the method
// unknown. A zero p is a server without authentication.
func as(p Principal, method string) context.Context {
	ctx := context.Background()
	if p.Name != "" {
		ctx = context.WithValue(ctx, principalKey{}, p)
	}
	if method != "" {
		ctx = grpc.NewContextWithServerTransportStream(ctx, methodStream{method})
	}
	return ctx
}

func TestAuthorizeProject_AllowsTheRoleInTheProjectAndNamesItWhenDenying(t *testing.T) {
	execute := execv1.ExecService_ExecutePipeline_FullMethodName
	cases := []struct {
		p       Principal
		method  string
		project string
		need    Role
		// want is "" when allowed, else what the message says.
		want string
		// meta is the ErrorInfo metadata of a denial.
		meta map[string]string
	}{
		{ana, execute, "sales", RoleOperator, "", nil},
		{ana, execute, "hybrid", RoleViewer, "", nil},
		{ana, execute, "hybrid", RoleOperator,
			"ana (role viewer in project hybrid) may not call " + execute + " in project hybrid; it needs the operator role",
			map[string]string{"method": execute, "role": "viewer", "required_role": "operator", "project": "hybrid"}},
		{bob, execute, "sales", RoleViewer,
			"bob has no access to project sales; it needs the viewer role there",
			map[string]string{"method": execute, "role": "none", "required_role": "viewer", "project": "sales"}},
		{bob, "", "sales", RoleOperator,
			"bob has no access to project sales",
			map[string]string{"role": "none", "required_role": "operator", "project": "sales"}},
		{ana, "", "hybrid", RoleOperator,
			"ana (role viewer in project hybrid) may not do this in project hybrid",
			map[string]string{"role": "viewer", "required_role": "operator", "project": "hybrid"}},
		{carl, execute, "prod", RoleOperator, "carl (role viewer in project prod)",
			map[string]string{"method": execute, "role": "viewer", "required_role": "operator", "project": "prod"}},
		{carl, execute, "sales", RoleAdmin, "", nil},
		{cert, execute, "sales", RoleAdmin, "", nil},
		{Principal{}, execute, "sales", RoleAdmin, "", nil}, // anonymous
	}
	for _, c := range cases {
		logs := &syncBuffer{}
		err := authorizeProject(as(c.p, c.method), c.project, c.need, slog.New(slog.NewTextHandler(logs, nil)))
		name := c.p.Name + " needing " + c.need.String() + " in " + c.project
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want allowed", name, err)
			}
			continue
		}
		st := status.Convert(err)
		if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), c.want) {
			t.Errorf("%s: %v, want PERMISSION_DENIED saying %q", name, err, c.want)
		}
		ei := errorInfo(err)
		if ei.GetReason() != "PERMISSION_DENIED" || ei.GetDomain() != errorDomain || !maps.Equal(ei.GetMetadata(), c.meta) {
			t.Errorf("%s: ErrorInfo %v, want reason PERMISSION_DENIED with %v", name, ei, c.meta)
		}
		if l := logs.String(); !strings.Contains(l, "permission denied") || !strings.Contains(l, "project="+c.project) {
			t.Errorf("%s: no warning naming the project:\n%s", name, l)
		}
	}
}

func TestVisibleProjects_NilMeansEveryProject(t *testing.T) {
	served := []string{"hybrid", "prod", "sales"}
	cases := []struct {
		p    Principal
		want []string // nil: no filter
	}{
		{ana, nil},
		{carl, nil},
		{cert, nil},
		{Principal{}, nil}, // anonymous
		{Principal{Name: "ci", Role: RoleViewer}, nil},
		{bob, []string{"hybrid"}},
		{Principal{Name: "dee", Projects: map[string]Role{"sales": RoleAdmin, "prod": RoleViewer, "gone": RoleViewer}}, []string{"prod", "sales"}},
		// Not nil even when it names every project served: the store
		// may hold records of projects no longer served.
		{Principal{Name: "eve", Projects: map[string]Role{"hybrid": RoleViewer, "prod": RoleViewer, "sales": RoleViewer}}, served},
		// None of them: empty, which filters everything out.
		{Principal{Name: "fay", Projects: map[string]Role{"gone": RoleViewer}}, []string{}},
	}
	for _, c := range cases {
		got := visibleProjects(as(c.p, ""), served)
		if (got == nil) != (c.want == nil) || !slices.Equal(got, c.want) {
			t.Errorf("%s: %#v, want %#v", c.p.Name, got, c.want)
		}
	}
}

// projectTokens serves with a tokens file of project-scoped tokens, its
// logs to logs, and returns a client per token name.
func projectTokens(t *testing.T, logs io.Writer, tokens map[string]struct {
	role     Role
	projects map[string]Role
}) map[string]execv1.ExecServiceClient {
	t.Helper()
	var lines []string
	byName := map[string]string{}
	for name, tk := range tokens {
		tok, line, err := NewToken(name, tk.role, tk.projects)
		if err != nil {
			t.Fatal(err)
		}
		byName[name] = tok
		lines = append(lines, line)
	}
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveWith(t, logs, WithTokens(ts))
	clients := map[string]execv1.ExecServiceClient{}
	for name, tok := range byName {
		clients[name] = execv1.NewExecServiceClient(dial(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearerToken(tok))))
	}
	return clients
}

func TestAuth_TheInterceptorChecksTheBestRoleInAnyProject(t *testing.T) {
	logs := &syncBuffer{}
	cl := projectTokens(t, logs, map[string]struct {
		role     Role
		projects map[string]Role
	}{
		"bob": {RoleNone, map[string]Role{"hybrid": RoleViewer}},
		"ana": {RoleViewer, map[string]Role{"sales": RoleOperator}},
	})
	// Past the interceptor, the engine-less handler panics: INTERNAL.
	if _, err := cl["bob"].GetRun(ctx(t), &execv1.GetRunRequest{RunId: "run-x"}); status.Code(err) != codes.Internal {
		t.Errorf("bob, a viewer of hybrid only, GetRun: %v, want past the interceptor", err)
	}
	_, err := cl["bob"].ExecutePipeline(ctx(t), &execv1.ExecutePipelineRequest{Pipeline: "p"})
	ei := errorInfo(err)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "bob (role viewer in any project)") ||
		ei.GetMetadata()["role"] != "viewer" || ei.GetMetadata()["required_role"] != "operator" {
		t.Errorf("bob, an operator nowhere, ExecutePipeline: %v (%v), want PERMISSION_DENIED naming his best role", err, ei)
	}
	if _, err := cl["ana"].ExecutePipeline(ctx(t), &execv1.ExecutePipelineRequest{Pipeline: "p", Project: "sales"}); status.Code(err) != codes.Internal {
		t.Errorf("ana, an operator of sales, ExecutePipeline: %v, want past the interceptor", err)
	}
	if l := logs.String(); !strings.Contains(l, "principal=ana role=operator project=sales") {
		t.Errorf("the audit line does not give ana's role in sales:\n%s", l)
	}
}

func TestAuth_GetCallerGivesTheRoleInEachProjectTheTokenNames(t *testing.T) {
	cl := projectTokens(t, io.Discard, map[string]struct {
		role     Role
		projects map[string]Role
	}{
		"ana": {RoleViewer, map[string]Role{"sales": RoleOperator, "hybrid": RoleAdmin, "prod": RoleViewer}},
		"bob": {RoleNone, map[string]Role{"hybrid": RoleViewer}},
		"ci":  {RoleOperator, nil},
	})
	cases := []struct {
		name     string
		role     execv1.Role
		projects string // project=role, sorted by project
	}{
		{"ana", execv1.Role_ROLE_VIEWER, "hybrid=ROLE_ADMIN prod=ROLE_VIEWER sales=ROLE_OPERATOR"},
		{"bob", execv1.Role_ROLE_UNSPECIFIED, "hybrid=ROLE_VIEWER"},
		{"ci", execv1.Role_ROLE_OPERATOR, ""},
	}
	for _, c := range cases {
		got, err := cl[c.name].GetCaller(ctx(t), &execv1.GetCallerRequest{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var projects []string
		for _, pr := range got.GetProjects() {
			projects = append(projects, pr.GetProject()+"="+pr.GetRole().String())
		}
		if got.GetName() != c.name || got.GetRole() != c.role || strings.Join(projects, " ") != c.projects {
			t.Errorf("%s: %v, want role %v and projects %q", c.name, got, c.role, c.projects)
		}
	}
}
