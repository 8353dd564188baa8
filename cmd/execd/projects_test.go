package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// twinProjects copies twinproj twice, as alpha and beta, each module
// tagged with its project's name, and writes a projects file naming both.
func twinProjects(t *testing.T) (root, file string) {
	t.Helper()
	root = t.TempDir()
	for _, name := range []string{"alpha", "beta"} {
		dir := filepath.Join(root, name)
		if err := os.Rename(copyProject(t, "twinproj"), dir); err != nil {
			t.Fatal(err)
		}
		mod := filepath.Join(dir, "src", "twin_nodes", "work.py")
		src, err := os.ReadFile(mod)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mod, []byte(strings.Replace(string(src), `TAG = "unset"`, `TAG = "`+name+`"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file = writeProjectsFile(t, root, "alpha: {folder: alpha, workers: 1}\n  beta: {folder: beta, workers: 1}")
	return root, file
}

// writeProjectsFile writes projects.yaml in dir, atomically, with body
// as the entries under 'projects:'.
func writeProjectsFile(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "projects.yaml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("projects:\n  "+body+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonRows reads every row of a JSON output folder.
func jsonRows(t *testing.T, dir string) []map[string]any {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, "part-*.json"))
	if err != nil || len(parts) == 0 {
		t.Fatalf("no output in %s (%v)", dir, err)
	}
	var rows []map[string]any
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			var row map[string]any
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// waitRun follows a run to its end and returns it.
func waitRun(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, runID string) *execv1.Run {
	t.Helper()
	collect(ctx, t, cl, runID, 0)
	got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	return got.GetRun()
}

func TestProjects_TwoProjectsWithTheSamePipelineAndModuleRunSideBySideEachWithItsOwnCodeAndWorkers(t *testing.T) {
	clusterParallel(t)
	ctx := testCtx(t, 5*time.Minute)
	root, file := twinProjects(t)
	d := startProjects(t, file, t.TempDir())
	cl := d.client(t)

	// Named by neither request nor default, the project is asked for.
	_, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "daily"})
	v := badRequest(t, err).GetFieldViolations()
	if len(v) != 1 || v[0].GetField() != "project" || !strings.Contains(v[0].GetDescription(), "alpha, beta") {
		t.Fatalf("a request naming no project among two: %v", v)
	}
	_, err = cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Project: "gamma", Pipeline: "daily"})
	if v := badRequest(t, err).GetFieldViolations(); len(v) != 1 || v[0].GetReason() != "UNKNOWN_PROJECT" {
		t.Fatalf("an unknown project: %v", v)
	}

	// The same pipeline, module and request id in each project: two runs,
	// each with its own project's code.
	ids := map[string]string{}
	for _, p := range []string{"alpha", "beta"} {
		ids[p] = startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Project: p, Pipeline: "daily", RequestId: "nightly-1"})
	}
	if ids["alpha"] == ids["beta"] {
		t.Fatalf("one request id in two projects gave one run %s", ids["alpha"])
	}
	for p, id := range ids {
		r := waitRun(ctx, t, cl, id)
		if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r.GetProject() != p {
			t.Fatalf("%s's run: %v in project %q (%s)\n%s", p, r.GetState(), r.GetProject(), r.GetMessage(), d.Logs())
		}
		rows := jsonRows(t, filepath.Join(root, p, "output", "dev", "twin", "daily", "stamp"))
		if len(rows) != 1 || rows[0]["tag"] != p || rows[0]["cwd"] != filepath.Join(root, p) {
			t.Errorf("%s's output %v, want its own module's tag, written from its own folder", p, rows)
		}
		again, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Project: p, Pipeline: "daily", RequestId: "nightly-1"})
		if err != nil || again.GetRun().GetRunId() != id {
			t.Errorf("the request id repeated in %s: %v, %v; want run %s", p, again.GetRun().GetRunId(), err, id)
		}
		if _, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: id, Project: map[string]string{"alpha": "beta", "beta": "alpha"}[p]}); status.Code(err) != codes.NotFound {
			t.Errorf("%s's run asked for as the other project's: %v, want NOT_FOUND", p, err)
		}
	}
	list, err := cl.ListRuns(ctx, &execv1.ListRunsRequest{Project: "beta"})
	if err != nil || len(list.GetRuns()) != 1 || list.GetRuns()[0].GetRunId() != ids["beta"] {
		t.Fatalf("beta's runs: %v (%v)", list.GetRuns(), err)
	}
	projects, err := cl.ListProjects(ctx, &execv1.ListProjectsRequest{})
	if err != nil || len(projects.GetProjects()) != 2 || projects.GetProjects()[1].GetFolder() != filepath.Join(root, "beta") ||
		projects.GetProjects()[0].GetState() != execv1.ProjectState_PROJECT_STATE_SERVING {
		t.Fatalf("ListProjects: %v (%v)", projects.GetProjects(), err)
	}

	// One project's worker killed mid-node: its node runs again; the other
	// project's attempt under way goes on in its own worker.
	pids := map[string]int{}
	for _, p := range []string{"alpha", "beta"} {
		ids[p] = startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Project: p, Pipeline: "slow"})
		watchUntil(ctx, t, cl, ids[p], 0, p+"'s worker pid", func(ev *execv1.RunEvent) bool {
			m := ev.GetNodeMetric()
			pids[p] = int(m.GetValue())
			return m.GetName() == "pid"
		})
	}
	if pids["alpha"] == pids["beta"] {
		t.Fatalf("both projects' nodes ran in worker %d", pids["alpha"])
	}
	if err := syscall.Kill(pids["alpha"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"alpha", "beta"} {
		if err := os.WriteFile(filepath.Join(root, p, "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	beta := waitRun(ctx, t, cl, ids["beta"])
	if beta.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || len(beta.GetNodes()[0].GetAttempts()) != 1 {
		t.Fatalf("beta's run beside alpha's killed worker: %v, attempts %v\n%s", beta.GetState(), beta.GetNodes()[0].GetAttempts(), d.Logs())
	}
	if rows := jsonRows(t, filepath.Join(root, "beta", "output", "dev", "twin", "slow", "hold")); len(rows) != 1 || int(rows[0]["pid"].(float64)) != pids["beta"] {
		t.Errorf("beta's output %v, want it written by worker %d", rows, pids["beta"])
	}
	alpha := waitRun(ctx, t, cl, ids["alpha"])
	attempts := alpha.GetNodes()[0].GetAttempts()
	if alpha.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || len(attempts) != 2 || attempts[0].GetState() == execv1.NodeState_NODE_STATE_SUCCEEDED {
		t.Errorf("alpha's run whose worker was killed: %v, attempts %v; want its retry to succeed", alpha.GetState(), attempts)
	}
}

func TestProjects_TheProjectsFileIsFollowedWhileExecdServes(t *testing.T) {
	clusterParallel(t)
	ctx := testCtx(t, 3*time.Minute)
	root := t.TempDir()
	for _, p := range []string{"alpha", "beta"} {
		if err := os.Rename(copyProject(t, "sqlproj"), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "nosettings"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := writeProjectsFile(t, root, "alpha: {folder: alpha}")
	d := startProjects(t, file, t.TempDir(), "--workers", "0")
	cl := d.client(t)

	states := func() map[string]*execv1.Project {
		resp, err := cl.ListProjects(ctx, &execv1.ListProjectsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*execv1.Project{}
		for _, p := range resp.GetProjects() {
			out[p.GetName()] = p
		}
		return out
	}
	waitProjects := func(what string, ok func(map[string]*execv1.Project) bool) map[string]*execv1.Project {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			s := states()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: projects %v\n%s", what, s, d.Logs())
			}
		}
	}
	// With one project served, a request need not name it.
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "quick"})

	// Added while execd serves: one good, one with no folder, one whose
	// settings do not load, one with a misspelt key.
	writeProjectsFile(t, root, `alpha: {folder: alpha}
  beta: {folder: beta, env: dev}
  gone: {folder: nowhere}
  nosettings: {folder: nosettings}
  typo: {foldr: alpha}`)
	s := waitProjects("beta served", func(s map[string]*execv1.Project) bool { return len(s) == 5 })
	broken := execv1.ProjectState_PROJECT_STATE_BROKEN
	for name, want := range map[string]string{"gone": "not a folder", "nosettings": "settings", "typo": `unknown key "foldr"`} {
		if s[name].GetState() != broken || !strings.Contains(s[name].GetError(), want) {
			t.Errorf("project %s: %v %q, want BROKEN with %q", name, s[name].GetState(), s[name].GetError(), want)
		}
	}
	for _, name := range []string{"alpha", "beta"} {
		if s[name].GetState() != execv1.ProjectState_PROJECT_STATE_SERVING {
			t.Errorf("project %s: %v %q beside broken ones", name, s[name].GetState(), s[name].GetError())
		}
	}
	_, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Project: "gone", Pipeline: "quick"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("a run of a broken project: %v, want FAILED_PRECONDITION saying why", err)
	}
	betaRun := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Project: "beta", Pipeline: "quick"})
	if r := waitRun(ctx, t, cl, betaRun); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r.GetProject() != "beta" {
		t.Fatalf("beta's run after it was added: %v %q (%s)", r.GetState(), r.GetProject(), r.GetMessage())
	}
	if r := waitRun(ctx, t, cl, runID); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r.GetProject() != "alpha" {
		t.Fatalf("alpha's run across the reload: %v %q (%s)", r.GetState(), r.GetProject(), r.GetMessage())
	}

	// A file that does not parse changes nothing.
	writeProjectsFile(t, root, "alpha: [unclosed")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(d.Logs(), "projects file not reloaded"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a malformed projects file was not reported\n%s", d.Logs())
		}
	}
	if s := states(); len(s) != 5 {
		t.Fatalf("after a malformed projects file: %v", s)
	}

	// Removed: no longer served, its runs still on record.
	writeProjectsFile(t, root, "alpha: {folder: alpha}")
	waitProjects("beta removed", func(s map[string]*execv1.Project) bool { return len(s) == 1 && s["alpha"] != nil })
	if r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: betaRun}); err != nil || r.GetRun().GetProject() != "beta" {
		t.Errorf("a removed project's run: %v (%v)", r.GetRun(), err)
	}
	list, err := cl.ListRuns(ctx, &execv1.ListRunsRequest{})
	got := []string{}
	for _, r := range list.GetRuns() {
		got = append(got, r.GetProject())
	}
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Errorf("every run listed after beta was removed: projects %v (%v)", got, err)
	}
}

func TestProjects_ATokenScopedToOneProjectIsRefusedOnTheOther(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	root := t.TempDir()
	for _, p := range []string{"alpha", "beta"} {
		if err := os.Rename(copyProject(t, "sqlproj"), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	file := writeProjectsFile(t, root, "alpha: {folder: alpha}\n  beta: {folder: beta}")
	tokensPath := filepath.Join(t.TempDir(), "tokens.jsonl")
	token := func(args ...string) string {
		out, err := exec.Command(execdBin(t), append([]string{"token", "--append", tokensPath}, args...)...).Output()
		if err != nil {
			t.Fatalf("execd token %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	admin := token("--name", "admin", "--role", "admin")
	ana := token("--name", "ana", "--project-role", "alpha=operator")
	d := startProjects(t, file, t.TempDir(), "--workers", "0", "--tokens", tokensPath)
	as := func(tok string) execv1.ExecServiceClient {
		return d.client(t, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer{token: tok}))
	}
	adminCl, anaCl := as(admin), as(ana)
	betaRun := startRun(ctx, t, adminCl, &execv1.ExecutePipelineRequest{Project: "beta", Pipeline: "quick"})
	alphaRun := startRun(ctx, t, anaCl, &execv1.ExecutePipelineRequest{Project: "alpha", Pipeline: "quick"})

	denied := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "project beta") {
			t.Errorf("ana's %s in beta: %v, want PERMISSION_DENIED naming the project", what, err)
		}
	}
	_, err := anaCl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Project: "beta", Pipeline: "quick"})
	denied("run", err)
	_, err = anaCl.ListPipelines(ctx, &execv1.ListPipelinesRequest{Project: "beta"})
	denied("pipelines", err)
	_, err = anaCl.GetRun(ctx, &execv1.GetRunRequest{RunId: betaRun})
	denied("GetRun", err)
	_, err = anaCl.CancelRun(ctx, &execv1.CancelRunRequest{RunId: betaRun})
	denied("CancelRun", err)
	_, err = anaCl.ListRuns(ctx, &execv1.ListRunsRequest{Project: "beta"})
	denied("ListRuns", err)

	// What ana may see is alpha's alone.
	if r := waitRun(ctx, t, anaCl, alphaRun); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("ana's run in alpha: %v (%s)", r.GetState(), r.GetMessage())
	}
	list, err := anaCl.ListRuns(ctx, &execv1.ListRunsRequest{})
	if err != nil || len(list.GetRuns()) != 1 || list.GetRuns()[0].GetRunId() != alphaRun {
		t.Errorf("ana's runs: %v (%v), want alpha's only", list.GetRuns(), err)
	}
	projects, err := anaCl.ListProjects(ctx, &execv1.ListProjectsRequest{})
	if err != nil || len(projects.GetProjects()) != 1 || projects.GetProjects()[0].GetName() != "alpha" ||
		projects.GetProjects()[0].GetRole() != execv1.Role_ROLE_OPERATOR {
		t.Errorf("ana's projects: %v (%v), want alpha, as operator", projects.GetProjects(), err)
	}
	caller, err := anaCl.GetCaller(ctx, &execv1.GetCallerRequest{})
	if err != nil || caller.GetRole() != execv1.Role_ROLE_UNSPECIFIED || len(caller.GetProjects()) != 1 ||
		caller.GetProjects()[0].GetProject() != "alpha" || caller.GetProjects()[0].GetRole() != execv1.Role_ROLE_OPERATOR {
		t.Errorf("ana's GetCaller: %v (%v)", caller, err)
	}
	if all, err := adminCl.ListRuns(ctx, &execv1.ListRunsRequest{}); err != nil || len(all.GetRuns()) != 2 {
		t.Errorf("the admin's runs: %v (%v), want both projects'", all.GetRuns(), err)
	}
}
