package connect

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
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
	// Cache keeps the result once computed (by the first write, or by the
	// first dependent), so dependents do not compute it again. The caller
	// uncaches it after its last dependent.
	Cache bool
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
	View    string
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
// keeps the result as the node's global view and as session views named
// after the node and each of its output keys, and writes the outputs. The
// query is analysed before anything is written: an error in it fails here,
// permanently, with Spark's message. Nothing is computed twice unless an
// output needs it: the view is a plan, each write runs it.
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
	if err := s.createView(ctx, op, s.prefix+"_"+sanitize(node.Name), rel, true); err != nil {
		return nil, err
	}
	s.addGlobal(res.View)
	if res.Schema, err = s.Schema(ctx, res.View); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	if len(res.Schema) == 0 {
		return nil, permanent(op, "the query's result has no columns")
	}
	var names []string
	if !s.isInput(node.Name) { // an input of that name wins; the output keys still work
		names = append(names, node.Name)
	}
	for _, out := range node.Outputs {
		if out.Key != "" {
			names = append(names, out.Key)
		}
	}
	for _, name := range names {
		if err := s.Alias(ctx, name, res.View); err != nil {
			return nil, err
		}
	}
	if node.Cache {
		if err := s.Cache(ctx, res.View); err != nil {
			return nil, err
		}
	}
	for _, out := range node.Outputs {
		r, err := s.WriteOutput(ctx, res.View, out)
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
// several dependents read; Uncache releases it after the last one.
func (s *Session) Cache(ctx context.Context, view string) error {
	_, err := s.spark.Sql(ctx, "CACHE LAZY TABLE "+view)
	return s.fail(ctx, "cache "+view, err)
}

// Uncache undoes Cache.
func (s *Session) Uncache(ctx context.Context, view string) error {
	_, err := s.spark.Sql(ctx, "UNCACHE TABLE IF EXISTS "+view)
	return s.fail(ctx, "uncache "+view, err)
}

// bindAlias names the placeholder reference of a parameterized query (see
// sqlRelation); the server makes it a temporary view for the moment it
// parses the query.
const bindAlias = "__tauro_bind_parameters"

// sqlRelation is a SQL relation with params as named arguments.
//
// A parameterized query is sent as the root of a WithRelations with one
// placeholder reference, the form PySpark uses for spark.sql with DataFrame
// arguments. The server parses that form with SparkSession.sql, which binds
// the parameters in the analyzer under the session default
// spark.sql.legacy.parameterSubstitution.constantsOnly=true; a bare SQL
// relation goes straight to the session's parser, and Delta Lake's parser
// drops the parameters (delta-io/delta#7640).
func sqlRelation(query string, params map[string]any) (obj, error) {
	rel := obj{"query": query}
	if len(params) == 0 {
		return obj{"sql": rel}, nil
	}
	args := obj{}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		lit, err := literal(params[k])
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", k, err)
		}
		args[k] = obj{"literal": lit}
	}
	rel["namedArguments"] = args
	placeholder := obj{"subqueryAlias": obj{"input": obj{"range": obj{"end": "1", "step": "1"}}, "alias": bindAlias}}
	return obj{"withRelations": obj{"root": obj{"sql": rel}, "references": []obj{placeholder}}}, nil
}

// literal is v as a Spark Connect literal. A time.Time at midnight UTC is a
// DATE, any other a TIMESTAMP.
func literal(v any) (obj, error) {
	switch x := v.(type) {
	case nil:
		return obj{"null": obj{"null": obj{}}}, nil
	case string:
		return obj{"string": x}, nil
	case bool:
		return obj{"boolean": x}, nil
	case int:
		return obj{"long": strconv.Itoa(x)}, nil
	case int32:
		return obj{"integer": x}, nil
	case int64:
		return obj{"long": strconv.FormatInt(x, 10)}, nil
	case float64:
		return obj{"double": x}, nil
	case time.Time:
		u := x.UTC()
		if u.Equal(u.Truncate(24 * time.Hour)) {
			return obj{"date": u.Unix() / 86400}, nil
		}
		return obj{"timestamp": strconv.FormatInt(u.UnixMicro(), 10)}, nil
	}
	return nil, fmt.Errorf("a %T cannot be a SQL parameter; use a string, number, bool or time.Time", v)
}
