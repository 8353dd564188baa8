package connect

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
)

// janFeb is a few rows of January and February 2024; a row's id is its day
// of the year.
const janFeb = `SELECT * FROM VALUES
	(15, DATE'2024-01-15', TIMESTAMP'2024-01-15 08:00:00', 1.0D),
	(31, DATE'2024-01-31', TIMESTAMP'2024-01-31 23:59:59', 2.0D),
	(32, DATE'2024-02-01', TIMESTAMP'2024-02-01 00:00:00', 3.0D),
	(60, DATE'2024-02-29', TIMESTAMP'2024-02-29 23:30:00', 4.0D)
	AS t(id, day, at, amount)`

// febRerun is a rerun of February: one day's amount corrected, one day
// dropped, one added.
const febRerun = `SELECT * FROM VALUES
	(32, DATE'2024-02-01', TIMESTAMP'2024-02-01 00:00:00', 30.0D),
	(41, DATE'2024-02-10', TIMESTAMP'2024-02-10 12:00:00', 50.0D)
	AS t(id, day, at, amount)`

func TestWriteOutput_DeltaReplaceWhereRewritesOnlyTheRunsWindow(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	want := [][]any{
		{int32(15), "2024-01-15", 1.0}, // January as first written
		{int32(31), "2024-01-31", 2.0},
		{int32(32), "2024-02-01", 30.0}, // February as rerun
		{int32(41), "2024-02-10", 50.0},
	}
	cases := []struct {
		name  string
		out   OutputSpec
		where string // as planning builds it from the run's window
	}{
		// The window on the table's only partition column, as tauro's
		// partition_col does it.
		{"partitioned by the date column", OutputSpec{PartitionBy: []string{"day"}},
			"`day` >= '2024-02-01' AND `day` < '2024-03-01'"},
		// A timestamp column: the whole of the end date is in the window,
		// so 2024-02-29 23:30 is replaced too.
		{"timestamp column", OutputSpec{}, "`at` >= '2024-02-01' AND `at` < '2024-03-01'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sales")
			out := c.out
			out.Key, out.Format, out.Path = "gold.sales.daily", "delta", path
			if _, err := s.RunSQL(ctx, NodeSpec{Name: "first", SQL: janFeb, Outputs: []OutputSpec{out}}, nil); err != nil {
				t.Fatal(err)
			}
			out.ReplaceWhere = c.where
			res, err := s.RunSQL(ctx, NodeSpec{Name: "rerun", SQL: febRerun, Outputs: []OutputSpec{out}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outputs[0].Rows != 2 {
				t.Errorf("Rows = %d, want 2", res.Outputs[0].Rows)
			}
			if err := s.RegisterInput(ctx, InputSpec{Key: "back", Format: "delta", Path: path}, nil); err != nil {
				t.Fatal(err)
			}
			got := rows(t, s, "SELECT id, CAST(day AS STRING), amount FROM back ORDER BY id")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("table after the February rerun =\n%v\nwant\n%v", got, want)
			}
			// Delta kept both versions: the first write is still readable.
			if err := s.RegisterInput(ctx, InputSpec{Key: "v0", Format: "delta", Path: path, Options: map[string]string{"versionAsOf": "0"}}, nil); err != nil {
				t.Fatal(err)
			}
			if got := rows(t, s, "SELECT count(*), sum(amount) FROM v0"); !reflect.DeepEqual(got, [][]any{{int64(4), 10.0}}) {
				t.Errorf("version 0 = %v, want the 4 rows first written", got)
			}
		})
	}
}

func TestWriteOutput_DeltaReplaceWhereRefusesRowsOutsideTheWindow(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sales")
	out := OutputSpec{Key: "daily", Format: "delta", Path: path, PartitionBy: []string{"day"}}
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "first", SQL: janFeb, Outputs: []OutputSpec{out}}, nil); err != nil {
		t.Fatal(err)
	}
	// A January row in a February rerun: Delta refuses the whole write.
	out.ReplaceWhere = "`day` >= '2024-02-01' AND `day` < '2024-03-01'"
	_, err := s.RunSQL(ctx, NodeSpec{Name: "stray", SQL: janFeb, Outputs: []OutputSpec{out}}, nil)
	se := assertPermanent(t, err, "")
	if se != nil {
		t.Logf("Spark said: %s (class %s)", se.Message, se.Class)
	}
	if err := s.RegisterInput(ctx, InputSpec{Key: "back", Format: "delta", Path: path}, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, s, "SELECT count(*), sum(amount) FROM back"); !reflect.DeepEqual(got, [][]any{{int64(4), 10.0}}) {
		t.Errorf("table after the refused write = %v, want the 4 rows first written", got)
	}
}

// Delta Lake's SQL parser drops the parameters Spark 4.2's parser would
// bind (delta-io/delta#7640); every session binds them in the analyzer.
func TestConnect_BindsParametersInTheAnalyzerSoDeltasParserCannotDropThem(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	got, err := s.spark.Config().Get(ctx, "spark.sql.legacy.parameterSubstitution.constantsOnly")
	if err != nil || got != "true" {
		t.Errorf("spark.sql.legacy.parameterSubstitution.constantsOnly = %q, %v; want true", got, err)
	}
	path := filepath.Join(t.TempDir(), "t")
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "w", SQL: janFeb, Outputs: []OutputSpec{{Key: "w", Format: "delta", Path: path}}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterInput(ctx, InputSpec{Key: "t", Format: "delta", Path: path}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "feb", SQL: "SELECT id FROM t WHERE day BETWEEN :start_date AND :end_date", Inputs: []string{"t"}},
		map[string]any{"start_date": "2024-02-01", "end_date": "2024-02-29"}); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, s, "SELECT id FROM feb ORDER BY id"); !reflect.DeepEqual(got, [][]any{{int32(32)}, {int32(60)}}) {
		t.Errorf("February = %v, want ids 32 and 60", got)
	}
}

func TestOutputSpecResolve_ReplaceWhereBecomesTheDeltaOption(t *testing.T) {
	out := OutputSpec{Key: "gold.sales.daily", Format: "delta", Path: "/data/daily", ReplaceWhere: "`day` >= '2024-02-01'",
		Options: map[string]string{"mergeSchema": "true"}}
	mode, opts, err := resolveOutput(out)
	want := map[string]string{"mergeSchema": "true", "replaceWhere": "`day` >= '2024-02-01'"}
	if err != nil || mode != "SAVE_MODE_OVERWRITE" || !maps.Equal(opts, want) {
		t.Errorf("resolve = %s, %v, %v; want an overwrite with %v", mode, opts, err, want)
	}
	if _, ok := out.Options["replaceWhere"]; ok {
		t.Error("resolve changed the spec's own options")
	}
	for _, bad := range []OutputSpec{
		{Key: "k", Format: "parquet", Path: "/p", ReplaceWhere: "x > 1"},
		{Key: "k", Format: "delta", Path: "/p", WriteMode: "append", ReplaceWhere: "x > 1"},
		{Key: "k", Format: "delta", Path: "/p", WriteMode: "upsert"},
		{Key: "k", Format: "delta"},
	} {
		_, _, err := resolveOutput(bad)
		var se *Error
		if !errors.As(err, &se) || se.Retryable() || retry.Classify(err) != retry.ClassPermanent {
			t.Errorf("resolve(%+v) = %v, want a permanent *Error", bad, err)
		}
	}
}

func TestOutputSpecResolve_PlainOutputsKeepTheirOptions(t *testing.T) {
	out := OutputSpec{Key: "o", Format: "delta", Path: "/p", Options: map[string]string{"replaceWhere": "day = '2024-01-01'", "mergeSchema": "true"}}
	mode, opts, err := resolveOutput(out)
	if err != nil || mode != "SAVE_MODE_OVERWRITE" || !maps.Equal(opts, out.Options) {
		t.Errorf("resolve = %s, %v, %v; want overwrite with the options as given", mode, opts, err)
	}
}

func TestOutputSpecResolve_KafkaAppendsToItsTopicWithoutAPath(t *testing.T) {
	opts := map[string]string{"kafka.bootstrap.servers": "127.0.0.1:9092", "topic": "events"}
	mode, got, err := resolveOutput(OutputSpec{Key: "k", Format: "kafka", WriteMode: "append", Options: opts})
	if err != nil || mode != "SAVE_MODE_APPEND" || !maps.Equal(got, opts) {
		t.Errorf("resolve = %s, %v, %v; want an append with the options as given", mode, got, err)
	}
	for _, bad := range []OutputSpec{
		{Key: "k", Format: "kafka", WriteMode: "overwrite", Options: opts},
		{Key: "k", Format: "kafka", WriteMode: "append", Path: "/p", Options: opts},
		{Key: "k", Format: "kafka", WriteMode: "append", Options: map[string]string{"kafka.bootstrap.servers": "b:1"}},
	} {
		if _, _, err := resolveOutput(bad); retry.Classify(err) != retry.ClassPermanent {
			t.Errorf("resolve(%+v) = %v, want a permanent error", bad, err)
		}
	}
}
