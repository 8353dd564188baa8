package sparktest

import (
	"context"
	"os"
	"testing"
	"time"

	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
)

// What the tests ask of the test cluster: which jobs its Connect server
// ran, and on which executors, read from the driver's REST API (ui.go).
// Starting the cluster is the server package's; reading its work is the
// tests'.

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
