package plan

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

const expectDoc = `
global_settings: {base_path: /proj, output_path: out}
input: {raw: {format: csv, filepath: raw.csv}}
output:
  silver.sales.clean: {format: parquet}
  quarantine.sales.bad: {format: parquet, write_mode: append}
pipelines: {p: {nodes: [clean]}}
nodes:
  clean:
    sql: SELECT * FROM raw
    input: [raw]
    output: [silver.sales.clean]
`

func TestResolve_ExpectationsChecksAndQuarantineAreRead(t *testing.T) {
	pl := mustResolve(t, project(t, expectDoc+`
    expectations:
      - {name: positive, condition: amount > 0, action: drop}
      - {name: has_customer, expect: customer_id IS NOT NULL}
    checks:
      - {row_count: {min: 1, max: 100}}
      - {unique: order_id, severity: warn}
      - {name: keys, not_null: [order_id, day]}
      - {freshness: {column: ts, max_age: 24h}}
    quarantine: quarantine.sales.bad
`), dated("p"))
	n := pl.Nodes[0]
	if len(n.Expectations) != 2 || n.Expectations[0] != (Expectation{"positive", "amount > 0", ActionDrop, "nodes.clean.expectations[0].condition"}) ||
		n.Expectations[1].Action != ActionWarn || n.Expectations[1].Condition != "customer_id IS NOT NULL" {
		t.Errorf("expectations = %+v", n.Expectations)
	}
	if len(n.Checks) != 4 {
		t.Fatalf("checks = %+v", n.Checks)
	}
	if c := n.Checks[0]; c.Name != "row_count" || c.MinRows != 1 || c.MaxRows != 100 || c.Severity != SeverityError {
		t.Errorf("row_count = %+v", c)
	}
	if c := n.Checks[1]; c.Name != "unique(order_id)" || c.Severity != SeverityWarn {
		t.Errorf("unique = %+v", c)
	}
	if c := n.Checks[2]; c.Name != "keys" || len(c.Columns) != 2 {
		t.Errorf("not_null = %+v", c)
	}
	if c := n.Checks[3]; c.MaxAge.Hours() != 24 || c.Columns[0] != "ts" {
		t.Errorf("freshness = %+v", c)
	}
	if q := n.Quarantine; q == nil || q.WriteMode != "append" || !strings.HasSuffix(q.Path, filepath.Join("out", "quarantine", "sales", "bad")) {
		t.Errorf("quarantine = %+v", q)
	}
	if got := KeepCondition(n.Expectations); got != "(amount > 0)" {
		t.Errorf("KeepCondition = %q", got)
	}
}

func TestResolve_BadExpectationsNameTheirField(t *testing.T) {
	l := problems(t, func() error {
		_, err := Resolve(project(t, expectDoc+`
    expectations:
      - {name: no_condition, action: drop}
      - {name: odd, condition: a > 0, action: explode}
      - {condition: a > 0}
      - {name: odd, condition: b > 0}
    checks:
      - {row_count: {}}
      - {unique: a, not_null: b}
      - {freshness: {column: ts}}
      - {not_null: a, severity: fatal}
    quarantine: silver.sales.clean
`), dated("p"))
		return err
	}())
	wantProblem(t, l, problem.CodeRequired, "nodes.clean.expectations[0].condition", "needs a condition")
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.clean.expectations[1].action", "not one of warn, drop, fail")
	wantProblem(t, l, problem.CodeRequired, "nodes.clean.expectations[2].name", "needs a name")
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.clean.expectations[3].name", "two expectations named")
	wantProblem(t, l, problem.CodeRequired, "nodes.clean.checks[0].row_count", "min, max or both")
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.clean.checks[1]", "exactly one of")
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.clean.checks[2].freshness.max_age", "duration")
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.clean.checks[3].severity", "not one of error, warn")
}

func TestResolve_AQuarantineNeedsAGateAndAnOutputOfItsOwn(t *testing.T) {
	l := problems(t, func() error {
		_, err := Resolve(project(t, expectDoc+`
    expectations: [{name: w, condition: a > 0}]
    quarantine: quarantine.sales.bad
`), dated("p"))
		return err
	}())
	wantProblem(t, l, problem.CodeIncompatible, "nodes.clean.quarantine", "no drop or fail expectation")
	l = problems(t, func() error {
		_, err := Resolve(project(t, expectDoc+`
    expectations: [{name: d, condition: a > 0, action: drop}]
    quarantine: silver.sales.clean
`), dated("p"))
		return err
	}())
	wantProblem(t, l, problem.CodeInvalidValue, "nodes.clean.quarantine", "an output a node writes")
}

// streamQuarantineDoc is a streaming node with a drop and a quarantine,
// whose sink and quarantine output config the cases fill in.
func streamQuarantineDoc(sink, quarantine string) string {
	return `
global_settings: {base_path: /proj, output_path: out}
output:
  quarantine.sales.bad: ` + quarantine + `
pipelines: {s: {type: streaming, nodes: [clean]}}
nodes:
  clean:
    input: {format: rate}
    output: ` + sink + `
    expectations: [{name: d, condition: value % 2 = 0, action: drop}]
    quarantine: quarantine.sales.bad
`
}

func TestResolve_AStreamingNodesQuarantineIsAppendedBesideItsSink(t *testing.T) {
	pl := mustResolve(t, project(t, streamQuarantineDoc(`{format: delta, filepath: clean}`, `{format: delta}`)), dated("s"))
	if q := pl.Nodes[0].Quarantine; q == nil || q.WriteMode != "append" || !strings.HasSuffix(q.Path, filepath.Join("quarantine", "sales", "bad")) {
		t.Errorf("quarantine = %+v; want one appended to", q)
	}
}

func TestResolve_AStreamingNodesQuarantineItCannotWriteNamesTheField(t *testing.T) {
	for _, c := range []struct{ sink, quarantine, code, field, want string }{
		{`{format: foreachBatch, batch_function: {module: m, function: f}}`, `{format: delta}`,
			problem.CodeIncompatible, "nodes.clean.quarantine", "its own foreachBatch function"},
		{`{format: console}`, `{format: delta}`, problem.CodeIncompatible, "nodes.clean.quarantine", "a sink with a path"},
		{`{format: delta, filepath: clean, cdc: {keys: [value], sequence_by: timestamp}}`, `{format: delta}`,
			problem.CodeIncompatible, "nodes.clean.quarantine", "applies changes (cdc)"},
		{`{format: delta, filepath: clean}`, `{format: delta, write_mode: overwrite}`,
			problem.CodeInvalidValue, "output.quarantine.sales.bad.write_mode", "set write_mode: append"},
	} {
		_, err := Resolve(project(t, streamQuarantineDoc(c.sink, c.quarantine)), dated("s"))
		wantProblem(t, problems(t, err), c.code, c.field, c.want)
	}
}
