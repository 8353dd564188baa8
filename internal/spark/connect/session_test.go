package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/spark-connect-go/spark/sql/utils"

	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

var window = map[string]any{"start_date": "2024-01-02", "end_date": "2024-01-04"}

func TestRunSQL_CSVInputWithDateParametersToParquetReadBackRowByRow(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if err := s.RegisterInput(ctx, salesInput(t), nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "daily")
	res, err := s.RunSQL(ctx, NodeSpec{
		Name: "daily",
		SQL: `SELECT CAST(order_date AS STRING) AS day, sum(quantity * unit_price) AS revenue, count(*) AS orders
		      FROM sales WHERE order_date BETWEEN :start_date AND :end_date GROUP BY order_date`,
		Inputs:   []string{"sales"},
		Outputs:  []OutputSpec{{Key: "daily_revenue", Format: "parquet", Path: out}},
		Describe: true,
	}, window)
	if err != nil {
		t.Fatal(err)
	}
	if res.View != "global_temp.`tauro_"+t.Name()+"_daily`" {
		t.Errorf("View = %s", res.View)
	}
	wantSchema := []Field{{"day", "String", true}, {"revenue", "Double", true}, {"orders", "Long", false}}
	if !reflect.DeepEqual(res.Schema, wantSchema) {
		t.Errorf("Schema = %v, want %v", res.Schema, wantSchema)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Rows != 3 || res.Outputs[0].Warning != "" {
		t.Errorf("Outputs = %+v, want 3 rows and no warning", res.Outputs)
	}
	got := rows(t, s, "SELECT day, revenue, orders FROM parquet.`"+out+"` ORDER BY day")
	want := [][]any{{"2024-01-02", 11.5, int64(2)}, {"2024-01-03", 4.5, int64(2)}, {"2024-01-04", 4.0, int64(1)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parquet output = %v, want %v", got, want)
	}
}

func TestRunSQL_ParametersAreBoundNotPasted(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if err := s.RegisterInput(ctx, salesInput(t), nil); err != nil {
		t.Fatal(err)
	}
	evil := "north' OR '1'='1"
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "by_region", SQL: "SELECT order_id FROM sales WHERE region = :region"},
		map[string]any{"region": evil}); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, s, "SELECT count(*) FROM by_region"); got[0][0] != int64(0) {
		t.Errorf("a quote in a parameter matched %v rows; it was pasted into the SQL", got[0][0])
	}
	date := time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "typed", SQL: "SELECT :d AS d, :n AS n, :f AS f, :b AS b, :ts AS ts"},
		map[string]any{"d": date, "n": int64(7), "f": 1.5, "b": true, "ts": date.Add(90 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	schema, err := s.Schema(ctx, "typed")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, f := range schema {
		types = append(types, f.Type)
	}
	if want := []string{"Date", "Long", "Double", "Boolean", "Timestamp"}; !slices.Equal(types, want) {
		t.Errorf("parameter types = %v, want %v", types, want)
	}
}

func TestRunSQL_ChainedNodesReadEachOthersResultsByOutputKeyAndAcrossSessions(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if err := s.RegisterInput(ctx, salesInput(t), nil); err != nil {
		t.Fatal(err)
	}
	first, err := s.RunSQL(ctx, NodeSpec{
		Name:    "clean",
		SQL:     "SELECT region, quantity * unit_price AS amount FROM sales WHERE order_date BETWEEN :start_date AND :end_date",
		Outputs: []OutputSpec{{Key: "silver.sales.clean", Format: "parquet", Path: filepath.Join(t.TempDir(), "clean")}},
	}, window)
	if err != nil {
		t.Fatal(err)
	}
	// A result several dependents read is cached while they run.
	if err := s.Cache(ctx, first.View); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Uncache(ctx, first.View); err != nil {
			t.Error(err)
		}
	}()
	out := filepath.Join(t.TempDir(), "by_region")
	if _, err := s.RunSQL(ctx, NodeSpec{
		Name:    "by_region",
		SQL:     "SELECT region, sum(amount) AS total FROM `silver.sales.clean` GROUP BY region",
		Inputs:  []string{"silver.sales.clean"},
		Outputs: []OutputSpec{{Key: "gold.sales.by_region", Format: "parquet", Path: out}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	got := rows(t, s, "SELECT region, total FROM parquet.`"+out+"` ORDER BY region")
	want := [][]any{{"east", 11.5}, {"north", 7.0}, {"south", 1.5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("by_region = %v, want %v", got, want)
	}
	// Under the node's name too.
	if got := rows(t, s, "SELECT count(*) FROM clean"); got[0][0] != int64(5) {
		t.Errorf("clean has %v rows, want 5", got[0][0])
	}

	// Another session of the server, as a Python worker's, reads the global
	// view, and its own result comes back through an alias.
	other := connect(t, nil)
	if got := rows(t, other, "SELECT count(*) FROM "+first.View); got[0][0] != int64(5) {
		t.Errorf("the other session sees %v rows of %s, want 5", got[0][0], first.View)
	}
	if _, err := other.spark.Sql(ctx, "CREATE OR REPLACE GLOBAL TEMPORARY VIEW py_"+sanitize(t.Name())+" AS SELECT 42 AS answer"); err != nil {
		t.Fatal(err)
	}
	if err := s.Alias(ctx, "py_result", "global_temp.py_"+sanitize(t.Name())); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, s, "SELECT answer FROM py_result"); got[0][0] != int32(42) {
		t.Errorf("alias of the other session's view = %v", got)
	}
}

func TestClose_DropsTheRunsGlobalViews(t *testing.T) {
	ctx := context.Background()
	s, err := Connect(ctx, connect(t, nil).remoteURL(t), Config{RunID: "close_test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunSQL(ctx, NodeSpec{Name: "n", SQL: "SELECT 1 AS x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "n", SQL: "SELECT 1"}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("RunSQL after Close = %v, want ErrClosed", err)
	}
	other := connect(t, nil)
	_, err = other.Schema(ctx, res.View)
	var se *Error
	if !errors.As(err, &se) || se.Class != "TABLE_OR_VIEW_NOT_FOUND" {
		t.Errorf("%s after Close: %v, want TABLE_OR_VIEW_NOT_FOUND", res.View, err)
	}
}

func TestUncache_ReleasesTheViewsCacheAndNothingForAViewGone(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	res, err := s.RunSQL(ctx, NodeSpec{Name: "kept", SQL: "SELECT id FROM range(100)"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	level := func() utils.StorageLevel {
		t.Helper()
		df, err := s.spark.Table(res.View)
		if err != nil {
			t.Fatal(err)
		}
		l, err := df.GetStorageLevel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return *l
	}
	if err := s.Cache(ctx, res.View); err != nil {
		t.Fatal(err)
	}
	// Spark's MEMORY_AND_DISK, as CACHE TABLE and Dataset.cache use: the
	// batches kept as objects, not serialized.
	if got := level(); got != utils.StorageLevelMemoyAndDiskDeser {
		t.Fatalf("storage level after Cache = %v, want memory and disk, deserialized (%v)", got, utils.StorageLevelMemoyAndDiskDeser)
	}
	if err := s.Uncache(ctx, res.View); err != nil {
		t.Fatal(err)
	}
	if got := level(); got != utils.StorageLevelNone {
		t.Errorf("storage level after Uncache = %v, want none", got)
	}
	if err := s.Uncache(ctx, "global_temp.no_such_view"); err != nil {
		t.Errorf("Uncache of a view that does not exist: %v, want nil", err)
	}
}

func TestWriteOutput_EveryFormatRoundTripsThroughInputs(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if err := s.RegisterInput(ctx, salesInput(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "src", SQL: "SELECT order_id, region, quantity FROM sales"}, nil); err != nil {
		t.Fatal(err)
	}
	want := rows(t, s, "SELECT order_id, region, quantity FROM src ORDER BY order_id")
	for _, format := range []string{"parquet", "csv", "json", "orc", "delta", "avro"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), format)
			out := OutputSpec{Key: "out_" + format, Format: format, Path: path}
			in := InputSpec{Key: "in_" + format, Format: format, Path: path}
			if format == "csv" {
				out.Options = map[string]string{"header": "true"}
				in.Options = map[string]string{"header": "true"}
				in.Schema = "order_id INT, region STRING, quantity INT"
			}
			r, err := s.WriteOutput(ctx, s.ResultView("src"), out, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.Rows != 8 {
				t.Errorf("Rows = %d, want 8", r.Rows)
			}
			if err := s.RegisterInput(ctx, in, nil); err != nil {
				t.Fatal(err)
			}
			got := rows(t, s, fmt.Sprintf("SELECT CAST(order_id AS INT), region, CAST(quantity AS INT) FROM in_%s ORDER BY 1", format))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back %v, want %v", got, want)
			}
		})
	}
}

func TestRegisterInput_TablesQueriesGlobsAndFilters(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	for _, day := range []string{"2024-01-01", "2024-01-02"} {
		if _, err := s.RunSQL(ctx, NodeSpec{Name: "d", SQL: "SELECT :day AS day, 1 AS n",
			Outputs: []OutputSpec{{Key: "d", Format: "json", Path: filepath.Join(dir, "day="+day)}}},
			map[string]any{"day": day}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		in     InputSpec
		params map[string]any
		want   int64
	}{
		{InputSpec{Key: "glob", Format: "json", Path: filepath.Join(dir, "day=*", "*.json")}, nil, 2},
		{InputSpec{Key: "filtered", Format: "json", Path: dir, Filter: "day = '2024-01-02'"}, nil, 1},
		{InputSpec{Key: "q", Format: "query", Query: "SELECT * FROM glob WHERE day >= :start_date"}, map[string]any{"start_date": "2024-01-02"}, 1},
		{InputSpec{Key: "tbl", Format: "table", Table: "glob"}, nil, 2},
	}
	for _, c := range cases {
		if err := s.RegisterInput(ctx, c.in, c.params); err != nil {
			t.Fatalf("%s: %v", c.in.Key, err)
		}
		if got := rows(t, s, "SELECT count(*) FROM "+c.in.Key); got[0][0] != c.want {
			t.Errorf("%s has %v rows, want %d", c.in.Key, got[0][0], c.want)
		}
	}
	err := s.RegisterInput(ctx, InputSpec{Key: "missing", Format: "parquet", Path: filepath.Join(dir, "nope")}, nil)
	assertPermanent(t, err, "PATH_NOT_FOUND")
}

func TestWriteOutput_WriteModesBehaveAsSparkDocuments(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "three", SQL: "SELECT id FROM range(3)"}, nil); err != nil {
		t.Fatal(err)
	}
	view := s.ResultView("three")
	path := filepath.Join(t.TempDir(), "out")
	count := func() int64 { return rows(t, s, "SELECT count(*) FROM parquet.`"+path+"`")[0][0].(int64) }
	write := func(mode string) (*OutputResult, error) {
		return s.WriteOutput(ctx, view, OutputSpec{Key: "o", Format: "parquet", Path: path, WriteMode: mode}, "")
	}
	steps := []struct {
		mode string
		want int64
	}{{"error", 3}, {"append", 6}, {"ignore", 6}, {"overwrite", 3}, {"", 3}}
	for _, step := range steps {
		if _, err := write(step.mode); err != nil {
			t.Fatalf("mode %q: %v", step.mode, err)
		}
		if got := count(); got != step.want {
			t.Errorf("after mode %q: %d rows, want %d", step.mode, got, step.want)
		}
	}
	_, err := write("error")
	assertPermanent(t, err, "PATH_ALREADY_EXISTS")
	_, err = write("upsert")
	assertPermanent(t, err, "")
}

func TestWriteOutput_PartitionColumnsAndOptions(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if err := s.RegisterInput(ctx, salesInput(t), nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "by_region")
	if _, err := s.RunSQL(ctx, NodeSpec{Name: "p", SQL: "SELECT * FROM sales", Outputs: []OutputSpec{{
		Key: "p", Format: "csv", Path: path, PartitionBy: []string{"region"},
		Options: map[string]string{"header": "true", "compression": "gzip"},
	}}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, region := range []string{"east", "north", "south"} {
		files, _ := filepath.Glob(filepath.Join(path, "region="+region, "*.csv.gz"))
		if len(files) == 0 {
			entries, _ := os.ReadDir(path)
			t.Errorf("no gzip csv under region=%s; %s holds %v", region, path, entries)
		}
	}
	if err := s.RegisterInput(ctx, InputSpec{Key: "back", Format: "csv", Path: path, Options: map[string]string{"header": "true"}}, nil); err != nil {
		t.Fatal(err)
	}
	got := rows(t, s, "SELECT region, count(*) FROM back GROUP BY region ORDER BY region")
	want := [][]any{{"east", int64(2)}, {"north", int64(3)}, {"south", int64(3)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back by partition = %v, want %v", got, want)
	}
}

func TestWriteOutput_ZeroRowsIsAWarning(t *testing.T) {
	s := connect(t, nil)
	res, err := s.RunSQL(context.Background(), NodeSpec{Name: "none", SQL: "SELECT id FROM range(10) WHERE id < 0",
		Outputs: []OutputSpec{{Key: "none", Format: "parquet", Path: filepath.Join(t.TempDir(), "none")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs[0].Rows != 0 || !strings.Contains(res.Outputs[0].Warning, "no rows") {
		t.Errorf("Outputs = %+v, want 0 rows and a warning", res.Outputs)
	}
	if w := res.Warnings(); len(w) != 1 {
		t.Errorf("Warnings() = %v", w)
	}
}

func TestRunSQL_ErrorsInTheQueryArePermanentWithSparksMessage(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	if err := s.RegisterInput(ctx, salesInput(t), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, sql, class, inMessage string
		inputs                      []string
	}{
		{"unresolved column", "SELECT revenue FROM sales", "UNRESOLVED_COLUMN.WITH_SUGGESTION", "`revenue` cannot be resolved", nil},
		{"missing table", "SELECT * FROM nowhere", "TABLE_OR_VIEW_NOT_FOUND", "`nowhere` cannot be found", nil},
		{"syntax", "SELEC 1", "PARSE_SYNTAX_ERROR", "Syntax error at or near 'SELEC'", nil},
		{"unbound parameter", "SELECT * FROM sales WHERE order_date > :since", "UNBOUND_SQL_PARAMETER", "since", nil},
		{"no columns", "SELECT * EXCEPT (x) FROM VALUES (1) AS t(x)", "", "no columns", nil},
		{"unregistered input", "SELECT * FROM elsewhere", "", `input "elsewhere" is not registered`, []string{"elsewhere"}},
		{"empty sql", "  ", "", "no sql", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.RunSQL(ctx, NodeSpec{Name: "bad", SQL: c.sql, Inputs: c.inputs, Describe: true}, nil)
			se := assertPermanent(t, err, c.class)
			if se != nil && !strings.Contains(se.Error(), c.inMessage) {
				t.Errorf("message %q lacks %q", se.Error(), c.inMessage)
			}
			if se != nil && strings.Contains(se.Message, "CreateViewCommand") {
				t.Errorf("message shows the runner's plan: %q", se.Message)
			}
		})
	}
}

func TestConnect_UnreachableServerIsRetryable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Connect(ctx, "sc://127.0.0.1:1", Config{})
	var se *Error
	if !errors.As(err, &se) || !se.Retryable() || retry.Classify(err) != retry.ClassTransient {
		t.Fatalf("Connect to a closed port = %#v, want a retryable *Error", err)
	}
	t.Log(err)
}

func TestConnect_SetsSessionConfAndSkipsClusterSettings(t *testing.T) {
	s := connect(t, map[string]string{"spark.sql.shuffle.partitions": "3", "spark.executor.memory": "2g"})
	got, err := s.spark.Config().Get(context.Background(), "spark.sql.shuffle.partitions")
	if err != nil || got != "3" {
		t.Errorf("spark.sql.shuffle.partitions = %q, %v; want 3", got, err)
	}
	if !slices.Equal(s.Skipped(), []string{"spark.executor.memory"}) {
		t.Errorf("Skipped() = %v, want [spark.executor.memory]", s.Skipped())
	}
}

// TestConnect_OpensTheSessionWithItsSettingsInOneRequest: opening a session
// is one Config request whatever the number of settings, and the session it
// opens is the one every later request (spark-connect-go's too) runs in.
func TestConnect_OpensTheSessionWithItsSettingsInOneRequest(t *testing.T) {
	remote := sparktest.Remote(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cctx, calls := CountCalls(ctx)
	conf := map[string]string{"spark.sql.shuffle.partitions": "3", "spark.sql.ansi.enabled": "false", "spark.sql.session.timeZone": "Asia/Tokyo"}
	s, err := Connect(cctx, remote, Config{RunID: "oneconfig", Conf: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if got := calls.Counts(); len(got) != 1 || got["Config"] != 1 {
		t.Errorf("opening a session with %d settings made requests %v, want one Config", len(conf), got)
	}
	for k, want := range conf {
		if got, err := s.spark.Config().Get(ctx, k); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", k, got, err, want)
		}
	}
	if err := s.RegisterInput(ctx, InputSpec{Key: "tz", Format: "query", Query: "SELECT current_timezone() AS tz"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, s, "SELECT tz FROM tz"); len(got) != 1 || got[0][0] != "Asia/Tokyo" {
		t.Errorf("the session's time zone read through its view = %v, want Asia/Tokyo", got)
	}
}

func assertPermanent(t *testing.T, err error, class string) *Error {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Errorf("error = %#v, want *Error", err)
		return nil
	}
	if se.Retryable() || retry.Classify(err) != retry.ClassPermanent {
		t.Errorf("%v is retryable, want permanent", err)
	}
	if class != "" && se.Class != class {
		t.Errorf("Class = %q, want %q (%v)", se.Class, class, err)
	}
	return se
}

func (s *Session) remoteURL(t *testing.T) string {
	t.Helper()
	return s.remote.url
}

func TestRunSQL_ASecondAttemptReplacesTheFirst(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "n")
	node := NodeSpec{Name: "n", SQL: "SELECT id FROM range(:n)", Outputs: []OutputSpec{{Key: "n_out", Format: "parquet", Path: path}}}
	for _, n := range []int64{2, 5} {
		if _, err := s.RunSQL(ctx, node, map[string]any{"n": n}); err != nil {
			t.Fatalf("attempt with n=%d: %v", n, err)
		}
	}
	for _, q := range []string{"SELECT count(*) FROM n", "SELECT count(*) FROM n_out", "SELECT count(*) FROM parquet.`" + path + "`"} {
		if got := rows(t, s, q); got[0][0] != int64(5) {
			t.Errorf("%s = %v, want 5 (the second attempt's)", q, got[0][0])
		}
	}
}
