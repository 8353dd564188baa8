package connect

import (
	"context"
	"sync"
)

// What a Python node needs of the run's session: its inputs as global views
// (the worker has a session of its own) and its result, a global view the
// worker made, taken in as if RunSQL had made it.

// ResultName is the unqualified name of node's global result view; the
// qualified one is ResultView(node). A Python worker creates it.
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

// AdoptResult takes node's global result view, made by a Python worker, as
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
	if len(steps) == 1 {
		return steps[0]()
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = step()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
