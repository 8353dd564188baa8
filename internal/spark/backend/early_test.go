package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// earlyProject is a project whose Python node down reads what Python node
// up writes. up's first output, two million rows, takes Spark a while to
// write; down's function records when it is called (calls.txt) and says
// so. global is added to the global settings.
func earlyProject(t *testing.T, global string) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml": "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_parallel_nodes: 2\n" +
			"max_retries: 0\nallowed_module_prefixes: [earlynodes]\n" + global,
		"pipelines.yaml": "p: {nodes: [up, down]}\n",
		"nodes.yaml": `up: {function: earlynodes.up, input: [raw], output: [o.t.big, o.t.up]}
down: {function: earlynodes.down, input: [o.t.up], dependencies: [up], output: [o.t.down]}
`,
		"earlynodes.py": `import pathlib, time

def up(df, *, start_date, end_date):
    return df

def down(df, *, start_date, end_date):
    with open(pathlib.Path(__file__).parent / "calls.txt", "a") as f:
        f.write(repr(time.time()) + "\n")
    print("down called")
    return df.where("id % 2 = 0")
`,
		"input.yaml":  "raw: {format: query, query: \"SELECT id FROM range(2000000)\"}\n",
		"output.yaml": "o.t.big: {format: parquet}\no.t.up: {format: parquet}\no.t.down: {format: parquet}\n",
	})
	return dir
}

// runEarly runs pipeline p of the project in dir and returns the run, its
// events, and the times down's function was called.
func runEarly(t *testing.T, dir string) (run.Run, []run.Event, []time.Time) {
	t.Helper()
	return runProfiled(t, dir, false)
}

// runProfiled is runEarly, with the nodes' profiles among the events when
// profile is set.
func runProfiled(t *testing.T, dir string, profile bool) (run.Run, []run.Event, []time.Time) {
	t.Helper()
	remote := sparktest.Remote(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, be := pythonEngine(ctx, t, python, dir, remote, slog.New(slog.DiscardHandler))
	be.SetProfile(profile)
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := eng.Watch(ctx, r.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var events []run.Event
	for ev := range w.Events() {
		events = append(events, ev)
	}
	done, err := eng.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var calls []time.Time
	b, err := os.ReadFile(filepath.Join(dir, "calls.txt"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Fields(string(b)) {
		s, err := strconv.ParseFloat(line, 64)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, time.Unix(0, int64(s*1e9)))
	}
	return done, events, calls
}

// nodeState returns when node entered state, from the run's events.
func nodeState(events []run.Event, node string, state run.NodeState) (time.Time, bool) {
	for _, ev := range events {
		if ev.Kind == run.NodeStateChanged && ev.Node == node && ev.NodeState == state {
			return ev.Time, true
		}
	}
	return time.Time{}, false
}

func messages(events []run.Event, node, text string) int {
	n := 0
	for _, ev := range events {
		if ev.Kind == run.NodeMessage && ev.Node == node && strings.Contains(ev.Message, text) {
			n++
		}
	}
	return n
}

// While up writes its outputs, down's function is already called; down's
// attempt then takes that call up: the function ran once, its message is
// down's, and down writes what it returned. With early_function_calls:
// false it is called after up succeeded.
func TestEarlyCall_ADependentsFunctionRunsWhileItsUpstreamWrites(t *testing.T) {
	for _, early := range []bool{true, false} {
		t.Run("early_function_calls="+strconv.FormatBool(early), func(t *testing.T) {
			dir := earlyProject(t, "early_function_calls: "+strconv.FormatBool(early)+"\n")
			r, events, calls := runEarly(t, dir)
			if r.State != run.Succeeded {
				t.Fatalf("run %s: %s", r.State, r.Message)
			}
			upDone, _ := nodeState(events, "up", run.NodeSucceeded)
			if len(calls) != 1 {
				t.Fatalf("down's function was called %d times, want once", len(calls))
			}
			if got := calls[0].Before(upDone); got != early {
				t.Errorf("down's function called at %s, up succeeded at %s: called before = %v, want %v",
					calls[0].Format(time.StampMicro), upDone.Format(time.StampMicro), got, early)
			}
			if n := messages(events, "down", "down called"); n != 1 {
				t.Errorf("down's message was reported %d times, want once", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got := ints(ctx, t, nil, "SELECT count(*), sum(id % 2) FROM parquet.`"+filepath.Join(dir, "out", "o", "t", "down")+"`")
			if got[0] != 1000000 || got[1] != 0 {
				t.Errorf("down wrote %d rows, %d of them odd; want its function's 1000000 even ids", got[0], got[1])
			}
		})
	}
}

// A node whose result is cached for its readers (kept: an output and a
// reader) has it cached by its early call, while up still writes: the
// attempt that takes the call up counts that persist among its requests
// as made early and sends none of its own. reader's function finds kept's
// result cached, and writes its rows. (Without early calls the attempt
// caches it, as profile_test's node a shows.)
func TestEarlyCall_CachesTheResultItsReadersRead(t *testing.T) {
	dir := earlyProject(t, "")
	writeFiles(t, dir, map[string]string{
		"pipelines.yaml": "p: {nodes: [up, kept, reader]}\n",
		"nodes.yaml": `up: {function: earlynodes.up, input: [raw], output: [o.t.big, o.t.up]}
kept: {function: earlynodes.down, input: [o.t.up], output: [o.t.kept]}
reader: {function: earlynodes.reader, input: [o.t.kept], output: [o.t.reader]}
`,
		"earlynodes.py": `def up(df, *, start_date, end_date):
    return df

def down(df, *, start_date, end_date):
    return df.where("id % 2 = 0")

def reader(df, *, start_date, end_date):
    spark = df.sparkSession
    views = [r.viewName for r in spark.sql("SHOW VIEWS IN global_temp").collect()]
    kept = [v for v in views if v.endswith("_kept")]
    if not kept or not all(spark.catalog.isCached("global_temp." + v) for v in kept):
        raise ValueError("kept's result is not cached: " + ", ".join(kept))
    return df
`,
		"output.yaml": "o.t.big: {format: parquet}\no.t.up: {format: parquet}\no.t.kept: {format: parquet}\no.t.reader: {format: parquet}\n",
	})
	got := runKept(t, dir)
	if got["execd.calls.AnalyzePlan"] != 1 || got["execd.early.AnalyzePlan"] != 1 || got["execd.early.ExecutePlan"] != 0 {
		t.Errorf("kept's requests %v; want one persist (AnalyzePlan), made early, and no other early request", got)
	}
	evenRows(t, dir, 1000000)
}

// An early call whose upstream then runs again is discarded, and what it
// cached is released before the function is called anew: up's first
// attempt returns rows whose write outlasts its timeout (a sleep on one
// row), its second the plain rows. kept's call, made early while the first
// attempt writes, is replaced by one made once the second has its result;
// that one released the first's cache (an unpersist) and cached its own
// result (a persist), each an analysis request, and kept's attempt takes
// it up.
func TestEarlyCall_ReleasesTheCacheOfACallItDiscards(t *testing.T) {
	dir := earlyProject(t, "")
	writeFiles(t, dir, map[string]string{
		"pipelines.yaml": "p: {nodes: [up, kept, reader]}\n",
		"nodes.yaml": `up: {function: earlynodes.up, input: [raw], output: [o.t.up], max_retries: 1, retry_delay: 0, timeout_seconds: 4}
kept: {function: earlynodes.down, input: [o.t.up], output: [o.t.kept]}
reader: {function: earlynodes.reader, input: [o.t.kept], output: [o.t.reader]}
`,
		"earlynodes.py": `import pathlib

def up(df, *, start_date, end_date):
    calls = pathlib.Path(__file__).parent / "up_calls.txt"
    first = not calls.exists()
    calls.write_text("called")
    if first:
        return df.selectExpr("id", "reflect('java.lang.Thread', 'sleep', CAST(IF(id = 0, 8000, 0) AS BIGINT)) AS slept")
    return df

def down(df, *, start_date, end_date):
    return df.where("id % 2 = 0")

def reader(df, *, start_date, end_date):
    return df
`,
		"input.yaml":  "raw: {format: query, query: \"SELECT id FROM range(1000)\"}\n",
		"output.yaml": "o.t.up: {format: parquet}\no.t.kept: {format: parquet}\no.t.reader: {format: parquet}\n",
	})
	got := runKept(t, dir)
	if got["execd.early.AnalyzePlan"] != 2 || got["execd.early.ExecutePlan"] != 0 {
		t.Errorf("kept's requests %v; want its early call's release of the discarded call's cache and its own persist", got)
	}
	evenRows(t, dir, 500)
}

// runKept runs the project in dir, profiled, which must succeed, and
// returns node kept's metrics.
func runKept(t *testing.T, dir string) map[string]float64 {
	t.Helper()
	r, events, _ := runProfiled(t, dir, true)
	if r.State != run.Succeeded {
		for _, ev := range events {
			if ev.Error != nil {
				t.Logf("%s: %s", ev.Node, ev.Error.Message)
			}
		}
		t.Fatalf("run %s: %s", r.State, r.Message)
	}
	got := map[string]float64{}
	for _, ev := range events {
		if ev.Kind == run.NodeMetric && ev.Node == "kept" {
			got[ev.MetricName] = ev.MetricValue
		}
	}
	return got
}

// evenRows checks that node reader wrote kept's rows: want even ids.
func evenRows(t *testing.T, dir string, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows := ints(ctx, t, nil, "SELECT count(*), sum(id % 2) FROM parquet.`"+filepath.Join(dir, "out", "o", "t", "reader")+"`")
	if rows[0] != want || rows[1] != 0 {
		t.Errorf("reader wrote %d rows, %d of them odd; want kept's %d even ids", rows[0], rows[1], want)
	}
}

// When up fails after its result was made (a write refused), down's early
// call is discarded: down does not run and reports nothing.
func TestEarlyCall_IsDiscardedWhenTheUpstreamFails(t *testing.T) {
	dir := earlyProject(t, "")
	// up's second output exists, and write_mode error refuses to replace it.
	writeFiles(t, dir, map[string]string{
		"output.yaml":             "o.t.big: {format: parquet}\no.t.up: {format: parquet, write_mode: error}\no.t.down: {format: parquet}\n",
		"out/o/t/up/_placeholder": "",
	})
	r, events, calls := runEarly(t, dir)
	if r.State != run.Failed {
		t.Fatalf("run %s, want FAILED (up's write refused)", r.State)
	}
	t.Logf("down's function was called early %d times", len(calls))
	if _, ran := nodeState(events, "down", run.NodeRunning); ran {
		t.Error("down ran after up failed")
	}
	for _, ev := range events {
		if ev.Node == "down" && (ev.Kind == run.NodeMessage || ev.Kind == run.NodeMetric) {
			t.Errorf("down reported %s %q %s after up failed", ev.Kind, ev.Message, ev.MetricName)
		}
	}
}

// A cached result is released by its last reader before that reader ends,
// so its dependents never plan a write while the release is under way:
// check's function, called once mid succeeded, finds relsrc no longer
// cached. (A release in the background usually ended before a worker
// called the function too, so this holds the order rather than telling
// the two apart; the peer benchmark's score node does, see README.)
func TestRelease_ACachedResultIsReleasedBeforeItsLastReaderEnds(t *testing.T) {
	dir := earlyProject(t, "early_function_calls: false\n")
	writeFiles(t, dir, map[string]string{
		"pipelines.yaml": "p: {nodes: [relsrc, mid, check]}\n",
		"nodes.yaml": `relsrc: {sql: "SELECT id FROM range(1000)", output: [o.t.src]}
mid: {sql: "SELECT id FROM relsrc WHERE id % 2 = 0", dependencies: [relsrc], output: [o.t.mid]}
check: {function: earlynodes.check, input: [o.t.mid], output: [o.t.check]}
`,
		"earlynodes.py": `def check(df, *, start_date, end_date):
    spark = df.sparkSession
    views = [r.viewName for r in spark.sql("SHOW VIEWS IN global_temp").collect()]
    mine = [v for v in views if v.endswith("_relsrc")]
    if not mine:
        raise ValueError("no view of relsrc's result")
    cached = [v for v in mine if spark.catalog.isCached("global_temp." + v)]
    if cached:
        raise ValueError("still cached after its last reader ended: " + ", ".join(cached))
    return df
`,
		"output.yaml": "o.t.src: {format: parquet}\no.t.mid: {format: parquet}\no.t.check: {format: parquet}\n",
	})
	r, events, _ := runEarly(t, dir)
	if r.State != run.Succeeded {
		for _, ev := range events {
			if ev.Error != nil {
				t.Logf("%s: %s", ev.Node, ev.Error.Message)
			}
		}
		t.Fatalf("run %s: %s", r.State, r.Message)
	}
}

// The run's last node to succeed does not release the cache it read: no
// node is left to need the memory, and the session's close, after the run
// is recorded, drops the result views and their caches. last's function
// finds heldsrc's result cached; once the run has ended, nothing of it is
// left in the server's storage (named by its plan, with the marker column),
// whether heldsrc is a SQL node or a Python one (whose cache a plan handed
// back by its worker could have made apart from its view, out of reach of
// the close's DROP VIEW).
func TestRelease_NothingOfARunStaysCachedAfterItEnds(t *testing.T) {
	remote, ui := sparktest.ServerWithUI(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	for _, kind := range []string{"sql", "python"} {
		t.Run(kind, func(t *testing.T) {
			marker := fmt.Sprintf("release_marker_%d", time.Now().UnixNano())
			query := "SELECT id, id * 3 AS " + marker + " FROM range(5000)"
			held := `heldsrc: {sql: "` + query + `", output: [o.t.src]}`
			if kind == "python" {
				held = `heldsrc: {function: earlynodes.held, input: [raw], output: [o.t.src]}`
			}
			dir := earlyProject(t, "early_function_calls: false\n")
			writeFiles(t, dir, map[string]string{
				"pipelines.yaml": "p: {nodes: [heldsrc, last]}\n",
				"nodes.yaml": held + `
last: {function: earlynodes.last, input: [o.t.src], output: [o.t.last]}
`,
				"earlynodes.py": `def held(df, *, start_date, end_date):
    return df.where("id >= 0")

def last(df, *, start_date, end_date):
    spark = df.sparkSession
    views = [r.viewName for r in spark.sql("SHOW VIEWS IN global_temp").collect()]
    cached = [v for v in views if v.endswith("_heldsrc") and spark.catalog.isCached("global_temp." + v)]
    if not cached:
        raise ValueError("heldsrc's result is not cached")
    return df.where("id % 2 = 0")
`,
				"input.yaml":  "raw: {format: query, query: \"" + query + "\"}\n",
				"output.yaml": "o.t.src: {format: parquet}\no.t.last: {format: parquet}\n",
			})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			eng, _ := pythonEngine(ctx, t, python, dir, remote, slog.New(slog.DiscardHandler))
			r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
			if err != nil {
				t.Fatal(err)
			}
			if done := waitRun(ctx, t, eng, r.ID); done.State != run.Succeeded {
				t.Fatalf("run %s: %s", done.State, done.Message)
			}
			// The close comes after the run is recorded, and the blocks go
			// after the close: give both a while.
			var left []string
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				left = slices.DeleteFunc(sparktest.CachedRDDs(t, ui), func(name string) bool { return !strings.Contains(name, marker) })
				if len(left) == 0 {
					return
				}
			}
			t.Errorf("30 s after the run ended, the server still caches %q", left)
		})
	}
}
