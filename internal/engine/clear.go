package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// A run's full_refresh and reset_checkpoint delete a streaming node's
// checkpoint (and sink) before its query starts. Deleting under a query
// that writes there would corrupt it, so such a run is refused while
// another one that writes there executes or waits; and the clear is done
// once per run: the backend records it (run.Event.Cleared) before the
// query starts, and a repair or a restart skips what is recorded.

// clearLocations are the folders p's clears delete.
func clearLocations(p *plan.Pipeline) []string {
	var out []string
	for _, n := range p.Nodes {
		if n.Stream == nil || n.Stream.Clear == "" {
			continue
		}
		out = append(out, strings.TrimRight(filepath.ToSlash(n.Stream.Checkpoint), "/"))
		if n.Stream.Clear == plan.ClearFullRefresh {
			out = append(out, strings.TrimRight(filepath.ToSlash(n.Stream.Sink.Path), "/"))
		}
	}
	return out
}

// clearConflictLocked names the run, executing or queued on this replica,
// that writes where p clears; "" when none. e.mu is held.
func (e *Engine) clearConflictLocked(p *plan.Pipeline) string {
	clears := clearLocations(p)
	if len(clears) == 0 {
		return ""
	}
	ids := make([]string, 0, len(e.active))
	for id := range e.active {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if loc, ok := overlap(clears, e.active[id].writes); ok {
			return fmt.Sprintf("run %s is RUNNING and writes %s", id, loc)
		}
	}
	for _, t := range e.queue {
		if loc, ok := overlap(clears, t.writes); ok {
			return fmt.Sprintf("run %s is QUEUED and writes %s", t.id, loc)
		}
	}
	return ""
}

// skipDoneClears drops from p the clears the run's events record as done,
// so that a repair or a run taken up after a restart does not clear a
// sink the query has written since. When the events cannot be read, no
// clear is done: deleting twice loses data, not clearing only keeps it.
func (e *Engine) skipDoneClears(ctx context.Context, lease store.Lease, p *plan.Pipeline, log *slog.Logger) {
	if len(clearLocations(p)) == 0 {
		return
	}
	done, err := e.clearedNodes(ctx, lease.RunID)
	if err != nil {
		log.Warn("reading which nodes the run has cleared; clearing none", "err", err)
		if _, err := e.opt.Store.AppendAs(ctx, lease, run.Event{Kind: run.RunMessage, Level: "warning",
			Message: "full_refresh and reset_checkpoint are not done in this execution: what the run cleared before could not be read (" + err.Error() + ")"}); err != nil {
			log.Warn("recording that no clear is done", "err", err)
		}
	}
	for _, n := range p.Nodes {
		if n.Stream != nil && (err != nil || done[n.Name]) {
			n.Stream.Clear = ""
		}
	}
}

// clearedNodes are the nodes whose clear the run's events record.
func (e *Engine) clearedNodes(ctx context.Context, runID string) (map[string]bool, error) {
	const page = 1000
	done := map[string]bool{}
	for after := int64(0); ; {
		evs, err := e.opt.Store.Events(ctx, runID, after, page)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if ev.Kind == run.NodeMessage && ev.Cleared != "" {
				done[ev.Node] = true
			}
			after = ev.Sequence
		}
		if len(evs) < page {
			return done, nil
		}
	}
}
