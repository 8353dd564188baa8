package plan

import (
	"reflect"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// cdcProject is a streaming node writing output changes, whose entry is
// output (a YAML flow mapping).
func cdcProject(t *testing.T, output string) string {
	t.Helper()
	return `
pipelines:
  s: {type: streaming, nodes: [changes]}
nodes:
  changes:
    input: {format: rate}
    output: [crm.sales.changes]
output:
  crm.sales.changes: ` + output + `
`
}

func TestResolve_ADeltaSinkCarriesItsChangeCapture(t *testing.T) {
	p := project(t, cdcProject(t, `{format: delta, cdc: {keys: [id, region], sequence_by: seq, apply_as_deletes: "op = 'D'", except_columns: [op], scd_type: 2}}`))
	sink := mustResolve(t, p, dated("s")).Nodes[0].Stream.Sink
	want := &ChangeCapture{Table: "output/crm/sales/changes", Keys: []string{"id", "region"}, SequenceBy: "seq", ApplyAsDeletes: "op = 'D'",
		ExceptColumns: []string{"op"}, SCDType: 2, Field: "output.crm.sales.changes.cdc"}
	if !reflect.DeepEqual(sink.CDC, want) {
		t.Errorf("cdc %+v, want %+v", sink.CDC, want)
	}
}

func TestResolve_AnInlineDeltaSinksChangeCaptureIsSCDType1UnlessSaid(t *testing.T) {
	p := project(t, `
pipelines:
  s: {type: streaming, nodes: [changes]}
nodes:
  changes:
    input: {format: rate}
    output: {format: delta, path: /data/customers, cdc: {keys: [id], sequence_by: seq}}
`)
	c := mustResolve(t, p, dated("s")).Nodes[0].Stream.Sink.CDC
	if c == nil || c.SCDType != 1 || c.Field != "nodes.changes.output.cdc" || c.ApplyAsDeletes != "" {
		t.Errorf("cdc %+v, want SCD type 1 under nodes.changes.output.cdc without deletes", c)
	}
}

func TestResolve_ABadChangeCaptureNamesItsFieldAndTheFix(t *testing.T) {
	for _, c := range []struct{ name, output, code, field, text string }{
		{"keys missing", `{format: delta, path: /t, cdc: {sequence_by: seq}}`, problem.CodeRequired, "output.crm.sales.changes.cdc.keys", "list of columns identifying a row"},
		{"keys not a list", `{format: delta, path: /t, cdc: {keys: id, sequence_by: seq}}`, problem.CodeInvalidType, "output.crm.sales.changes.cdc.keys", "must be a list of column names"},
		{"keys empty", `{format: delta, path: /t, cdc: {keys: [], sequence_by: seq}}`, problem.CodeRequired, "output.crm.sales.changes.cdc.keys", "at least one column"},
		{"a key not a name", `{format: delta, path: /t, cdc: {keys: [id, {a: 1}], sequence_by: seq}}`, problem.CodeInvalidType, "output.crm.sales.changes.cdc.keys[1]", "must be column names"},
		{"sequence_by missing", `{format: delta, path: /t, cdc: {keys: [id]}}`, problem.CodeRequired, "output.crm.sales.changes.cdc.sequence_by", "ordering each key's changes"},
		{"scd_type unknown", `{format: delta, path: /t, cdc: {keys: [id], sequence_by: seq, scd_type: 3}}`, problem.CodeInvalidValue, "output.crm.sales.changes.cdc.scd_type", "must be 1"},
		{"scd_type not a number", `{format: delta, path: /t, cdc: {keys: [id], sequence_by: seq, scd_type: latest}}`, problem.CodeInvalidValue, "output.crm.sales.changes.cdc.scd_type", "or 2"},
		{"except_columns not a list", `{format: delta, path: /t, cdc: {keys: [id], sequence_by: seq, except_columns: op}}`, problem.CodeInvalidType, "output.crm.sales.changes.cdc.except_columns", "list of column names"},
		{"a key left out", `{format: delta, path: /t, cdc: {keys: [id], sequence_by: seq, except_columns: [id]}}`, problem.CodeInvalidValue, "output.crm.sales.changes.cdc.except_columns", "remove it from except_columns"},
		{"an unknown setting", `{format: delta, path: /t, cdc: {keys: [id], sequence_by: seq, track_history: true}}`, problem.CodeInvalidValue, "output.crm.sales.changes.cdc.track_history", "it takes keys, sequence_by"},
		{"not a mapping", `{format: delta, path: /t, cdc: true}`, problem.CodeInvalidType, "output.crm.sales.changes.cdc", "must be a mapping"},
		{"not a delta sink", `{format: parquet, path: /t, cdc: {keys: [id], sequence_by: seq}}`, problem.CodeIncompatible, "output.crm.sales.changes.cdc", "set format: delta"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Resolve(project(t, cdcProject(t, c.output)), dated("s"))
			wantProblem(t, problems(t, err), c.code, c.field, c.text)
		})
	}
}

func TestResolve_ChangeCaptureNeedsTheDeltaTablesPath(t *testing.T) {
	p := project(t, `
pipelines:
  s: {type: streaming, nodes: [changes]}
nodes:
  changes:
    input: {format: rate}
    output: {format: delta, table_name: customers, cdc: {keys: [id], sequence_by: seq}}
`)
	_, err := Resolve(p, dated("s"))
	wantProblem(t, problems(t, err), problem.CodeRequired, "nodes.changes.output.cdc", "set path")
}

func TestResolve_ChangeCaptureOnABatchNodeIsRefused(t *testing.T) {
	p := project(t, `
pipelines:
  b: {type: batch, nodes: [load]}
nodes:
  load:
    sql: SELECT * FROM raw
    input: [raw]
    output: [crm.sales.customers]
input:
  raw: {format: parquet, filepath: /data/raw}
output:
  crm.sales.customers: {format: delta, filepath: /data/customers, cdc: {keys: [id], sequence_by: seq}}
`)
	_, err := Resolve(p, dated("b"))
	wantProblem(t, problems(t, err), problem.CodeIncompatible, "output.crm.sales.customers.cdc", "make it streaming")
}
