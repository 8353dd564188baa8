package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// The cluster tests run only in `make test-cluster`, against a local
// standalone cluster (execd spark-cluster) that TAURO_SPARK_CLUSTER_REMOTE
// names; there TAURO_SPARK_REMOTE names it too, so the other tests the
// target selects run on it as well.

// onCluster skips the test unless a test cluster runs, and returns the
// tasks its executors have run so far.
func onCluster(t *testing.T) map[string]int {
	t.Helper()
	if os.Getenv(sparktest.EnvClusterRemote) == "" {
		t.Skipf("needs the test cluster (%s); make test-cluster starts one", sparktest.EnvClusterRemote)
	}
	return sparktest.ClusterTasks(t)
}

// clusterParallel runs the test in parallel with the other cluster tests
// of make test-cluster, which mostly wait on Spark; elsewhere tests run one
// at a time as usual. It reports whether a test cluster runs.
func clusterParallel(t *testing.T) bool {
	if os.Getenv(sparktest.EnvClusterRemote) == "" {
		return false
	}
	t.Parallel()
	return true
}

// spreadOver checks that at least two executors ran tasks since before.
func spreadOver(t *testing.T, before map[string]int) {
	t.Helper()
	after := sparktest.ClusterTasks(t)
	busy := 0
	for id, n := range after {
		if n > before[id] {
			busy++
		}
	}
	t.Logf("tasks per executor before %v, after %v", before, after)
	if busy < 2 {
		t.Errorf("tasks ran on %d executor(s), want at least 2 (before %v, after %v)", busy, before, after)
	}
}

// salesExample copies examples/sales with freshly generated orders.
func salesExample(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "sales")
	dst := filepath.Join(t.TempDir(), "sales")
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "data" || rel == "output" || info.Name() == "__pycache__" {
			return filepath.SkipDir
		}
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	py, err := sparktest.Python()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, filepath.Join(dst, "generate_data.py")).CombinedOutput(); err != nil {
		t.Fatalf("generating the orders: %v\n%s", err, out)
	}
	return dst
}

// dailyTotals is daily_totals computed from the orders CSV by hand: per
// day of [from, to], the orders with a positive quantity and their
// revenue (a missing price counts the order and adds nothing).
func dailyTotals(t *testing.T, path, from, to string) map[string][2]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	orders := map[string]map[string]bool{}
	revenue := map[string]float64{}
	for _, r := range recs[1:] {
		id, day := r[0], r[4]
		q, _ := strconv.Atoi(r[5])
		if day < from || day > to || q <= 0 {
			continue
		}
		if orders[day] == nil {
			orders[day] = map[string]bool{}
		}
		orders[day][id] = true
		if p, err := strconv.ParseFloat(r[6], 64); err == nil {
			revenue[day] += float64(q) * p
		}
	}
	out := map[string][2]float64{}
	for day, ids := range orders {
		out[day] = [2]float64{float64(len(ids)), revenue[day]}
	}
	return out
}

func TestCluster_SalesExampleTwoWindowsEachReplacingOnlyItsOwnDaysWithTasksOnBothExecutors(t *testing.T) {
	before := onCluster(t)
	clusterParallel(t)
	project := salesExample(t)
	ctx := testCtx(t, 5*time.Minute)
	d := startDaemon(t, project, t.TempDir(), "--workers", "0")
	cl := d.client(t)
	// The whole pipeline for January, then only daily_totals and what it
	// reads for February.
	windows := [][2]string{{"2025-01-01", "2025-01-31"}, {"2025-02-01", "2025-02-28"}}
	for i, w := range windows {
		req := &execv1.ExecutePipelineRequest{Pipeline: "daily_sales", StartDate: w[0], EndDate: w[1]}
		if i > 0 {
			req.Select = []string{"+daily_totals"}
		}
		runID := startRun(ctx, t, cl, req)
		collect(ctx, t, cl, runID, 0)
		got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
		if err != nil {
			t.Fatal(err)
		}
		if st := got.GetRun().GetState(); st != execv1.RunState_RUN_STATE_SUCCEEDED {
			t.Fatalf("daily_sales for %v is %v: %s\n%s", w, st, got.GetRun().GetMessage(), d.Logs())
		}
	}

	// daily_totals rewrites only its run's window (replaceWhere), so after
	// February's run January's days are still there, as computed.
	want := dailyTotals(t, filepath.Join(project, "data", "orders.csv"), windows[0][0], windows[1][1])
	spark := sparktest.Session(ctx, t)
	daily := filepath.Join(project, "output", "dev", "gold", "sales", "daily_totals")
	df, err := spark.Sql(ctx, fmt.Sprintf("SELECT CAST(order_date AS STRING), orders, revenue FROM delta.`%s` ORDER BY order_date", daily))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) || len(rows) != 31+28 {
		t.Fatalf("daily_totals has %d days, the orders give %d (59 for January and February)", len(rows), len(want))
	}
	for _, row := range rows {
		day := fmt.Sprint(row.At(0))
		w, ok := want[day]
		orders, _ := row.At(1).(int64)
		revenue, _ := row.At(2).(float64)
		if !ok || float64(orders) != w[0] || math.Abs(revenue-w[1]) > 1e-6 {
			t.Errorf("%s: %d orders, revenue %.2f; the orders give %v", day, orders, revenue, w)
		}
	}
	if n := deltaCommits(ctx, t, daily); n != 2 {
		t.Errorf("daily_totals has %d commits, want one per run", n)
	}
	spreadOver(t, before)
}

// TestCluster_EveryExecutorRanTasks runs last in make test-cluster: over
// the whole cluster run, every executor took work.
func TestCluster_EveryExecutorRanTasks(t *testing.T) {
	onCluster(t)
	ex := sparktest.ClusterExecutors(t)
	if len(ex) < 2 {
		t.Fatalf("the cluster has %d executors, want 2", len(ex))
	}
	for _, e := range ex {
		t.Logf("executor %s at %s: %d tasks, %d failed", e.ID, e.HostPort, e.TotalTasks, e.FailedTasks)
		if e.TotalTasks == 0 {
			t.Errorf("executor %s ran no task", e.ID)
		}
	}
}
