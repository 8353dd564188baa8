package plan

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWindowPredicate_CoversWholeDaysFromCheckedParts(t *testing.T) {
	cases := []struct {
		column, start, end, want string
	}{
		{"day", "2024-02-01", "2024-02-29", "`day` >= '2024-02-01' AND `day` < '2024-03-01'"},
		{"event_date", "2024-12-31", "2024-12-31", "`event_date` >= '2024-12-31' AND `event_date` < '2025-01-01'"},
		{"fecha_día", "2023-02-28", "2023-02-28", "`fecha_día` >= '2023-02-28' AND `fecha_día` < '2023-03-01'"},
	}
	for _, c := range cases {
		got, err := WindowPredicate(c.column, day(c.start), day(c.end))
		if err != nil || got != c.want {
			t.Errorf("WindowPredicate(%q, %q, %q) = %q, %v; want %q", c.column, c.start, c.end, got, err, c.want)
		}
	}
}

func TestWindowPredicate_RejectsAnythingButAnIdentifierAndAWindow(t *testing.T) {
	jan1, jan31 := day("2024-01-01"), day("2024-01-31")
	cases := []struct {
		name, column string
		start, end   time.Time
		inMessage    string
	}{
		{"quote in the column", "day` OR 1=1 --", jan1, jan31, "not a plain column name"},
		{"expression as column", "to_date(ts)", jan1, jan31, "not a plain column name"},
		{"dotted column", "a.b", jan1, jan31, "not a plain column name"},
		{"empty column", "", jan1, jan31, "not a plain column name"},
		{"leading digit", "1day", jan1, jan31, "not a plain column name"},
		{"missing end", "day", jan1, time.Time{}, "needs the run's start_date and end_date"},
		{"reversed", "day", jan31, jan1, "before start_date"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := WindowPredicate(c.column, c.start, c.end)
			if err == nil || !strings.Contains(err.Error(), c.inMessage) {
				t.Errorf("WindowPredicate = %q, %v; want an error saying %q", got, err, c.inMessage)
			}
		})
	}
}

// specProject writes one node whose output config entry is out, reading a
// CSV input; base_path is /proj.
func specProject(t *testing.T, out string) *Pipeline {
	t.Helper()
	p := project(t, `
global_settings: {output_path: data/out, mode: local}
pipelines:
  p: {nodes: [load, daily]}
nodes:
  load: {sql: "SELECT * FROM raw", input: [raw], output: [silver.sales.clean]}
  daily: {sql: "SELECT * FROM clean", input: [silver.sales.clean], output: [gold/sales/daily]}
input:
  raw: {format: CSV, filepath: in/raw.csv, options: {header: true, sep: ";"}, schema: "id INT", partition_filter: "id > 0"}
output:
  silver.sales.clean: {format: parquet, options: {compression: snappy}}
  gold.sales.daily: `+out+`
`)
	p.BasePath = "/proj"
	pl, err := Resolve(p, Request{Pipeline: "p", StartDate: "2024-02-01", EndDate: "2024-02-29"})
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestResolve_NodesCarryTypedInputAndOutputSpecs(t *testing.T) {
	pl := specProject(t, `{format: delta, write_mode: Append, partition_by: [day, region]}`)
	load, daily := pl.Nodes[0], pl.Nodes[1]

	raw := load.InputSpecs[0]
	wantRaw := InputSpec{Key: "raw", Format: "csv", Path: filepath.Join("/proj", "in/raw.csv"),
		Options: map[string]string{"header": "true", "sep": ";"}, Schema: "id INT", Filter: "id > 0"}
	if raw.Producer != "" || raw.Read.Key != wantRaw.Key || raw.Read.Format != wantRaw.Format || raw.Read.Path != wantRaw.Path ||
		!maps.Equal(raw.Read.Options, wantRaw.Options) || raw.Read.Schema != wantRaw.Schema || raw.Read.Filter != wantRaw.Filter {
		t.Errorf("load's input = %+v; want %+v from the input config", raw, wantRaw)
	}

	clean := load.OutputSpecs[0]
	if clean.Key != "silver.sales.clean" || clean.Format != "parquet" || clean.WriteMode != "overwrite" ||
		clean.Path != filepath.Join("/proj", "data/out", "dev", "silver", "sales", "clean") || clean.Options["compression"] != "snappy" {
		t.Errorf("load's output = %+v", clean)
	}
	// An upstream result is read back from where its producer wrote it.
	in := daily.InputSpecs[0]
	if in.Producer != "load" || in.Read.Path != clean.Path || in.Read.Format != "parquet" || in.Read.Key != "silver.sales.clean" {
		t.Errorf("daily's input = %+v; want load's output read back", in)
	}
	// A slash-written key finds its dotted output entry; the mode is normalised.
	out := daily.OutputSpecs[0]
	if out.Key != "gold.sales.daily" || out.Format != "delta" || out.WriteMode != "append" ||
		!slices.Equal(out.PartitionBy, []string{"day", "region"}) || out.ReplaceWhere != "" {
		t.Errorf("daily's output = %+v", out)
	}
}

func TestResolve_ReplaceWhereIsBuiltOnceFromTheRunsWindow(t *testing.T) {
	cases := []struct {
		name, out, want string
	}{
		{"the only partition column", `{format: delta, overwrite_strategy: replaceWhere, partition_by: [day]}`,
			"`day` >= '2024-02-01' AND `day` < '2024-03-01'"},
		{"tauro's spelling in any case, partition_col", `{format: delta, overwrite_strategy: REPLACE_WHERE, partition_col: ts}`,
			"`ts` >= '2024-02-01' AND `ts` < '2024-03-01'"},
		{"a fixed predicate", `{format: delta, write_mode: overwrite, overwrite_strategy: replaceWhere, replace_predicate: "region = 'eu'"}`,
			"region = 'eu'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := specProject(t, c.out).Nodes[1].OutputSpecs[0].ReplaceWhere; got != c.want {
				t.Errorf("ReplaceWhere = %q, want %q", got, c.want)
			}
		})
	}
}

func TestResolve_ReplaceWhereMistakesNameTheOutputField(t *testing.T) {
	cases := []struct {
		name, out, field, inMessage string
	}{
		{"not delta", `{format: parquet, overwrite_strategy: replaceWhere, partition_col: day}`, "output.gold/sales/daily.format", "needs format delta"},
		{"append", `{format: delta, write_mode: append, overwrite_strategy: replaceWhere, partition_col: day}`, "output.gold/sales/daily.write_mode", "needs write_mode overwrite"},
		{"no column", `{format: delta, overwrite_strategy: replaceWhere, partition_by: [region, day]}`, "output.gold/sales/daily.partition_col", "needs partition_col"},
		{"bad column", `{format: delta, overwrite_strategy: replaceWhere, partition_col: "day; DROP TABLE x"}`, "output.gold/sales/daily.partition_col", "not a plain column name"},
		{"predicate twice", `{format: delta, overwrite_strategy: replaceWhere, partition_col: day, options: {replaceWhere: "x > 1"}}`, "output.gold/sales/daily.options.replaceWhere", "both set the predicate"},
		{"unknown strategy", `{format: delta, overwrite_strategy: merge}`, "output.gold/sales/daily.overwrite_strategy", "not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := project(t, `
pipelines:
  p: {nodes: [daily]}
nodes:
  daily: {sql: "SELECT 1 AS day", output: [gold/sales/daily]}
output:
  gold/sales/daily: `+c.out+`
`)
			_, err := Resolve(p, Request{Pipeline: "p", StartDate: "2024-02-01", EndDate: "2024-02-29"})
			probs := problems(t, err)
			found := false
			for _, pr := range probs {
				if pr.Field == c.field && strings.Contains(pr.Message, c.inMessage) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v; want one at %s saying %q", probs, c.field, c.inMessage)
			}
		})
	}
}

func TestResolve_RunValuesAreDecidedOnceWithTheirPrecedence(t *testing.T) {
	p := project(t, `
global_settings:
  start_date: "2024-01-01"
  end_date: "2024-01-31"
  max_parallel_nodes: 3
  circuit_breaker_threshold: 7
  default_hyperparams: {lr: 0.1, depth: 3, seed: 1}
  default_model_version: g1
  spark_config: {spark.sql.shuffle.partitions: 8, spark.a: x}
pipelines:
  p:
    nodes: [a]
    hyperparams: {depth: 5}
    model_version: p1
    spark_config: {spark.a: y}
nodes:
  a: {sql: "SELECT 1", hyperparams: {seed: 9}}
`)
	pl := mustResolve(t, p, Request{Pipeline: "p", Hyperparams: map[string]any{"lr": 0.5}})
	if pl.StartDate != day("2024-01-01") || pl.EndDate != day("2024-01-31") || pl.MaxWorkers != 3 || pl.BreakerThreshold != 7 {
		t.Errorf("dates %v..%v workers %d breaker %d; want the global defaults", pl.StartDate, pl.EndDate, pl.MaxWorkers, pl.BreakerThreshold)
	}
	if want := map[string]any{"lr": 0.5, "depth": int64(5), "seed": int64(1)}; !maps.Equal(pl.Hyperparams, want) {
		t.Errorf("run hyperparams %v; want %v (global < pipeline < request)", pl.Hyperparams, want)
	}
	if want := map[string]any{"lr": 0.5, "depth": int64(5), "seed": int64(9)}; !maps.Equal(pl.Nodes[0].Hyperparams, want) {
		t.Errorf("node hyperparams %v; want %v (the node's own win)", pl.Nodes[0].Hyperparams, want)
	}
	if pl.ModelVersion != "p1" {
		t.Errorf("model_version %q; want the pipeline's", pl.ModelVersion)
	}
	if want := map[string]string{"spark.sql.shuffle.partitions": "8", "spark.a": "y"}; !maps.Equal(pl.SparkConfig, want) {
		t.Errorf("spark_config %v; want %v", pl.SparkConfig, want)
	}
	if pl.Nodes[0].Config["sql"] != "SELECT 1" || pl.Config["model_version"] != "p1" {
		t.Errorf("plain configs %v / %v", pl.Nodes[0].Config, pl.Config)
	}
	if pl := mustResolve(t, p, Request{Pipeline: "p", ModelVersion: "r1"}); pl.ModelVersion != "r1" {
		t.Errorf("model_version %q; want the request's", pl.ModelVersion)
	}
}

func TestResolve_BadBreakerThresholdIsAProblem(t *testing.T) {
	p := project(t, `
global_settings: {circuit_breaker_threshold: 0}
pipelines: {p: {nodes: [a]}}
nodes: {a: {sql: "SELECT 1"}}
`)
	_, err := Resolve(p, dated("p"))
	probs := problems(t, err)
	if len(probs) != 1 || probs[0].Field != "global_settings.circuit_breaker_threshold" {
		t.Errorf("problems %v; want one naming global_settings.circuit_breaker_threshold", probs)
	}
}

// Python functions are called early unless the global settings say
// early_function_calls: false; anything but a boolean is a problem there.
func TestResolve_EarlyFunctionCallsIsOnUnlessTurnedOff(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    bool
	}{{"", true}, {"early_function_calls: true", true}, {"early_function_calls: false", false}} {
		p := project(t, "global_settings: {"+c.setting+"}\npipelines: {p: {nodes: [a]}}\nnodes: {a: {sql: \"SELECT 1\"}}\n")
		if pl := mustResolve(t, p, dated("p")); pl.Settings.EarlyCalls != c.want {
			t.Errorf("with {%s} EarlyCalls is %v, want %v", c.setting, pl.Settings.EarlyCalls, c.want)
		}
	}
	p := project(t, "global_settings: {early_function_calls: soon}\npipelines: {p: {nodes: [a]}}\nnodes: {a: {sql: \"SELECT 1\", early_call: later}}\n")
	_, err := Resolve(p, dated("p"))
	probs := problems(t, err)
	fields := []string{}
	for _, pr := range probs {
		if strings.Contains(pr.Message, "true") {
			fields = append(fields, pr.Field)
		}
	}
	if want := []string{"global_settings.early_function_calls", "nodes.a.early_call"}; !slices.Equal(fields, want) {
		t.Errorf("problems %v; want one at each of %v saying what it takes", probs, want)
	}
}

// A run's sources are read one at a time unless the global settings say
// parallel_source_reads: true; anything but a boolean is a problem there.
func TestResolve_SourceReadsAreOneAtATimeUnlessParallelIsAsked(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    bool
	}{{"", false}, {"parallel_source_reads: false", false}, {"parallel_source_reads: true", true}} {
		p := project(t, "global_settings: {"+c.setting+"}\npipelines: {p: {nodes: [a]}}\nnodes: {a: {sql: \"SELECT 1\"}}\n")
		if pl := mustResolve(t, p, dated("p")); pl.Settings.ParallelSourceReads != c.want {
			t.Errorf("with {%s} ParallelSourceReads is %v, want %v", c.setting, pl.Settings.ParallelSourceReads, c.want)
		}
	}
	p := project(t, "global_settings: {parallel_source_reads: maybe}\npipelines: {p: {nodes: [a]}}\nnodes: {a: {sql: \"SELECT 1\"}}\n")
	_, err := Resolve(p, dated("p"))
	probs := problems(t, err)
	if len(probs) != 1 || probs[0].Field != "global_settings.parallel_source_reads" || !strings.Contains(probs[0].Message, "true") {
		t.Errorf("problems %v; want one naming global_settings.parallel_source_reads and what it takes", probs)
	}
}

// A node's early_call overrides the global early_function_calls.
func TestResolve_ANodesEarlyCallOverridesTheGlobalSetting(t *testing.T) {
	p := project(t, `
global_settings: {early_function_calls: false}
pipelines: {p: {nodes: [a, b, c]}}
nodes: {a: {sql: "SELECT 1"}, b: {sql: "SELECT 1", early_call: true}, c: {sql: "SELECT 1", early_call: false}}
`)
	got := map[string]bool{}
	for _, n := range mustResolve(t, p, dated("p")).Nodes {
		got[n.Name] = n.EarlyCall
	}
	if want := map[string]bool{"a": false, "b": true, "c": false}; !maps.Equal(got, want) {
		t.Errorf("EarlyCall %v, want %v", got, want)
	}
}

func TestStored_AKafkaTopicIsNoOutputToReadBackFrom(t *testing.T) {
	kafka := OutputSpec{Key: "o.k", Format: "Kafka", Options: map[string]string{"topic": "t"}}
	file := OutputSpec{Key: "o.f", Format: "parquet", Path: "out/o/f"}
	for _, tc := range []struct {
		outs []OutputSpec
		want bool
	}{{nil, false}, {[]OutputSpec{kafka}, false}, {[]OutputSpec{kafka, file}, true}, {[]OutputSpec{file}, true}} {
		if got := (&Node{OutputSpecs: tc.outs}).Stored(); got != tc.want {
			t.Errorf("a node writing %v: Stored() = %v, want %v", tc.outs, got, tc.want)
		}
	}
}
