package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Names of the metrics a node's expectations and checks observe: "in"
// (every row), "e<i>" (the rows meeting expectation i), "c<i>" (what check
// i counts among the rows written) and "rows" (the rows written; every
// write counts it).
const inputRows = "in"

func expectationMetric(i int) string { return fmt.Sprintf("e%d", i) }
func checkMetric(i int) string       { return fmt.Sprintf("c%d", i) }

// observeFor is what the write of n's first output observes so that its
// expectations and checks are counted by the job that writes: over every
// row of the result, the rows meeting each condition (a NULL condition is
// not met) and, among the rows its drop and fail expectations keep, what
// each check counts. One observation, before the filter: each observation
// is a step of the job that Spark's generated code cannot run through, so
// a second one would cost a pass over the rows in memory. A unique check is
// not among them: Spark observes no DISTINCT aggregate (see duplicates).
func observeFor(n *plan.Node) sparkconnect.Observe {
	o := sparkconnect.Observe{Keep: plan.KeepCondition(n.Expectations)}
	if o.Keep != "" {
		// Without a filter, every row is written and "rows" counts them.
		o.Metrics = append(o.Metrics, sparkconnect.Metric{Name: inputRows, SQL: "count(1)"})
	}
	for i, x := range n.Expectations {
		if sharesRows(n, i) {
			continue // "rows" counts them already
		}
		o.Metrics = append(o.Metrics, sparkconnect.Metric{Name: expectationMetric(i), SQL: sparkconnect.CountWhere(x.Condition)})
	}
	for i, c := range n.Checks {
		if cond := checkCondition(c); cond != "" {
			if o.Keep != "" {
				cond = "(" + o.Keep + ") AND (" + cond + ")"
			}
			o.Metrics = append(o.Metrics, sparkconnect.Metric{Name: checkMetric(i), SQL: sparkconnect.CountWhere(cond)})
		}
	}
	return o
}

// sharesRows reports whether expectation i of n is its only drop or fail
// expectation: the rows meeting it are the rows written, which "rows"
// counts, so it is not counted twice. Each aggregate of an observation is
// evaluated for every row; one less is a few percent of a plain write.
func sharesRows(n *plan.Node, i int) bool {
	if n.Expectations[i].Action == plan.ActionWarn {
		return false
	}
	for j, x := range n.Expectations {
		if j != i && x.Action != plan.ActionWarn {
			return false
		}
	}
	return true
}

// checkCondition is what a check counts rows by: a NULL in one of its
// columns, or a timestamp within its maximum age (current_timestamp is the
// query's start, or the micro-batch's). "" for a check that counts nothing
// of its own.
func checkCondition(c plan.Check) string {
	switch c.Kind {
	case plan.CheckNotNull:
		nulls := make([]string, len(c.Columns))
		for i, col := range c.Columns {
			nulls[i] = quoteColumn(col) + " IS NULL"
		}
		return strings.Join(nulls, " OR ")
	case plan.CheckFreshness:
		return fmt.Sprintf("CAST(%s AS TIMESTAMP) >= current_timestamp() - INTERVAL '%d' SECOND",
			quoteColumn(c.Columns[0]), int64(c.MaxAge.Seconds()))
	}
	return ""
}

// quoteColumn makes a configured column name a SQL identifier.
func quoteColumn(c string) string { return "`" + strings.ReplaceAll(c, "`", "``") + "`" }

// expectationResults reads what a write observed (see observeFor) as n's
// results; duplicates holds each unique check's duplicate rows, by index.
func expectationResults(n *plan.Node, seen map[string]int64, duplicates map[int]int64) []run.ExpectationResult {
	out := make([]run.ExpectationResult, 0, len(n.Expectations)+len(n.Checks))
	total, ok := seen[inputRows]
	if !ok {
		total = seen["rows"] // nothing was left out
	}
	for i, x := range n.Expectations {
		r := run.ExpectationResult{Name: x.Name, Kind: x.Action, Passed: seen[expectationMetric(i)], Severity: plan.SeverityWarn}
		if sharesRows(n, i) {
			r.Passed = seen["rows"]
		}
		r.Failed = total - r.Passed
		r.OK = r.Failed == 0
		if x.Action == plan.ActionFail {
			r.Severity = plan.SeverityError
		}
		if !r.OK {
			r.Message = fmt.Sprintf("%d of %d rows do not meet %s; %s", r.Failed, total, x.Condition, map[string]string{
				plan.ActionWarn: "they were kept", plan.ActionDrop: "they were left out", plan.ActionFail: "the node fails"}[x.Action])
		}
		out = append(out, r)
	}
	rows := seen["rows"]
	for i, c := range n.Checks {
		r := run.ExpectationResult{Name: c.Name, Kind: c.Kind, Severity: c.Severity, Passed: rows, OK: true}
		switch c.Kind {
		case plan.CheckRowCount:
			if (c.MinRows >= 0 && rows < c.MinRows) || (c.MaxRows >= 0 && rows > c.MaxRows) {
				r.OK, r.Message = false, fmt.Sprintf("%d rows written; expected %s", rows, rowBounds(c))
			}
		case plan.CheckNotNull:
			r.Failed = seen[checkMetric(i)]
			r.Passed = rows - r.Failed
			if r.Failed > 0 {
				r.OK, r.Message = false, fmt.Sprintf("%d rows have a NULL in %s", r.Failed, strings.Join(c.Columns, ", "))
			}
		case plan.CheckFreshness:
			r.Passed = seen[checkMetric(i)]
			r.Failed = rows - r.Passed
			if r.Passed == 0 {
				r.OK, r.Message = false, fmt.Sprintf("no row's %s is within %s of now", c.Columns[0], c.MaxAge)
			}
		case plan.CheckUnique:
			r.Failed = duplicates[i]
			r.Passed = rows - r.Failed
			if r.Failed > 0 {
				r.OK, r.Message = false, fmt.Sprintf("%d rows repeat a key (%s) another row has", r.Failed, strings.Join(c.Columns, ", "))
			}
		}
		out = append(out, r)
	}
	return out
}

func rowBounds(c plan.Check) string {
	switch {
	case c.MinRows >= 0 && c.MaxRows >= 0:
		return fmt.Sprintf("between %d and %d", c.MinRows, c.MaxRows)
	case c.MinRows >= 0:
		return fmt.Sprintf("at least %d", c.MinRows)
	}
	return fmt.Sprintf("at most %d", c.MaxRows)
}

// expectationFailure is the node's failure when a fail expectation or an
// error-severity check did not hold: not retryable, since running the same
// data again finds the same rows.
func expectationFailure(node string, results []run.ExpectationResult) error {
	var broken []string
	for _, r := range results {
		if !r.OK && r.Severity == plan.SeverityError {
			broken = append(broken, fmt.Sprintf("%s %q: %s", kindWord(r.Kind), r.Name, r.Message))
		}
	}
	if len(broken) == 0 {
		return nil
	}
	return &retry.Failure{Err: run.Error{Type: "ExpectationFailed",
		Message: fmt.Sprintf("node %q: %s", node, strings.Join(broken, "; "))}}
}

func kindWord(kind string) string {
	if kind == plan.ActionFail {
		return "expectation"
	}
	return kind + " check"
}

// writeOutputs writes n's result view to its outputs. Its expectations and
// checks are observed by the first write, and every write keeps only the
// rows its drop and fail expectations keep; the rows left out go to its
// quarantine, in a job of their own. The results are reported before the
// node fails on them.
func (r *runExec) writeOutputs(ctx context.Context, s *sparkconnect.Session, n *plan.Node, view string, attempt int, emit func(run.Event)) error {
	obs := observeFor(n)
	expects := len(n.Expectations)+len(n.Checks) > 0
	var seen map[string]int64
	for i, o := range n.OutputSpecs {
		this := sparkconnect.Observe{Keep: obs.Keep}
		if i == 0 {
			this = obs
		}
		out, err := s.WriteObserved(ctx, view, o, sparkconnect.OutputStep(r.step(n.Name, attempt), i, o), this)
		if err != nil {
			return err
		}
		if i == 0 {
			seen = out.Observed
		}
		emitOutput(emit, *out)
	}
	phase(ctx, "write")
	if !expects || len(n.OutputSpecs) == 0 {
		return nil
	}
	if q := n.Quarantine; q != nil {
		out, err := s.WriteObserved(ctx, view, *q, sparkconnect.OutputStep(r.step(n.Name, attempt), len(n.OutputSpecs), *q),
			sparkconnect.Observe{Keep: "NOT coalesce((" + obs.Keep + "), false)"})
		if err != nil {
			return err
		}
		emit(run.Event{Kind: run.NodeMetric, MetricName: "rows_quarantined." + q.Key, MetricValue: float64(max(out.Rows, 0))})
		phase(ctx, "quarantine")
	}
	duplicates, err := r.duplicates(ctx, s, n, view, obs.Keep)
	if err != nil {
		return err
	}
	results := expectationResults(n, seen, duplicates)
	emit(run.Event{Kind: run.NodeExpectations, Expectations: &run.Expectations{Results: results}})
	observe.ExpectationsCounted(ctx, results)
	return expectationFailure(n.Name, results)
}

// duplicates counts, for each unique check of n, the rows written that
// repeat another's key: a Spark job per check (see Session.Duplicates).
func (r *runExec) duplicates(ctx context.Context, s *sparkconnect.Session, n *plan.Node, view, keep string) (map[int]int64, error) {
	var out map[int]int64
	for i, c := range n.Checks {
		if c.Kind != plan.CheckUnique {
			continue
		}
		d, err := s.Duplicates(ctx, view, keep, c.Columns)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[int]int64{}
		}
		out[i] = d
	}
	return out, nil
}

// hasDependents reports whether a node of the run reads n's result.
func (r *runExec) hasDependents(n *plan.Node) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dependents[n.Name] > 0
}
