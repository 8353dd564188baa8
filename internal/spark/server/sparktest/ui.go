package sparktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
)

// Spark's own record of what it ran, read from a driver's REST API
// (/api/v1/applications/...): the jobs, tagged with the Spark Connect
// session and operation that ran them, and the SQL executions, which end
// only once their command has (a Delta write's commit included).

// ServerWithUI starts a Spark Connect server of the test's own, with its
// Spark UI on a free loopback port, and returns its connection string and
// its UI's address; the server is stopped when the test ends. It is for
// the tests that wait on Spark's record of an operation, which the shared
// server (UI off, as execd runs it) does not keep. A missing Java or venv
// skips the test, or fails it when TAURO_REQUIRE_SPARK=1.
func ServerWithUI(tb testing.TB) (remote, ui string) {
	tb.Helper()
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
	port, err := freePort() // not Spark's default 4040, which another server may hold
	if err != nil {
		return "", "", err
	}
	srv, err := sparkserver.Start(context.Background(), sparkserver.Config{
		Python:   python,
		StateDir: tb.TempDir(),
		Conf: map[string]string{
			"spark.ui.enabled":             "true",
			"spark.ui.port":                strconv.Itoa(port),
			"spark.ui.showConsoleProgress": "false",
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return "", "", err
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	// Spark takes the next port when the one chosen was taken meanwhile;
	// its log says where the UI is.
	ui, err = boundUI(srv.LogPath())
	return srv.Remote(), ui, err
}

// uiBound is Spark's log line naming the UI's port.
var uiBound = regexp.MustCompile(`Successfully started service 'SparkUI' on port (\d+)`)

// boundUI reads the Spark UI's address from the server's log.
func boundUI(logPath string) (string, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		if m := uiBound.FindSubmatch(b); m != nil {
			return "http://127.0.0.1:" + string(m[1]), nil
		}
	}
	return "", fmt.Errorf("the Spark UI's port is not in %s", logPath)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Jobs lists the jobs of the application whose driver UI is ui, newest
// first.
func Jobs(tb testing.TB, ui string) []Job {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := sparkserver.ApplicationID(ctx, ui)
	if err != nil {
		tb.Fatal(err)
	}
	all, err := jobs(ctx, ui, app)
	if err != nil {
		tb.Fatal(err)
	}
	return all
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := sparkserver.ApplicationID(ctx, ui)
	if err != nil {
		tb.Fatal(err)
	}
	var all []SQLExecution
	if err := getJSON(ctx, ui+"/api/v1/applications/"+app+"/sql?details=false", &all); err != nil {
		tb.Fatal(err)
	}
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
