package backend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
)

// What a write observed reads as results, and which of them fail the node;
// no Spark.
func TestExpectationResults_ReadTheObservedCountsAndFailOnlyOnErrors(t *testing.T) {
	n := &plan.Node{Name: "clean",
		Expectations: []plan.Expectation{{Name: "positive", Condition: "amount > 0", Action: plan.ActionDrop}, {Name: "keyed", Condition: "id IS NOT NULL", Action: plan.ActionFail}},
		Checks: []plan.Check{
			{Name: "row_count", Kind: plan.CheckRowCount, Severity: plan.SeverityWarn, MinRows: 10, MaxRows: -1},
			{Name: "not_null(day)", Kind: plan.CheckNotNull, Severity: plan.SeverityError, Columns: []string{"day"}},
			{Name: "fresh", Kind: plan.CheckFreshness, Severity: plan.SeverityError, Columns: []string{"ts"}, MaxAge: time.Hour},
			{Name: "unique(id)", Kind: plan.CheckUnique, Severity: plan.SeverityWarn, Columns: []string{"id"}},
		}}
	got := expectationResults(n, map[string]int64{"in": 10, "e0": 9, "e1": 10, "rows": 9, "c1": 0, "c2": 4}, map[int]int64{3: 2})
	want := []struct {
		passed, failed int64
		ok             bool
		severity       string
	}{{9, 1, false, "warn"}, {10, 0, true, "error"}, {9, 0, false, "warn"}, {9, 0, true, "error"}, {4, 5, true, "error"}, {7, 2, false, "warn"}}
	for i, w := range want {
		if g := got[i]; g.Passed != w.passed || g.Failed != w.failed || g.OK != w.ok || g.Severity != w.severity {
			t.Errorf("result %d (%s) = %+v; want %+v", i, g.Name, g, w)
		}
	}
	if err := expectationFailure("clean", got); err != nil {
		t.Errorf("only warnings broke, yet %v", err)
	}
	got[4].OK, got[4].Message = false, "no row's ts is within 1h0m0s of now"
	err := expectationFailure("clean", got)
	var f *retry.Failure
	if !errors.As(err, &f) || f.Err.Retryable || !strings.Contains(f.Err.Message, `freshness check "fresh"`) {
		t.Errorf("a broken error check: %v; want a non-retryable failure naming it", err)
	}
}

// Spark Connect writes a streaming batch's observed row with its schema.
func TestIntegers_ReadBothFormsOfAnObservedRow(t *testing.T) {
	connect := map[string]any{"schema": map[string]any{"fields": []any{map[string]any{"name": "rows"}, map[string]any{"name": "e0"}}},
		"values": []any{float64(100), float64(97)}}
	if got := integers(connect); got["rows"] != 100 || got["e0"] != 97 || len(got) != 2 {
		t.Errorf("integers(%v) = %v", connect, got)
	}
	if got := integers(map[string]any{"rows": float64(5), "name": "x"}); got["rows"] != 5 || len(got) != 1 {
		t.Errorf("integers of a plain row = %v", got)
	}
}

// A node's only drop or fail expectation is not observed apart: the rows
// meeting it are the rows written, which every write counts.
func TestObserveFor_CountsTheOnlyDropExpectationByTheRowsWritten(t *testing.T) {
	n := &plan.Node{Name: "clean", Expectations: []plan.Expectation{
		{Name: "positive", Condition: "amount > 0", Action: plan.ActionWarn},
		{Name: "keyed", Condition: "id IS NOT NULL", Action: plan.ActionDrop}}}
	obs := observeFor(n)
	var names []string
	for _, m := range obs.Metrics {
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != "in,e0" || obs.Keep != "(id IS NOT NULL)" {
		t.Fatalf("observed %v, keep %q; want in,e0 and the drop's condition", names, obs.Keep)
	}
	got := expectationResults(n, map[string]int64{"in": 10, "e0": 8, "rows": 7}, nil)
	if got[0].Passed != 8 || got[0].Failed != 2 || got[1].Passed != 7 || got[1].Failed != 3 {
		t.Errorf("results %+v; want 8/2 and 7/3", got)
	}
	// With a second drop expectation, each is counted apart.
	n.Expectations[0].Action = plan.ActionFail
	if m := observeFor(n).Metrics; len(m) != 3 {
		t.Errorf("two drop or fail expectations observe %d metrics; want in, e0, e1", len(m))
	}
}
