package plan

import (
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// Expectation actions: what becomes of a row whose condition is not true
// (false or NULL).
const (
	// ActionWarn keeps the row and counts it.
	ActionWarn = "warn"
	// ActionDrop leaves the row out of every output (and writes it to the
	// node's quarantine, when it has one).
	ActionDrop = "drop"
	// ActionFail fails the node, naming the expectation and the rows that
	// broke it. The rows are left out as with drop, so an output never
	// holds them.
	ActionFail = "fail"
)

// Check kinds: whole-result checks.
const (
	CheckRowCount  = "row_count"
	CheckUnique    = "unique"
	CheckNotNull   = "not_null"
	CheckFreshness = "freshness"
)

// Severities of a check.
const (
	SeverityError = "error"
	SeverityWarn  = "warn"
)

// Expectation is a rule every row of a node's result should meet.
type Expectation struct {
	Name string
	// Condition is a Spark SQL boolean expression over the result's columns.
	Condition string
	// Action is ActionWarn, ActionDrop or ActionFail.
	Action string
	// Field is where it was written, for Spark's verdict at validation.
	Field string
}

// Check is a rule over a node's result as a whole.
type Check struct {
	Name string
	// Kind is CheckRowCount, CheckUnique, CheckNotNull or CheckFreshness.
	Kind string
	// Severity is SeverityError (a broken check fails the node) or
	// SeverityWarn.
	Severity string
	// MinRows and MaxRows bound a row_count check; -1 for no bound.
	MinRows, MaxRows int64
	// Columns are a unique check's key or a not_null check's columns; a
	// freshness check's timestamp column is Columns[0].
	Columns []string
	// MaxAge is how old a freshness check's newest timestamp may be.
	MaxAge time.Duration
	// Field is where it was written.
	Field string
}

// Gated reports whether n leaves rows out of its outputs: it has a drop or
// a fail expectation.
func (n *Node) Gated() bool {
	for _, e := range n.Expectations {
		if e.Action != ActionWarn {
			return true
		}
	}
	return false
}

// parseExpectations reads node i's expectations and checks.
func (r *resolver) parseExpectations(i int32) {
	n := r.nodes[i]
	n.Expectations = namedList(r, i, "expectations", "expectation",
		"a list of {name, condition, action}", r.expectation, func(x Expectation) string { return x.Name })
	n.Checks = namedList(r, i, "checks", "check",
		"a list of mappings such as {row_count: {min: 1}} or {not_null: [id]}", r.check, func(x Check) string { return x.Name })
}

// namedList reads node i's list under key, each entry with parse (which
// reports its own problems), refusing a second entry of a name: what, in
// messages, is one entry; form says what the list must be.
func namedList[T any](r *resolver, i int32, key, what, form string, parse func(f string, v any) (T, bool), name func(T) string) []T {
	v, ok := r.get(i, key)
	if !ok || v == nil {
		return nil
	}
	list, isList := v.([]any)
	if !isList {
		r.add(r.field(i, key), problem.CodeInvalidType, "%s must be %s, got %s", key, form, typeName(v))
	}
	var out []T
	seen := map[string]bool{}
	for k, e := range list {
		f := r.field(i, key) + "[" + itoa(k) + "]"
		x, ok := parse(f, e)
		nm := name(x)
		if nm != "" && seen[nm] {
			r.add(f+".name", problem.CodeInvalidValue, "node %s has two %ss named %s; give each its own name", q(r.nodes[i].Name), what, q(nm))
			continue
		}
		seen[nm] = true
		if ok {
			out = append(out, x)
		}
	}
	return out
}

// expectation reads one entry of a node's expectations, written at f.
func (r *resolver) expectation(f string, v any) (Expectation, bool) {
	m, ok := v.(*config.Map)
	if !ok {
		r.add(f, problem.CodeInvalidType, "an expectation must be a mapping {name, condition, action}, got %s", typeName(v))
		return Expectation{}, false
	}
	x := Expectation{Name: strings.TrimSpace(text(m, "name")), Condition: strings.TrimSpace(firstText(m, "condition", "expect")),
		Action: strings.ToLower(strings.TrimSpace(text(m, "action"))), Field: f + ".condition"}
	good := true
	if x.Name == "" {
		r.add(f+".name", problem.CodeRequired, "the expectation needs a name, which its counts and errors are reported under")
		good = false
	}
	if x.Condition == "" {
		r.add(f+".condition", problem.CodeRequired,
			"expectation %s needs a condition, a SQL boolean expression over the node's columns such as 'amount > 0'", q(x.Name))
		good = false
	}
	switch x.Action {
	case "":
		x.Action = ActionWarn
	case ActionWarn, ActionDrop, ActionFail:
	default:
		r.add(f+".action", problem.CodeInvalidValue, "expectation %s: action %s is not one of warn, drop, fail", q(x.Name), q(x.Action))
		good = false
	}
	return x, good
}

// check reads one entry of a node's checks, written at f: a mapping with
// exactly one kind key, an optional name and an optional severity.
func (r *resolver) check(f string, v any) (Check, bool) {
	m, ok := v.(*config.Map)
	if !ok {
		r.add(f, problem.CodeInvalidType, "a check must be a mapping such as {row_count: {min: 1}}, got %s", typeName(v))
		return Check{}, false
	}
	x := Check{Name: strings.TrimSpace(text(m, "name")), Severity: strings.ToLower(strings.TrimSpace(text(m, "severity"))), MinRows: -1, MaxRows: -1}
	var kinds []string
	for _, k := range []string{CheckRowCount, CheckUnique, CheckNotNull, CheckFreshness} {
		if _, ok := m.Get(k); ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		r.add(f, problem.CodeInvalidValue, "a check needs exactly one of row_count, unique, not_null, freshness; got %d", len(kinds))
		return Check{}, false
	}
	x.Kind = kinds[0]
	x.Field = f + "." + x.Kind
	switch x.Severity {
	case "":
		x.Severity = SeverityError
	case SeverityError, SeverityWarn:
	default:
		r.add(f+".severity", problem.CodeInvalidValue, "check severity %s is not one of error, warn", q(x.Severity))
		return x, false
	}
	body, _ := m.Get(x.Kind)
	good := true
	switch x.Kind {
	case CheckRowCount:
		bm, _ := body.(*config.Map)
		if bm == nil {
			r.add(x.Field, problem.CodeInvalidType, "row_count must be a mapping {min: <rows>, max: <rows>}, got %s", typeName(body))
			return x, false
		}
		for _, b := range []struct {
			key string
			to  *int64
		}{{"min", &x.MinRows}, {"max", &x.MaxRows}} {
			if bv, ok := bm.Get(b.key); ok {
				n, ok := asInt(bv)
				if !ok || n < 0 {
					r.add(x.Field+"."+b.key, problem.CodeInvalidValue, "row_count %s must be a whole number of rows, 0 or more", b.key)
					good = false
					continue
				}
				*b.to = int64(n)
			}
		}
		if good && x.MinRows < 0 && x.MaxRows < 0 {
			r.add(x.Field, problem.CodeRequired, "row_count needs min, max or both")
			good = false
		}
		if good && x.MaxRows >= 0 && x.MinRows > x.MaxRows {
			r.add(x.Field, problem.CodeInvalidValue, "row_count min %d is above max %d", x.MinRows, x.MaxRows)
			good = false
		}
	case CheckUnique, CheckNotNull:
		x.Columns = columnList(body)
		if len(x.Columns) == 0 {
			r.add(x.Field, problem.CodeRequired, "%s needs a column or a list of columns", x.Kind)
			good = false
		}
	case CheckFreshness:
		bm, _ := body.(*config.Map)
		if bm == nil {
			r.add(x.Field, problem.CodeInvalidType, "freshness must be a mapping {column: <timestamp column>, max_age: 24h}, got %s", typeName(body))
			return x, false
		}
		if c := strings.TrimSpace(text(bm, "column")); c != "" {
			x.Columns = []string{c}
		} else {
			r.add(x.Field+".column", problem.CodeRequired, "freshness needs column, the timestamp column whose newest value is checked")
			good = false
		}
		age, _ := bm.Get("max_age")
		if d, ok := asDuration(age); ok && d > 0 {
			x.MaxAge = d
		} else {
			r.add(x.Field+".max_age", problem.CodeInvalidValue, "freshness needs max_age, a duration such as 24h or 3600 (seconds)")
			good = false
		}
	}
	if x.Name == "" {
		x.Name = x.Kind
		if len(x.Columns) > 0 {
			x.Name += "(" + strings.Join(x.Columns, ",") + ")"
		}
	}
	return x, good
}

// columnList reads a column or a list of columns.
func columnList(v any) []string {
	switch x := v.(type) {
	case string:
		if s := strings.TrimSpace(x); s != "" {
			return []string{s}
		}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok && strings.TrimSpace(s) != "" {
				out = append(out, strings.TrimSpace(s))
			} else {
				return nil
			}
		}
		return out
	}
	return nil
}

// checkExpected refuses what node i's expectations and checks cannot be
// counted by: they are observed as its outputs are written, and a
// streaming query observes no DISTINCT aggregate.
func (r *resolver) checkExpected(i int32) {
	n := r.nodes[i]
	if len(n.Expectations)+len(n.Checks) > 0 && len(n.Outputs) == 0 && n.InlineOutput == nil {
		r.add(r.field(i, "output"), problem.CodeRequired,
			"node %s has expectations or checks but writes no output; they are counted as the node's output is written, so give it one", q(n.Name))
	}
	if !n.Streaming {
		return
	}
	for _, c := range n.Checks {
		if c.Kind == CheckUnique {
			r.add(c.Field, problem.CodeIncompatible, "node %s is streaming: a unique check needs a pass over the whole result, which a micro-batch is not; check it on a batch node that reads the sink", q(n.Name))
		}
	}
}

// resolveQuarantine reads node i's quarantine: an output key of the output
// config, written with the same path rule as the node's outputs.
func (r *resolver) resolveQuarantine(i int32, p *Pipeline) {
	n := r.nodes[i]
	v, ok := r.get(i, "quarantine")
	if !ok || v == nil {
		return
	}
	f := r.field(i, "quarantine")
	key, ok := v.(string)
	if !ok || strings.TrimSpace(key) == "" {
		r.add(f, problem.CodeInvalidType, "quarantine must be an output key of the output config, got %s", typeName(v))
		return
	}
	if !n.Gated() {
		r.add(f, problem.CodeIncompatible, "node %s has a quarantine but no drop or fail expectation; nothing would go there", q(n.Name))
		return
	}
	k, err := config.ParseOutputKey(key)
	if err != nil {
		r.add(f, problem.CodeInvalidOutputKey, "node %s: quarantine: %v", q(n.Name), err)
		return
	}
	if _, taken := r.producers[k]; taken {
		r.add(f, problem.CodeInvalidValue, "quarantine %s is an output a node writes; give the quarantine an output of its own", q(key))
		return
	}
	entry, found := r.outputEntry(key, k)
	m, _ := entry.(*config.Map)
	if !found || m == nil {
		r.add(f, problem.CodeUnknownOutput, "quarantine %s is not in the output config; add %s: {format: parquet, write_mode: overwrite} to it", q(key), short(key))
		return
	}
	spec := r.outputSpec(i, key, k, m, p)
	mode := strings.ToLower(strings.TrimSpace(text(m, "write_mode")))
	if _, ok := saveModes[mode]; !ok {
		r.add("output."+key+".write_mode", problem.CodeInvalidValue, "output %s: write_mode %s is not one of overwrite, append, ignore, error", q(key), text(m, "write_mode"))
		return
	}
	if n.Streaming {
		if mode != "" && mode != "append" {
			r.add("output."+key+".write_mode", problem.CodeInvalidValue,
				"quarantine %s of streaming node %s is appended to with each micro-batch; set write_mode: append or leave it out", q(key), q(n.Name))
			return
		}
		spec.WriteMode = "append"
	}
	n.Quarantine = &spec
}

// checkStreamQuarantine refuses a quarantine streaming node i cannot
// write: its query's sink becomes a foreachBatch function that appends
// each micro-batch to the sink's path and to the quarantine (see the
// worker's quarantine module), so the sink must be a path written in
// append mode.
func (r *resolver) checkStreamQuarantine(i int32) {
	n := r.nodes[i]
	if n.Quarantine == nil || n.Stream == nil {
		return
	}
	f := r.field(i, "quarantine")
	sink := n.Stream.Sink
	switch {
	case sink.BatchFunction != nil:
		r.add(f, problem.CodeIncompatible, "node %s writes with its own foreachBatch function, which gets only the rows its expectations keep; write the others from a node of their own, or drop the quarantine", q(n.Name))
	case sink.CDC != nil:
		r.add(f, problem.CodeIncompatible, "node %s's sink applies changes (cdc), and a quarantine is appended beside a plain sink; leave the changes that break its expectations to a node of their own, or drop the quarantine", q(n.Name))
	case sink.Path == "":
		r.add(f, problem.CodeIncompatible, "node %s: a streaming node's quarantine is written beside a sink with a path (delta, parquet, json, csv); its %s sink has none", q(n.Name), sink.Format)
	case n.Stream.OutputMode != "" && !strings.EqualFold(n.Stream.OutputMode, "append"):
		r.add(f, problem.CodeIncompatible, "node %s: a quarantine is appended with each micro-batch, which output_mode %s does not do; use output_mode append", q(n.Name), n.Stream.OutputMode)
	}
}

// KeepCondition is the condition of the rows n's drop and fail
// expectations keep: those meeting every one of them, as a filter keeps
// rows (a condition that is NULL does not hold). "" when it keeps all.
func KeepCondition(xs []Expectation) string {
	var parts []string
	for _, x := range xs {
		if x.Action != ActionWarn {
			parts = append(parts, "("+x.Condition+")")
		}
	}
	return strings.Join(parts, " AND ")
}
