package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// What a Python node needs of the run's session: its inputs as global views
// (the worker has a session of its own) and its result, a global view the
// worker made or this session made from the worker's plan (TakeResult),
// taken in as if RunSQL had made it.

// ResultName is the unqualified name of node's global result view; the
// qualified one is ResultView(node). A Python worker creates it, or
// TakeResult.
func (s *Session) ResultName(node string) string { return s.prefix + "_" + sanitize(node) }

// Share makes the session view name (an input, a result read back from an
// earlier execution) readable by every session of the server and returns
// the global view's qualified name, global_temp.tauro_<run>__in__<name>.
func (s *Session) Share(ctx context.Context, name string) (string, error) {
	op := "share " + name
	if err := s.check(op); err != nil {
		return "", err
	}
	bare := s.sharedName(name)
	if err := s.createView(ctx, op, bare, namedTable(quote(name), nil), true); err != nil {
		return "", err
	}
	view := s.SharedView(name)
	s.addGlobal(view)
	return view, nil
}

// SharedView is the qualified name Share gives the session view name.
func (s *Session) SharedView(name string) string { return "global_temp." + quote(s.sharedName(name)) }

func (s *Session) sharedName(name string) string { return s.prefix + "__in__" + sanitize(name) }

// UnfilteredName is the unqualified name of the global view holding every
// row of node's result when its result view keeps only some (see
// NodeSpec.Keep and KeepResult).
func (s *Session) UnfilteredName(node string) string { return s.ResultName(node) + "__all" }

// UnfilteredView is UnfilteredName(node) qualified.
func (s *Session) UnfilteredView(node string) string {
	return "global_temp." + quote(s.UnfilteredName(node))
}

// Own makes Close drop view, a global view of this run's a Python worker
// made (ResultView or UnfilteredView) whose result may never be taken in.
func (s *Session) Own(view string) { s.addGlobal(view) }

// KeepResult makes node's result view the rows of UnfilteredName(node) (a
// view a Python worker made) that meet keep, as RunSQL does for a
// NodeSpec.Keep, and returns the unfiltered view's qualified name, to
// write outputs from.
func (s *Session) KeepResult(ctx context.Context, node, keep string) (string, error) {
	op := "keep the rows of node " + node
	if err := s.check(op); err != nil {
		return "", err
	}
	all := s.UnfilteredView(node)
	s.addGlobal(all)
	if err := s.createView(ctx, op, s.ResultName(node), filtered(namedTable(all, nil), keep), true); err != nil {
		return "", err
	}
	return all, nil
}

// AdoptResult takes node's global result view, made by a Python worker or
// by TakeResult, as
// RunSQL takes a SQL node's: node SQL reads it by each of aliases (the
// node's name unless an input has that name, its output keys: what its
// dependents read), it is cached when cache is set, and Close drops it. It
// returns the view's qualified name, to write outputs from.
func (s *Session) AdoptResult(ctx context.Context, node string, aliases []string, cache bool) (string, error) {
	op := "take the result of node " + node
	if err := s.check(op); err != nil {
		return "", err
	}
	view := s.ResultView(node)
	s.addGlobal(view)
	cached := ""
	if cache {
		cached = view
	}
	if err := s.nameResult(ctx, view, node, aliases, cached); err != nil {
		return "", err
	}
	return view, nil
}

// nameResult makes node's result view readable by node SQL under each of
// names (an input of the node's name keeps that name) and, when cache is
// set, keeps it in memory once it is first computed. The requests do not
// depend on each other, so they are sent together; all have ended when it
// returns, and the first failure in that order is returned. cache is the
// view to keep: view itself, or the unfiltered rows it keeps some of (so
// that the write that computes them fills the cache its readers use).
func (s *Session) nameResult(ctx context.Context, view, node string, names []string, cache string) error {
	var steps []func() error
	for _, name := range names {
		if name == "" || (name == node && s.isInput(node)) {
			continue
		}
		steps = append(steps, func() error { return s.Alias(ctx, name, view) })
	}
	if cache != "" {
		steps = append(steps, func() error { return s.Cache(ctx, cache) })
	}
	for _, err := range together(steps) {
		if err != nil {
			return err
		}
	}
	return nil
}

// together runs steps at once, each request in flight beside the others,
// and returns their errors in order once all have ended.
func together(steps []func() error) []error {
	errs := make([]error, len(steps))
	if len(steps) == 1 {
		errs[0] = steps[0]()
		return errs
	}
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = step()
		}()
	}
	wg.Wait()
	return errs
}

// errNoColumns is a handed plan whose result has no columns: the worker,
// which refuses it with the node's own error, is asked to publish it.
var errNoColumns = errors.New("the result has no columns")

// TakeResult makes name, the unqualified global view of node's result
// (ResultName or UnfilteredName), from the plan a Python worker handed back
// (pycall.Call.TakePlan), with what AdoptResult would do next when aliases
// or cache are given: each alias a view of the same plan, and the plan
// cached. The view, the aliases, the cache and the schema, which must have
// columns, are asked together: one round trip to Spark where the worker
// making the view and AdoptResult took two. On any failure what was made
// is undone, and the first error in that order is returned; AdoptResult
// then still has everything to do.
func (s *Session) TakeResult(ctx context.Context, node, name, planJSON string, aliases []string, cache bool) error {
	op := "take the plan of node " + node + "'s result"
	if err := s.check(op); err != nil {
		return err
	}
	rel, err := handedRelation(planJSON)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var names []string
	for _, alias := range aliases {
		if alias != "" && (alias != node || !s.isInput(node)) {
			names = append(names, alias)
		}
	}
	view := "global_temp." + quote(name)
	steps := []func() error{
		func() error { return s.createView(ctx, op, name, rel, true) },
		func() error {
			resp, err := s.ask(ctx, analyzePlanRequest(s.sessionID(), s.remote.user, schemaAnalysis(rel)))
			if err != nil {
				return s.fail(ctx, op, err)
			}
			if n, err := schemaFields(resp); err != nil || n == 0 {
				return errors.Join(errNoColumns, err)
			}
			return nil
		},
	}
	for _, alias := range names {
		steps = append(steps, func() error { return s.createView(ctx, op, alias, rel, false) })
	}
	if cache {
		steps = append(steps, func() error {
			_, err := s.ask(ctx, analyzePlanRequest(s.sessionID(), s.remote.user, persistAnalysis(rel)))
			return s.fail(ctx, op, err)
		})
	}
	errs := together(steps)
	if err := errors.Join(errs...); err == nil {
		s.addGlobal(view)
		for _, alias := range names {
			s.addView(alias)
		}
		return nil
	}
	// Undone whatever ctx's state: what is left would be read as the result.
	undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var drop []string
	if errs[0] == nil {
		drop = append(drop, view)
	}
	for i, alias := range names {
		if errs[2+i] == nil {
			drop = append(drop, quote(alias))
		}
	}
	if cache && errs[len(errs)-1] == nil {
		if _, err := s.ask(undo, analyzePlanRequest(s.sessionID(), s.remote.user, unpersistAnalysis(rel))); err != nil {
			s.log.Warn("releasing the cache of a result plan that could not be taken", "node", node, "err", err)
		}
	}
	for _, v := range drop {
		if _, err := s.spark.Sql(undo, "DROP VIEW IF EXISTS "+v); err != nil {
			s.log.Warn("dropping the view of a result plan that could not be taken", "node", node, "view", v, "err", err)
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// schemaFields is how many columns an AnalyzePlan schema response has.
func schemaFields(resp proto.Message) (int, error) {
	b, err := protojson.Marshal(resp)
	if err != nil {
		return 0, err
	}
	var r struct {
		Schema struct {
			Schema struct {
				Struct *struct {
					Fields []json.RawMessage `json:"fields"`
				} `json:"struct"`
			} `json:"schema"`
		} `json:"schema"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, err
	}
	if r.Schema.Schema.Struct == nil {
		return 0, errors.New("the schema is not a struct")
	}
	return len(r.Schema.Schema.Struct.Fields), nil
}
