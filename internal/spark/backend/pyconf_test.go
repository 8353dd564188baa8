package backend_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// A Python node's function sees its run's spark_config in its own session,
// as in tauro, and plans under it: a date cast in its result is read in the
// run's time zone. The next run, of a pipeline without that spark_config,
// finds the keys unset on the same worker.
func TestPython_TheFunctionSeesItsRunsSparkConfigAndTheNextRunDoesNot(t *testing.T) {
	remote := sparktest.Remote(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nmax_retries: 0\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nallowed_module_prefixes: [confnodes]\n",
		"pipelines.yaml": `zoned: {nodes: [zoned], spark_config: {spark.sql.session.timeZone: Asia/Kolkata, tauro.test.marker: set}}
plain: {nodes: [plain]}
`,
		"nodes.yaml": `zoned: {function: confnodes.zoned, output: [o.t.zoned]}
plain: {function: confnodes.plain, output: [o.t.plain]}
`,
		"confnodes.py": `from pyspark.sql import functions as F

def _seen(spark, marker, zoned):
    got = (spark.conf.get("tauro.test.marker", "unset"), spark.conf.get("spark.sql.session.timeZone"))
    if got[0] != marker or (got[1] == "Asia/Kolkata") != zoned:
        raise ValueError("the function saw tauro.test.marker=%s, spark.sql.session.timeZone=%s" % got)
    # The hour the epoch's start reads as, in the zone the plan is made in.
    return spark.range(1).select(F.hour(F.lit(0).cast("timestamp")).alias("hour"))

def zoned(*, start_date, end_date, ml_context):
    return _seen(ml_context["spark"], "set", True)

def plain(*, start_date, end_date, ml_context):
    return _seen(ml_context["spark"], "unset", False)
`,
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.zoned: {format: parquet}\no.t.plain: {format: parquet}\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, _ := pythonEngine(ctx, t, python, dir, remote, slog.New(slog.DiscardHandler))
	for _, p := range []string{"zoned", "plain"} {
		r, err := eng.Execute(ctx, "", run.Params{Pipeline: p}, false)
		if err != nil {
			t.Fatal(err)
		}
		done := waitRun(ctx, t, eng, r.ID)
		if done.State != run.Succeeded {
			t.Fatalf("pipeline %s: run %s: %s", p, done.State, done.Message)
		}
	}
	// Kolkata is UTC+5:30: the cast made in the run's session reads the
	// epoch as 5:30 there, where the server's zone (UTC here) reads 0:00.
	if got := ints(ctx, t, nil, "SELECT CAST(max(hour) AS BIGINT), count(*) FROM parquet.`"+dir+"/out/o/t/zoned`"); got[0] != 5 || got[1] != 1 {
		t.Errorf("zoned wrote hour %d (%d rows), want 5 (one row)", got[0], got[1])
	}
}
