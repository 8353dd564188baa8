package sparktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
)

// What the tests ask of the test cluster: which jobs its Connect server
// ran, and on which executors, read from the driver's REST API. Starting
// the cluster is the server package's; reading its work is the tests'.

// The test cluster of make test-cluster (execd spark-cluster).
const (
	EnvClusterRemote = "TAURO_SPARK_CLUSTER_REMOTE" // its Connect server, sc://...
	EnvClusterUI     = "TAURO_SPARK_CLUSTER_UI"     // its driver's Spark UI, http://...
)

// clusterApp returns the test cluster's driver UI and application id.
func clusterApp(tb testing.TB) (ui, app string) {
	tb.Helper()
	ui = os.Getenv(EnvClusterUI)
	if ui == "" {
		tb.Fatalf("%s is not set: the cluster's driver UI is unknown", EnvClusterUI)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := sparkserver.ApplicationID(ctx, ui)
	if err != nil {
		tb.Fatal(err)
	}
	return ui, app
}

// ClusterJobs lists the jobs the test cluster's Connect server ran.
func ClusterJobs(tb testing.TB) []Job {
	tb.Helper()
	ui, app := clusterApp(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := jobs(ctx, ui, app)
	if err != nil {
		tb.Fatal(err)
	}
	return all
}

// ClusterExecutors lists the executors of the test cluster's Connect
// server, from its driver's REST API. The test fails when there is none to
// ask.
func ClusterExecutors(tb testing.TB) []sparkserver.Executor {
	tb.Helper()
	ui, app := clusterApp(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := sparkserver.Executors(ctx, ui, app)
	if err != nil {
		tb.Fatal(err)
	}
	return ex
}

// ClusterTasks is how many tasks each executor of the test cluster has
// run, by executor id.
func ClusterTasks(tb testing.TB) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for _, e := range ClusterExecutors(tb) {
		out[e.ID] = e.TotalTasks
	}
	return out
}

// ClusterJobExecutors counts the tasks of a job of the test cluster by the
// executor that ran them.
func ClusterJobExecutors(tb testing.TB, job Job) map[string]int {
	tb.Helper()
	ui, app := clusterApp(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int{}
	for _, id := range job.StageIDs {
		by, err := stageExecutors(ctx, ui, app, id)
		if err != nil {
			tb.Fatal(err)
		}
		for ex, n := range by {
			out[ex] += n
		}
	}
	return out
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
