package connect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/spark-connect-go/spark/sql/utils"
)

// NodeSpec is a SQL node as the runner needs it.
type NodeSpec struct {
	Name string
	// SQL is one query. It reads inputs and upstream results by name and
	// the run's parameters as named markers (:start_date), which Spark
	// binds: values never become SQL text.
	SQL string
	// Inputs are the names SQL reads. Each must be registered in the
	// session (an input, an upstream node's output key, an alias); the
	// check names a missing one before Spark is asked.
	Inputs []string
	// Outputs are written from the result, in order.
	Outputs []OutputSpec
	// Step, when set, names the node's attempt in the session's journal:
	// each output's write is a step of it (see WriteOutput).
	Step string
	// Cache keeps the result once computed (by the first write, or by the
	// first dependent), so dependents do not compute it again: NodeResult.All,
	// which View filters when Keep is set. The caller uncaches it after its
	// last dependent.
	Cache bool
	// Aliases are the session names other SQL reads the result by. Nil
	// means the node's name (unless an input has it) and each output key;
	// a runner that knows its dependents names only what they read, as
	// each name costs a round trip.
	Aliases []string
	// Describe asks Spark for the result's columns (NodeResult.Schema) and
	// refuses a result without any before anything is written. Without
	// it, the columns are only looked at when a write fails, to say so.
	Describe bool
	// Keep, when set, is a SQL condition the result's rows must meet: the
	// result (View, and the names other SQL reads it by) holds only those,
	// and All the query's every row, for a write that counts both.
	Keep string
}

// Field is one column of a result.
type Field struct {
	Name     string
	Type     string
	Nullable bool
}

// NodeResult is what running a node produced.
type NodeResult struct {
	// View is the global view holding the result (see ResultView).
	View string
	// All is the global view holding every row of the query when
	// NodeSpec.Keep left some out of View; View otherwise.
	All     string
	Schema  []Field
	Outputs []OutputResult
}

// Warnings returns the outputs' warnings (an output that wrote no rows).
func (r *NodeResult) Warnings() []string {
	var w []string
	for _, o := range r.Outputs {
		if o.Warning != "" {
			w = append(w, o.Warning)
		}
	}
	return w
}

// RunSQL runs node's query with params bound (start_date, end_date, ...),
// keeps the result as the node's global view and as the session views
// node.Aliases names, and writes the outputs. The query is analysed before
// anything is written: an error in it fails here, permanently, with
// Spark's message. Nothing is computed twice unless an output needs it: the
// view is a plan, each write runs it.
func (s *Session) RunSQL(ctx context.Context, node NodeSpec, params map[string]any) (*NodeResult, error) {
	op := "run node " + node.Name
	if err := s.check(op); err != nil {
		return nil, err
	}
	if strings.TrimSpace(node.SQL) == "" {
		return nil, permanent(op, "the node has no sql")
	}
	for _, in := range node.Inputs {
		if !s.hasView(in) {
			return nil, permanent(op, "input %q is not registered: declare it in the input config or as an upstream node's output", in)
		}
	}
	rel, err := sqlRelation(node.SQL, params)
	if err != nil {
		return nil, permanent(op, "%v", err)
	}
	res := &NodeResult{View: s.ResultView(node.Name)}
	res.All = res.View
	if node.Keep != "" {
		if err := s.createView(ctx, op, s.UnfilteredName(node.Name), rel, true); err != nil {
			return nil, err
		}
		res.All = s.UnfilteredView(node.Name)
		s.addGlobal(res.All)
		rel = filtered(namedTable(res.All, nil), node.Keep)
	}
	if err := s.createView(ctx, op, s.prefix+"_"+sanitize(node.Name), rel, true); err != nil {
		return nil, err
	}
	s.addGlobal(res.View)
	if node.Describe {
		if res.Schema, err = s.Schema(ctx, res.View); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		if len(res.Schema) == 0 {
			return nil, permanent(op, "the query's result has no columns")
		}
	}
	names := node.Aliases
	if names == nil {
		if !s.isInput(node.Name) { // an input of that name wins; the output keys still work
			names = append(names, node.Name)
		}
		for _, out := range node.Outputs {
			if out.Key != "" {
				names = append(names, out.Key)
			}
		}
	}
	cached := ""
	if node.Cache {
		// Every row is computed once, by the first write: View's readers
		// filter what it cached.
		cached = res.All
	}
	if err := s.nameResult(ctx, res.View, node.Name, names, cached); err != nil {
		return nil, err
	}
	for i, out := range node.Outputs {
		r, err := s.WriteResult(ctx, res.View, out, OutputStep(node.Step, i, out))
		if err != nil {
			return nil, err
		}
		res.Outputs = append(res.Outputs, *r)
	}
	return res, nil
}

// Schema returns the columns of a view or table.
func (s *Session) Schema(ctx context.Context, view string) ([]Field, error) {
	op := "read the schema of " + view
	df, err := s.spark.Table(view)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	st, err := df.Schema(ctx)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	fields := make([]Field, len(st.Fields))
	for i, f := range st.Fields {
		fields[i] = Field{Name: f.Name, Type: f.DataType.TypeName(), Nullable: f.Nullable}
	}
	return fields, nil
}

// Cache keeps view in memory once it is first computed, for a result that
// several dependents read; Uncache releases it after the last one. It is
// CACHE LAZY TABLE's work asked as an analysis: one unary request, where
// the SQL command is an operation to run, stream and release, twice the
// time on a busy server.
//
// The level is Spark's default for a table, its MEMORY_AND_DISK, which
// keeps the cached batches as objects. spark-connect-go's (and PySpark's)
// constant of that name is the serialized level: the server would then
// serialize every batch it caches and read each one back for every
// reader. Its "deserialized" constant is Spark's level.
func (s *Session) Cache(ctx context.Context, view string) error {
	op := "cache " + view
	df, err := s.spark.Table(view)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	return s.fail(ctx, op, df.Persist(ctx, utils.StorageLevelMemoyAndDiskDeser))
}

// Uncache undoes Cache of the view's present plan: an unpersist, asked as
// an analysis as Cache's persist is (one unary request: 15 ms where UNCACHE
// TABLE, an operation to run, stream and release, took 35 ms on an idle
// server). A view that no longer exists has nothing cached to release. A
// view replaced since it was cached needs UncacheAll.
func (s *Session) Uncache(ctx context.Context, view string) error {
	op := "uncache " + view
	df, err := s.spark.Table(view)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	err = s.fail(ctx, op, df.Unpersist(ctx))
	var se *Error
	if errors.As(err, &se) && se.Class == "TABLE_OR_VIEW_NOT_FOUND" {
		return nil
	}
	return err
}

// UncacheAll releases every cache made of view under its name, whatever
// plan the view had then (UNCACHE TABLE): for a result made more than once.
func (s *Session) UncacheAll(ctx context.Context, view string) error {
	_, err := s.spark.Sql(ctx, "UNCACHE TABLE IF EXISTS "+view)
	return s.fail(ctx, "uncache "+view, err)
}

// OutputStep names the write of a node attempt's i-th output in the
// journal; "" when the attempt has no step name.
func OutputStep(attempt string, i int, out OutputSpec) string {
	if attempt == "" {
		return ""
	}
	return fmt.Sprintf("%s/write/%d/%s", attempt, i, out.Key)
}
