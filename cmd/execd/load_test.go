package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// copyExample copies examples/NAME and writes its input data.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	py, err := sparktest.Python()
	if err != nil {
		t.Fatal(err)
	}
	src, dst := filepath.Join("..", "..", "examples", name), filepath.Join(t.TempDir(), name)
	err = filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
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
	if out, err := exec.Command(py, filepath.Join(dst, "generate_data.py")).CombinedOutput(); err != nil {
		t.Fatalf("generating data: %v\n%s", err, out)
	}
	return dst
}

// The operator's load test: 30 runs of the example's daily_sales submitted
// at once. They share their outputs, so they execute one at a time, in the
// order of their priority and then of their submission, and every one
// succeeds.
func TestLoad_ThirtyRunsAtOnceAllSucceedOneAtATimeInPriorityOrder(t *testing.T) {
	project := copyExample(t, "sales")
	d := startDaemon(t, project, t.TempDir(), "--workers", "0", "--max-concurrent-runs", "2")
	cl := d.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	const n = 30
	ids := make([]string, n)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{
				Pipeline: "daily_sales", StartDate: "2025-01-01", EndDate: "2025-01-31",
				RequestId: fmt.Sprintf("load-%d", i), Priority: int32(i % 3),
			})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
				return
			}
			ids[i] = resp.GetRun().GetRunId()
		}()
	}
	wg.Wait()
	if submitted := time.Since(began); submitted > 2*time.Second {
		t.Logf("submitting took %s", submitted)
	}
	if t.Failed() {
		t.FailNow()
	}
	runs := make([]*execv1.Run, n)
	for i, id := range ids {
		runs[i] = waitEnded(ctx, t, cl, id)
		if runs[i].GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
			t.Errorf("run %d (%s) ended %s: %s", i, id, runs[i].GetState(), runs[i].GetMessage())
		}
	}
	t.Logf("30 runs executed in %s", time.Since(began).Round(time.Second))

	// Never two at once: they write the same outputs (and max_active_runs
	// is 1).
	sort.Slice(runs, func(a, b int) bool { return runs[a].GetStartTime().AsTime().Before(runs[b].GetStartTime().AsTime()) })
	for i := 1; i < n; i++ {
		prev, next := runs[i-1], runs[i]
		if next.GetStartTime().AsTime().Before(prev.GetEndTime().AsTime()) {
			t.Errorf("run %s started at %s, before run %s ended at %s", next.GetRunId(), next.GetStartTime().AsTime(), prev.GetRunId(), prev.GetEndTime().AsTime())
		}
	}
	// Runs execute one at a time, so each run after the first was chosen
	// when the one before it ended. A run created before that end was
	// waiting then (creating a run and queueing it hold the lock that
	// choosing takes): the chosen run must come first among those, by
	// priority, then by submission.
	for i := 1; i < n; i++ {
		a, chosenAt := runs[i], runs[i-1].GetEndTime().AsTime()
		for _, b := range runs[i+1:] {
			if !b.GetCreateTime().AsTime().Before(chosenAt) {
				continue
			}
			if a.GetPriority() < b.GetPriority() ||
				a.GetPriority() == b.GetPriority() && b.GetCreateTime().AsTime().Before(a.GetCreateTime().AsTime()) {
				t.Errorf("run %s (priority %d) was chosen before %s (priority %d, submitted %s), which was waiting and comes first",
					a.GetRunId(), a.GetPriority(), b.GetRunId(), b.GetPriority(), b.GetCreateTime().AsTime())
			}
		}
	}
	checkDailySales(ctx, t, project)
}

func waitEnded(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, id string) *execv1.Run {
	t.Helper()
	for {
		r := getRun(ctx, t, cl, id)
		if terminalRun(r.GetState()) {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s still %s", id, r.GetState())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkDailySales reads what the last run left: a day total for each of
// January's 31 days and one summary row.
func checkDailySales(ctx context.Context, t *testing.T, project string) {
	t.Helper()
	spark := sparktest.Session(ctx, t) // the server's token needs the test's own channel
	out := filepath.Join(project, "output", "dev", "gold", "sales")
	for query, want := range map[string]string{
		fmt.Sprintf("SELECT count(*), count(DISTINCT order_date) FROM delta.`%s`", filepath.Join(out, "daily_totals")): "31 31",
		fmt.Sprintf("SELECT stores, products FROM parquet.`%s`", filepath.Join(out, "summary")):                        "5 12",
	} {
		df, err := spark.Sql(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := df.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || fmt.Sprint(rows[0].At(0), " ", rows[0].At(1)) != want {
			t.Errorf("%s = %v, want %s", query, rows, want)
		}
	}
}

// With max_active_runs far above the runs started and room for every run
// at once, only the output-overlap rule holds runs apart: a second run of
// admit_shared, which writes the same output as the first, waits for it
// (no_wait names the run writing there as the reason), while a run of
// admit_other, whose output is its own, executes beside the first.
func TestLoad_OnlyTheOutputOverlapRuleHoldsRunsApartWhenMaxActiveRunsIsHigh(t *testing.T) {
	project := copyProject(t, "sqlproj")
	d := startDaemon(t, project, t.TempDir(), "--workers", "0", "--max-concurrent-runs", "4")
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)

	first := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "admit_shared", RequestId: "first"})
	waitForNodeState(ctx, t, cl, first, "shared_nap_write", execv1.NodeState_NODE_STATE_RUNNING)

	_, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "admit_shared", RequestId: "refused", NoWait: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "run "+first+" is writing") {
		t.Fatalf("a second admit_shared run with no_wait while the first writes: %v; want FAILED_PRECONDITION naming run %s writing its output", err, first)
	}
	second := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "admit_shared", RequestId: "second"})
	other := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "admit_other", RequestId: "other"})

	runs := map[string]*execv1.Run{}
	for name, id := range map[string]string{"first": first, "second": second, "other": other} {
		runs[name] = waitEnded(ctx, t, cl, id)
		if runs[name].GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
			t.Fatalf("run %s (%s) ended %s: %s", name, id, runs[name].GetState(), runs[name].GetMessage())
		}
	}
	span := func(r *execv1.Run) (time.Time, time.Time) { return r.GetStartTime().AsTime(), r.GetEndTime().AsTime() }
	together := func(a, b *execv1.Run) bool {
		as, ae := span(a)
		bs, be := span(b)
		return as.Before(be) && bs.Before(ae)
	}
	if together(runs["first"], runs["second"]) {
		fs, fe := span(runs["first"])
		ss, se := span(runs["second"])
		t.Errorf("the two admit_shared runs write the same output but executed together: %s-%s and %s-%s", fs, fe, ss, se)
	}
	if !together(runs["first"], runs["other"]) {
		fs, fe := span(runs["first"])
		obs, obe := span(runs["other"])
		t.Errorf("admit_other writes elsewhere but did not execute beside the first run: %s-%s and %s-%s", fs, fe, obs, obe)
	}
}
