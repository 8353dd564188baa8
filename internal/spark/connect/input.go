package connect

import (
	"context"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// InputSpec is one input of a run as planning resolved it from the input
// config: paths interpolated and made absolute.
type InputSpec = plan.InputSpec

// RegisterInput makes in readable by node SQL as a session view named
// in.Key; a query input binds params (the run's dates). File inputs are
// read with the schema and options given, as DataFrameReader would; Spark
// resolves the source at once, so a missing path or a bad schema fails
// here with Spark's message.
func (s *Session) RegisterInput(ctx context.Context, in InputSpec, params map[string]any) error {
	op := "register input " + in.Key
	rel, err := s.inputView(op, in, params)
	if err != nil {
		return err
	}
	if err := s.createView(ctx, op, in.Key, rel, false); err != nil {
		return withSourceHint(err, in.Format)
	}
	s.addInput(in.Key)
	return nil
}

// RegisterShared makes in readable by every session of the server, as
// RegisterInput and then Share would, in one request and without a session
// view: for an input only Python nodes read (their workers have sessions of
// their own), which node SQL does not name. It returns the global view's
// qualified name, SharedView(in.Key); Close drops it.
func (s *Session) RegisterShared(ctx context.Context, in InputSpec, params map[string]any) (string, error) {
	op := "register input " + in.Key
	rel, err := s.inputView(op, in, params)
	if err != nil {
		return "", err
	}
	if err := s.createView(ctx, op, s.sharedName(in.Key), rel, true); err != nil {
		return "", withSourceHint(err, in.Format)
	}
	view := s.SharedView(in.Key)
	s.addGlobal(view)
	return view, nil
}

// inputView is the relation a view of input in is made from.
func (s *Session) inputView(op string, in InputSpec, params map[string]any) (relation, error) {
	if err := s.check(op); err != nil {
		return nil, err
	}
	if in.Key == "" {
		return nil, permanent(op, "the input has no name")
	}
	rel, err := inputRelation(op, in, params)
	if err != nil {
		return nil, err
	}
	if in.Filter != "" {
		rel = filtered(rel, in.Filter)
	}
	return rel, nil
}

// inputRelation checks in and picks the relation that reads it.
func inputRelation(op string, in InputSpec, params map[string]any) (relation, error) {
	switch format := strings.ToLower(in.Format); format {
	case "table":
		if in.Table == "" {
			return nil, permanent(op, "format table needs a table name")
		}
		return namedTable(in.Table, in.Options), nil
	case "query":
		if strings.TrimSpace(in.Query) == "" {
			return nil, permanent(op, "format query needs a query")
		}
		return sqlRelation(in.Query, params)
	case "":
		return nil, permanent(op, "the input has no format; set one of parquet, csv, json, orc, avro, delta, table, query")
	default:
		if in.Path == "" {
			return nil, permanent(op, "format %s needs a path", format)
		}
		return dataSource(format, in.Path, in.Schema, in.Options), nil
	}
}

// createView makes rel a temporary view, global or of the session,
// replacing one of the same name.
func (s *Session) createView(ctx context.Context, op, name string, rel relation, global bool) error {
	_, err := s.execute(ctx, createDataframeView(name, rel, global))
	return s.fail(ctx, op, err)
}

// Alias makes the view source (a global view a Python worker made, say)
// readable by node SQL as name.
func (s *Session) Alias(ctx context.Context, name, source string) error {
	op := "alias " + name
	if err := s.check(op); err != nil {
		return err
	}
	if err := s.createView(ctx, op, name, namedTable(source, nil), false); err != nil {
		return err
	}
	s.addView(name)
	return nil
}
