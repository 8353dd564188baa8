package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Check asks Spark about a pipeline without running it: every input the
// pipeline reads is resolved (a missing path or a bad schema shows here),
// and every SQL node is analysed in plan order against its inputs and its
// upstream results, so an unknown column or a syntax error is reported with
// Spark's message before anything runs. Nothing is computed or written: a
// node's result is only defined as a view. Nodes downstream of a Python
// node are not analysed, since their inputs exist only once it has run.
func (b *Backend) Check(ctx context.Context, rc engine.RunContext) problem.List {
	if b.ready() != nil {
		return nil // the structural checks stand; Spark's wait for a run
	}
	rc.RunID = "check_" + newCheckID()
	r := &runExec{b: b, rc: rc, log: b.log, inputs: map[string]*inputOnce{}, byName: map[string]*plan.Node{}}
	for _, n := range rc.Pipeline.Nodes {
		r.byName[n.Name] = n
	}
	s, err := r.session(ctx)
	if err != nil {
		return problem.List{{Field: "spark", Code: problem.CodeUnavailable, Message: fmt.Sprintf("could not open a Spark session to check the pipeline: %v", err)}}
	}
	defer r.Close(context.WithoutCancel(ctx))

	var probs problem.List
	unknown := map[string]bool{} // nodes whose result Spark cannot know yet
	byName := r.byName
	for _, name := range rc.Pipeline.Plan.Order {
		n := byName[name]
		if n == nil {
			continue
		}
		// A streaming node's sources are resolved whatever its transform.
		blocked := n.Kind != plan.KindSQL && n.Stream == nil
		for _, d := range n.Dependencies {
			blocked = blocked || unknown[d]
		}
		if blocked {
			unknown[name] = true
			continue
		}
		if n.Stream != nil {
			probs = append(probs, r.checkStream(ctx, s, n)...)
			unknown[name] = true // its sink fills as the query runs
			continue
		}
		var names []string
		inputFailed := false
		for _, in := range n.InputSpecs {
			if in.Producer == "" {
				if err := r.registerInput(ctx, s, in.Read); err != nil {
					probs.Add(fmt.Sprintf("input.%s", in.Key), problem.CodePathNotFound, "input %q (read by node %q): %s", in.Key, name, sparkMessage(err))
					inputFailed = true
					continue
				}
			}
			names = append(names, in.Key)
		}
		if inputFailed {
			unknown[name] = true
			continue
		}
		res, err := s.RunSQL(ctx, sparkconnect.NodeSpec{Name: name, SQL: n.SQL, Inputs: names, Describe: true}, r.params())
		if err != nil {
			probs.Add(fmt.Sprintf("nodes.%s.sql", name), problem.CodeInvalidSQL, "Spark cannot analyse node %q's query: %s", name, sparkMessage(err))
			unknown[name] = true
			continue
		}
		if len(res.Schema) == 0 {
			probs.Add(fmt.Sprintf("nodes.%s.sql", name), problem.CodeInvalidSQL, "node %q's query returns no columns; select at least one", name)
		}
		probs = append(probs, checkExpectations(ctx, s, n, res.View)...)
		r.mu.Lock()
		r.ran[name] = true
		r.mu.Unlock()
	}
	return probs
}

// checkStream has Spark resolve a streaming node's sources and analyse its
// query (a SQL node's), without starting it.
func (r *runExec) checkStream(ctx context.Context, s *sparkconnect.Session, n *plan.Node) problem.List {
	var probs problem.List
	for _, src := range n.Stream.Sources {
		if src.Producer != "" || (src.Static && len(n.Dependencies) > 0) {
			// It reads what an upstream node writes (by key, or a table an
			// input entry points at behind an explicit dependency), which
			// may not exist before the run.
			return nil
		}
		if err := r.registerSource(ctx, s, src); err != nil {
			probs.Add(fmt.Sprintf("nodes.%s.input", n.Name), problem.CodePathNotFound, "node %q cannot read %q: %s", n.Name, src.Key, sparkMessage(err))
		}
	}
	if len(probs) > 0 || n.Kind != plan.KindSQL {
		return probs
	}
	if err := s.DefineView(ctx, n.Name+"__stream", n.SQL, r.params()); err != nil {
		probs.Add(fmt.Sprintf("nodes.%s.sql", n.Name), problem.CodeInvalidSQL, "Spark cannot analyse streaming node %q's query: %s", n.Name, sparkMessage(err))
		return probs
	}
	probs = append(probs, checkExpectations(ctx, s, n, n.Name+"__stream")...)
	return append(probs, checkChangeCapture(ctx, s, n, n.Name+"__stream")...)
}

// checkChangeCapture has Spark analyse the columns and the delete
// condition of n's cdc over its result view: a column the result lacks is
// reported at the field naming it.
func checkChangeCapture(ctx context.Context, s *sparkconnect.Session, n *plan.Node, view string) problem.List {
	c := n.Stream.Sink.CDC
	if c == nil {
		return nil
	}
	var probs problem.List
	column := func(field, col, role string) {
		if _, err := s.ExpressionType(ctx, view, quoteColumn(col)); err != nil {
			probs.Add(field, problem.CodeInvalidSQL, "cdc %s %q is not a column of node %q's result (%s); name one of the columns its query selects",
				role, col, n.Name, sparkMessage(err))
		}
	}
	for i, k := range c.Keys {
		column(fmt.Sprintf("%s.keys[%d]", c.Field, i), k, "key")
	}
	column(c.Field+".sequence_by", c.SequenceBy, "sequence_by column")
	for i, x := range c.ExceptColumns {
		column(fmt.Sprintf("%s.except_columns[%d]", c.Field, i), x, "except_columns entry")
	}
	if c.ApplyAsDeletes == "" {
		return probs
	}
	switch typ, err := s.ExpressionType(ctx, view, c.ApplyAsDeletes); {
	case err != nil:
		probs.Add(c.Field+".apply_as_deletes", problem.CodeInvalidSQL, "cdc apply_as_deletes of node %q: Spark cannot analyse it over the node's result: %s", n.Name, sparkMessage(err))
	case !sparkconnect.IsBoolean(typ):
		probs.Add(c.Field+".apply_as_deletes", problem.CodeInvalidSQL, "cdc apply_as_deletes %q of node %q is a %s, not a boolean; write a condition such as \"op = 'D'\"", c.ApplyAsDeletes, n.Name, typ)
	}
	return probs
}

func sparkMessage(err error) string {
	var se *sparkconnect.Error
	if errors.As(err, &se) {
		if se.Class != "" {
			return fmt.Sprintf("[%s] %s", se.Class, se.Message)
		}
		return se.Message
	}
	return err.Error()
}

// checkExpectations has Spark analyse n's expectation conditions and the
// columns its checks name over its result view: an unknown column, a
// syntax error or a condition that is not boolean is reported at the
// field it was written in.
func checkExpectations(ctx context.Context, s *sparkconnect.Session, n *plan.Node, view string) problem.List {
	var probs problem.List
	for _, x := range n.Expectations {
		typ, err := s.ExpressionType(ctx, view, x.Condition)
		switch {
		case err != nil:
			probs.Add(x.Field, problem.CodeInvalidSQL, "expectation %q of node %q: Spark cannot analyse its condition over the node's result: %s", x.Name, n.Name, sparkMessage(err))
		case !sparkconnect.IsBoolean(typ):
			probs.Add(x.Field, problem.CodeInvalidSQL, "expectation %q of node %q: the condition %q is a %s, not a boolean; write a comparison such as 'amount > 0'", x.Name, n.Name, x.Condition, typ)
		}
	}
	for _, c := range n.Checks {
		for _, col := range c.Columns {
			expr := quoteColumn(col)
			if c.Kind == plan.CheckFreshness {
				expr = "CAST(" + expr + " AS TIMESTAMP)"
			}
			if _, err := s.ExpressionType(ctx, view, expr); err != nil {
				probs.Add(c.Field, problem.CodeInvalidSQL, "check %q of node %q: column %q cannot be read as the check needs: %s", c.Name, n.Name, col, sparkMessage(err))
			}
		}
	}
	return probs
}
