package plan

import (
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// ChangeCapture is a streaming Delta sink's cdc: its input is a stream of
// changes, MERGEd into the table per micro-batch (Databricks' AUTO CDC,
// apply_changes). The Spark backend runs it as a foreachBatch function.
type ChangeCapture struct {
	// Table is the Delta table's path: the sink's path.
	Table string
	// Keys identify a row; SequenceBy orders a key's changes.
	Keys       []string
	SequenceBy string
	// ApplyAsDeletes is a SQL condition marking a change a delete; "" when
	// the input has no deletes.
	ApplyAsDeletes string
	// ExceptColumns are input columns the table leaves out.
	ExceptColumns []string
	// SCDType is 1 (the latest row per key) or 2 (every version, with
	// __START_AT and __END_AT).
	SCDType int
	// Field is where the config sets it, for messages.
	Field string
}

const cdcForm = "cdc: {keys: [id], sequence_by: updated_at, apply_as_deletes: \"op = 'D'\", except_columns: [op], scd_type: 1}"

// readCDC reads the cdc of a streaming node's output entry m, reported
// under the field f (the output's), into sink. Only a Delta sink with a
// path takes one.
func (r *resolver) readCDC(f string, m *config.Map, sink *StreamSink) {
	v, ok := m.Get("cdc")
	if !ok || v == nil {
		return
	}
	f += ".cdc"
	cm, ok := v.(*config.Map)
	if !ok {
		r.add(f, problem.CodeInvalidType, "cdc must be a mapping: %s", cdcForm)
		return
	}
	if sink.Format != "delta" {
		r.add(f, problem.CodeIncompatible, "cdc writes changes into a Delta table; this output's format is %s: set format: delta, or remove cdc", q(sink.Format))
		return
	}
	if sink.Path == "" {
		r.add(f, problem.CodeRequired, "cdc MERGEs into the Delta table at the output's path; set path (a table_name alone is not supported)")
		return
	}
	c := ChangeCapture{Table: sink.Path, Field: f, SCDType: 1}
	c.Keys = r.cdcColumns(f+".keys", cm, "keys", true)
	c.SequenceBy = text(cm, "sequence_by")
	if c.SequenceBy == "" {
		r.add(f+".sequence_by", problem.CodeRequired, "cdc needs sequence_by, the column ordering each key's changes (a number or a timestamp): %s", cdcForm)
	}
	c.ApplyAsDeletes = strings.TrimSpace(text(cm, "apply_as_deletes"))
	c.ExceptColumns = r.cdcColumns(f+".except_columns", cm, "except_columns", false)
	for _, k := range c.Keys {
		if slices.Contains(c.ExceptColumns, k) {
			r.add(f+".except_columns", problem.CodeInvalidValue, "except_columns leaves out %s, a key; the table keeps its keys, so remove it from except_columns", q(k))
		}
	}
	if t, ok := cm.Get("scd_type"); ok && t != nil {
		n, isInt := asInt(t)
		if !isInt || (n != 1 && n != 2) {
			r.add(f+".scd_type", problem.CodeInvalidValue, "scd_type must be 1 (the latest row per key) or 2 (every version, with __START_AT and __END_AT), got %s", describe(t))
		}
		c.SCDType = n
	}
	for _, k := range cm.Keys {
		if !slices.Contains([]string{"keys", "sequence_by", "apply_as_deletes", "except_columns", "scd_type"}, k) {
			r.add(f+"."+k, problem.CodeInvalidValue, "cdc has no setting %s; it takes keys, sequence_by, apply_as_deletes, except_columns and scd_type", q(k))
		}
	}
	sink.CDC = &c
}

// cdcColumns reads the list of column names under key of cm.
func (r *resolver) cdcColumns(f string, cm *config.Map, key string, required bool) []string {
	v, ok := cm.Get(key)
	if !ok || v == nil {
		if required {
			r.add(f, problem.CodeRequired, "cdc needs %s, the list of columns identifying a row: %s", key, cdcForm)
		}
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		r.add(f, problem.CodeInvalidType, "%s must be a list of column names, e.g. [%s], got %s", key, describe(v), typeName(v))
		return nil
	}
	if required && len(list) == 0 {
		r.add(f, problem.CodeRequired, "%s must name at least one column: %s", key, cdcForm)
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok || strings.TrimSpace(s) == "" {
			r.add(f+"["+itoa(i)+"]", problem.CodeInvalidType, "%s must be column names; item %d is %s", key, i, describe(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// refuseCDC reports a cdc in the output entry m of a batch node, under f.
func (r *resolver) refuseCDC(f string, m *config.Map, node string) {
	if v, ok := m.Get("cdc"); ok && v != nil {
		r.add(f+".cdc", problem.CodeIncompatible,
			"cdc applies changes per micro-batch of a streaming node; node %s is a batch node: make it streaming (a streaming input), or remove cdc", q(node))
	}
}
