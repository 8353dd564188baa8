package sparktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
)

// Spark's own record of what it ran, read from a driver's REST API
// (/api/v1/applications/...): the jobs, tagged with the Spark Connect
// session and operation that ran them, and the SQL executions, which end
// only once their command has (a Delta write's commit included).

// ServerWithUI returns a Spark Connect server with its Spark UI on, and
// the UI's address: the test run's shared server when the Makefile started
// it with its UI (TAURO_SPARK_UI beside TAURO_SPARK_REMOTE), otherwise one
// of the test's own, stopped when the test ends. It is for the tests that
// wait on Spark's record of an operation; they must pick out their own
// session's work, as other tests use the shared server at the same time.
// A missing Java or venv skips the test, or fails it when
// TAURO_REQUIRE_SPARK=1.
func ServerWithUI(tb testing.TB) (remote, ui string) {
	tb.Helper()
	if ui, remote := os.Getenv(EnvUI), os.Getenv(EnvRemote); ui != "" && remote != "" {
		return remote, ui
	}
	remote, ui, err := startWithUI(tb)
	if err != nil {
		missing := errors.Is(err, sparkserver.ErrJavaMissing) || errors.Is(err, sparkserver.ErrSparkMissing)
		if missing && os.Getenv(EnvRequire) != "1" {
			tb.Skipf("no Spark for integration tests (%v); set %s=1 to make this an error", err, EnvRequire)
		}
		tb.Fatalf("start a Spark Connect server with its UI: %v", err)
	}
	return remote, ui
}

func startWithUI(tb testing.TB) (remote, ui string, err error) {
	python, err := Python()
	if err != nil {
		return "", "", err
	}
	conf, err := sparkserver.FreeUIConf()
	if err != nil {
		return "", "", err
	}
	srv, err := sparkserver.Start(context.Background(), sparkserver.Config{
		Python:   python,
		StateDir: tb.TempDir(),
		Conf:     conf,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return "", "", err
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	ui, err = srv.UI(context.Background())
	return srv.Remote(), ui, err
}

// Jobs lists the jobs of the application whose driver UI is ui, newest
// first.
func Jobs(tb testing.TB, ui string) []Job {
	tb.Helper()
	var all []Job
	appGet(tb, ui, "jobs", &all)
	return all
}

// appGet decodes into the answer of the REST API of the application whose
// driver UI is ui to a GET of path (jobs, stages, ...).
func appGet(tb testing.TB, ui, path string, into any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := sparkserver.ApplicationID(ctx, ui)
	if err == nil {
		err = getJSON(ctx, ui+"/api/v1/applications/"+app+"/"+path, into)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// TaskCPU is the CPU time the tasks of the application's jobs numbered
// above after spent (Spark's executorCpuTime, summed over the stages they
// ran), and the highest job number: what a node's jobs cost the server,
// whatever else the machine runs meanwhile, when nothing else runs on
// that server.
func TaskCPU(tb testing.TB, ui string, after int) (time.Duration, int) {
	tb.Helper()
	all := Jobs(tb, ui)
	var stages []struct {
		ID  int   `json:"stageId"`
		CPU int64 `json:"executorCpuTime"` // ns
	}
	appGet(tb, ui, "stages", &stages)
	cpu := map[int]int64{}
	for _, st := range stages {
		cpu[st.ID] += st.CPU // each attempt's
	}
	// A stage a later job reuses (its shuffle output) is listed by both
	// jobs: it is the first one's.
	first := map[int]int{}
	last := after
	for _, j := range all {
		last = max(last, j.ID)
		for _, id := range j.StageIDs {
			if f, ok := first[id]; !ok || j.ID < f {
				first[id] = j.ID
			}
		}
	}
	var total int64
	for id, job := range first {
		if job > after {
			total += cpu[id]
		}
	}
	return time.Duration(total), last
}

// CachedRDDs names the RDDs the application whose driver UI is ui holds
// cached blocks of: a cached Dataset's is named by its physical plan.
func CachedRDDs(tb testing.TB, ui string) []string {
	tb.Helper()
	var rdds []struct {
		Name string `json:"name"`
	}
	appGet(tb, ui, "storage/rdd", &rdds)
	names := make([]string, len(rdds))
	for i, r := range rdds {
		names[i] = r.Name
	}
	return names
}

// SQLExecution is one SQL execution of an application as its driver's
// REST API reports it. Its status is RUNNING until its command has ended,
// then COMPLETED or FAILED (an interrupted one is FAILED).
type SQLExecution struct {
	ID            int    `json:"id"`
	Status        string `json:"status"`
	Description   string `json:"description"`
	RunningJobIDs []int  `json:"runningJobIds"`
	SuccessJobIDs []int  `json:"successJobIds"`
	FailedJobIDs  []int  `json:"failedJobIds"`
	// Plan is the physical plan, as SQLExecutionsWithPlans reads it.
	Plan string `json:"planDescription"`
}

// InSession reports whether the execution ran for a Spark Connect request
// of the session, as its description says ("Spark Connect - session_id:
// ..."). A command's execution may hold no job of its own (a Delta write's
// outer execution, which commits), so the session is what ties it to the
// operation's jobs.
func (x SQLExecution) InSession(session string) bool {
	return strings.Contains(x.Description, `session_id: "`+session+`"`)
}

// SQLExecutions lists the SQL executions of the application whose driver
// UI is ui.
func SQLExecutions(tb testing.TB, ui string) []SQLExecution {
	tb.Helper()
	var all []SQLExecution
	appGet(tb, ui, "sql?details=false", &all)
	return all
}

// SQLExecutionsWithPlans is SQLExecutions with each one's physical plan
// (its scans' and writes' paths among it).
func SQLExecutionsWithPlans(tb testing.TB, ui string) []SQLExecution {
	tb.Helper()
	var all []SQLExecution
	appGet(tb, ui, "sql?details=true&planDescription=true", &all)
	return all
}

// Job is one job of an application as its driver's REST API reports it.
// A Spark Connect server tags each job with the session and the operation
// that ran it (SparkConnect_OperationTag_User_U_Session_S_Operation_O).
type Job struct {
	ID          int      `json:"jobId"`
	Description string   `json:"description"`
	Tags        []string `json:"jobTags"`
	Status      string   `json:"status"`
	NumTasks    int      `json:"numTasks"`
	StageIDs    []int    `json:"stageIds"`
	// Submitted and Completed are the driver's times, as it writes them
	// (2026-12-07T17:46:06.305GMT); see Times.
	Submitted string `json:"submissionTime"`
	Completed string `json:"completionTime"`
}

// Times are when the job was submitted and completed; ok is false while it
// runs.
func (j Job) Times() (submitted, completed time.Time, ok bool) {
	const layout = "2006-01-02T15:04:05.000GMT"
	s, err1 := time.Parse(layout, j.Submitted)
	c, err2 := time.Parse(layout, j.Completed)
	return s, c, err1 == nil && err2 == nil
}

// stageExecutors counts the tasks of a stage's attempts by the executor
// that ran them.
func stageExecutors(ctx context.Context, driverUI, appID string, stageID int) (map[string]int, error) {
	var attempts []struct {
		Tasks map[string]struct {
			ExecutorID string `json:"executorId"`
		} `json:"tasks"`
	}
	url := fmt.Sprintf("%s/api/v1/applications/%s/stages/%d?details=true", driverUI, appID, stageID)
	if err := getJSON(ctx, url, &attempts); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, a := range attempts {
		for _, t := range a.Tasks {
			out[t.ExecutorID]++
		}
	}
	return out, nil
}

// jobs lists the application's jobs, newest first.
func jobs(ctx context.Context, driverUI, appID string) ([]Job, error) {
	var jobs []Job
	err := getJSON(ctx, driverUI+"/api/v1/applications/"+appID+"/jobs", &jobs)
	return jobs, err
}

// Operation is the Spark Connect operation that ran the job, from its tags,
// "" when the job carries none.
func (j Job) Operation() string {
	for _, t := range j.Tags {
		if _, op, ok := strings.Cut(t, "_Operation_"); ok && strings.HasPrefix(t, "SparkConnect_OperationTag_") {
			return op
		}
	}
	return ""
}

// Session is the Spark Connect session that ran the job, from its tags,
// "" when the job carries none.
func (j Job) Session() string {
	for _, t := range j.Tags {
		if _, rest, ok := strings.Cut(t, "_Session_"); ok && strings.HasPrefix(t, "SparkConnect_OperationTag_") {
			session, _, _ := strings.Cut(rest, "_Operation_")
			return session
		}
	}
	return ""
}

// InSession reports whether a job ran in the Spark Connect session.
func (j Job) InSession(session string) bool {
	for _, t := range j.Tags {
		if strings.HasPrefix(t, "SparkConnect_OperationTag_") && strings.Contains(t, "_Session_"+session+"_Operation_") {
			return true
		}
	}
	return false
}

// getJSON decodes the answer to a GET of url into into.
func getJSON(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
