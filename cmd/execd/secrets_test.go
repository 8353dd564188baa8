package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

const testSecret = "hunter2-s3cr3t-value"

// appendConfig adds YAML text to a config file of a copied project.
func appendConfig(t *testing.T, project, file, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(project, "config", file), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + text); err != nil {
		t.Fatal(err)
	}
}

// leakyProject is sqlproj with a pipeline that puts ${TAURO_TEST_SECRET}
// in a node's SQL and description, in the error it fails with, and in an
// input path that does not exist.
func leakyProject(t *testing.T) string {
	t.Helper()
	p := copyProject(t, "sqlproj")
	appendConfig(t, p, "nodes.yaml", `leaky:
  description: "reads with key ${TAURO_TEST_SECRET}"
  sql: "SELECT raise_error('the key is ${TAURO_TEST_SECRET}') AS x"
  output: [scratch.leak.leaky]
lost_reader:
  input: [lost]
  sql: "SELECT * FROM lost"
`)
	appendConfig(t, p, "output.yaml", "scratch.leak.leaky: {format: parquet, write_mode: overwrite}\n")
	appendConfig(t, p, "input.yaml", "lost: {format: csv, filepath: \"/nowhere/${TAURO_TEST_SECRET}/lost.csv\"}\n")
	appendConfig(t, p, "pipelines.yaml", "leak: {type: batch, nodes: [leaky]}\nlost: {type: batch, nodes: [lost_reader]}\n")
	return p
}

func TestSecrets_AValueFromTheEnvironmentNeverReachesAClient(t *testing.T) {
	d := launchEnv(t, []string{"TAURO_TEST_SECRET=" + testSecret}, leakyProject(t), t.TempDir(), "--spark-remote", sparktest.Remote(t))
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)
	shown := func(what string, m proto.Message, err error) string {
		t.Helper()
		text := ""
		if m != nil {
			text = protojson.Format(m)
		}
		if err != nil {
			text += err.Error()
		}
		if strings.Contains(text, testSecret) {
			t.Errorf("%s shows the secret:\n%s", what, text)
		}
		return text
	}

	p, err := cl.GetPipeline(ctx, &execv1.GetPipelineRequest{Name: "leak"})
	if err != nil {
		t.Fatal(err)
	}
	if got := shown("GetPipeline", p, nil); !strings.Contains(got, "${TAURO_TEST_SECRET}") {
		t.Errorf("GetPipeline does not show where the value was:\n%s", got)
	}
	_, err = cl.ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "lost"})
	if got := shown("ValidatePipeline's error", nil, err); err == nil || !strings.Contains(got, "${TAURO_TEST_SECRET}") {
		t.Errorf("validating a missing input: %v", err)
	}
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "leak"})
	events := collect(ctx, t, cl, runID, 0)
	var text strings.Builder
	for _, ev := range events {
		text.WriteString(shown("an event", ev, nil))
	}
	if !strings.Contains(text.String(), "the key is ${TAURO_TEST_SECRET}") {
		t.Errorf("the node's error is not among the events:\n%s", text.String())
	}
	r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	shown("GetRun", r, err)
	runs, err := cl.ListRuns(ctx, &execv1.ListRunsRequest{})
	shown("ListRuns", runs, err)
	if strings.Contains(d.Logs(), testSecret) {
		t.Errorf("execd's log shows the secret:\n%s", d.Logs())
	}

	// The state the secret may sit in is execd's user's alone.
	for path, want := range map[string]os.FileMode{
		d.state: 0o700, filepath.Join(d.state, sqlite.FileName): 0o600, filepath.Join(d.state, "execd.lock"): 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
}

func TestSecrets_EnvAllowLeavesOtherNamesUnread(t *testing.T) {
	d := launchEnv(t, []string{"TAURO_TEST_SECRET=" + testSecret}, leakyProject(t), t.TempDir(),
		"--spark-remote", sparktest.Remote(t), "--env-allow", "NAP_*,DATA_ROOT")
	p, err := d.client(t).GetPipeline(testCtx(t, time.Minute), &execv1.GetPipelineRequest{Name: "leak"})
	if err != nil {
		t.Fatal(err)
	}
	if sql := p.GetPipeline().GetNodes()[0].GetSql(); sql != "SELECT raise_error('the key is ${TAURO_TEST_SECRET}') AS x" {
		t.Errorf("a name --env-allow does not allow was read: %s", sql)
	}
}

// The embedded Spark server takes only clients with its token, which
// execd's runner and its Python workers have and nothing shows; the
// workers get a small environment plus the project's worker_env.
func TestExecd_EmbeddedSparkNeedsItsTokenAndWorkersGetAMinimalEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Spark server")
	}
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project := copyProject(t, "pyproj")
	appendConfig(t, project, "global_settings.yaml", "worker_env: [TAURO_PASSED]\n")
	appendConfig(t, project, "nodes.yaml", "envcheck: {module: pyproj_nodes.envcheck, function: env_names, output: [test.env.names]}\n")
	appendConfig(t, project, "output.yaml", "test.env.names: {format: parquet, write_mode: overwrite}\n")
	appendConfig(t, project, "pipelines.yaml", "envcheck: {type: batch, nodes: [envcheck, adults, tagged, by_city]}\n")
	err = os.WriteFile(filepath.Join(project, "src", "pyproj_nodes", "envcheck.py"), []byte(`import os


def env_names(*, start_date, end_date, ml_context):
    print("env: " + ",".join(sorted(os.environ)))
    return ml_context["spark"].createDataFrame([{"n": len(os.environ)}])
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d := launchEnv(t, []string{"TAURO_PASSED=1", "TAURO_HIDDEN=1"}, project, t.TempDir(), "--python", py, "--workers", "1")
	cl := d.client(t)
	ctx := testCtx(t, 5*time.Minute)

	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "envcheck"})
	var env string
	for _, ev := range collect(ctx, t, cl, runID, 0) {
		if m := ev.GetNodeMessage(); m != nil && strings.HasPrefix(m.GetText(), "env: ") {
			env = m.GetText()
		}
	}
	r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil || r.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("the run on the embedded server (SQL and Python nodes): %v %v\n%s", r.GetRun(), err, d.Logs())
	}
	names := strings.Split(strings.TrimPrefix(env, "env: "), ",")
	for _, want := range []string{"PATH", "HOME", "TAURO_PASSED"} {
		if !slices.Contains(names, want) {
			t.Errorf("the worker's environment lacks %s: %v", want, names)
		}
	}
	for _, hidden := range []string{"TAURO_HIDDEN", "TAURO_WORKER_SPARK_REMOTE"} {
		if slices.Contains(names, hidden) {
			t.Errorf("the worker's environment has %s: %v", hidden, names)
		}
	}

	// What ps and the log show of execd's processes: no token.
	tokenLike := regexp.MustCompile(`token=[0-9a-f]{8}|authenticate\.token`)
	for _, c := range descendantCommandLines(t, d.cmd.Process.Pid) {
		if tokenLike.MatchString(c) {
			t.Errorf("a command line shows the token: %s", c)
		}
	}
	if tokenLike.MatchString(d.Logs()) {
		t.Errorf("execd's log shows the token:\n%s", d.Logs())
	}
	// A local client without the token is refused by Spark.
	m := regexp.MustCompile(`sc://localhost:(\d+)/;token=\*\*\*`).FindStringSubmatch(d.Logs())
	if m == nil {
		t.Fatalf("no redacted Spark remote in the log:\n%s", d.Logs())
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sparkserver.Ping(pctx, "sc://127.0.0.1:"+m[1]); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authenticat") {
		t.Errorf("a client without the embedded server's token: %v, want Spark's authentication error", err)
	}
}

// descendantCommandLines returns what ps shows of pid's descendants.
func descendantCommandLines(t *testing.T, pid int) []string {
	t.Helper()
	var out []string
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); err == nil {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
		queue = append(queue, childPIDs(t, p)...)
	}
	return out
}
