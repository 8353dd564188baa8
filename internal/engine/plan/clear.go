package plan

import (
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// Clear is what a run deletes of a streaming node before its query
// starts, as the request's full_refresh and reset_checkpoint ask.
type Clear string

const (
	// ClearFullRefresh deletes the checkpoint and the sink's data: the
	// query rebuilds the sink from its sources' start.
	ClearFullRefresh Clear = "full_refresh"
	// ClearCheckpoint deletes only the checkpoint: the sink keeps its data
	// and the query starts where the old checkpoint had committed.
	ClearCheckpoint Clear = "reset_checkpoint"
)

// clearableSinks are the sink formats whose data is a folder execd can
// delete; a kafka topic, a table or a memory sink it cannot clear.
var clearableSinks = []string{"delta", "parquet", "json", "csv"}

// clearablePath reports whether execd can delete p itself: a path on its own
// file system, plain or file:, below the root. Object stores (s3a:,
// abfss:, ...) it cannot.
func clearablePath(p string) bool {
	local := p != "" && (!config.HasScheme(p) || strings.HasPrefix(p, "file:"))
	return local && strings.Trim(strings.TrimPrefix(p, "file:"), "/") != ""
}

// resolveClears marks the selected streaming nodes the request clears,
// reporting under full_refresh[i] and reset_checkpoint[i] a node that is
// not one of the run's streaming nodes, one named in both, and one whose
// sink or sources the clear cannot be done for.
func (r *resolver) resolveClears(out *Pipeline) {
	selected := make(map[string]*Node, len(out.Nodes))
	for _, n := range out.Nodes {
		selected[n.Name] = n
	}
	for i, name := range r.req.FullRefresh {
		f := "full_refresh[" + itoa(i) + "]"
		if n := r.clearTarget(f, "full_refresh", name, selected); n != nil {
			if slices.Contains(r.req.ResetCheckpoint, name) {
				r.add(f, problem.CodeInvalidValue, "node %s is in both full_refresh and reset_checkpoint; a full refresh resets the checkpoint too, so name it in one of them", q(name))
				continue
			}
			r.checkRefreshable(f, n)
			n.Stream.Clear = ClearFullRefresh
		}
	}
	for i, name := range r.req.ResetCheckpoint {
		f := "reset_checkpoint[" + itoa(i) + "]"
		if slices.Contains(r.req.FullRefresh, name) {
			continue // reported under full_refresh
		}
		if n := r.clearTarget(f, "reset_checkpoint", name, selected); n != nil {
			r.checkResettable(f, n)
			n.Stream.Clear = ClearCheckpoint
		}
	}
}

// clearTarget is the selected streaming node name, or nil after
// reporting under f (an entry of the request's list) why it is not one.
func (r *resolver) clearTarget(f, list, name string, selected map[string]*Node) *Node {
	if _, ok := r.byName[name]; !ok {
		r.add(f, problem.CodeInvalidValue, "pipeline %s has no node %s; its nodes are %s", q(r.name), q(name), joinPlain(r.nodeNames(), 20))
		return nil
	}
	n, ok := selected[name]
	if !ok {
		r.add(f, problem.CodeInvalidValue, "node %s is not in the run's selection; select it too or leave it out of %s", q(name), list)
		return nil
	}
	if n.Stream == nil {
		r.add(f, problem.CodeInvalidValue, "node %s is a batch node; only streaming nodes have a checkpoint to clear (a batch node rewrites its output on every run)", q(name))
		return nil
	}
	return n
}

// checkRefreshable reports a sink a full refresh cannot clear.
func (r *resolver) checkRefreshable(f string, n *Node) {
	sink := n.Stream.Sink
	switch {
	case !slices.Contains(clearableSinks, sink.Format):
		r.add(f, problem.CodeInvalidValue, "node %s writes a %s sink, which execd cannot clear; clear it yourself and use reset_checkpoint, or write to one of %s",
			q(n.Name), sink.Format, strings.Join(clearableSinks, ", "))
	case sink.Path == "":
		r.add(f, problem.CodeInvalidValue, "node %s writes a table, not a path, which execd cannot clear; give its output a path", q(n.Name))
	case !clearablePath(sink.Path) || !clearablePath(n.Stream.Checkpoint):
		r.add(f, problem.CodeInvalidValue, "node %s writes %s with checkpoint %s; execd clears only paths on its own file system (plain or file:)",
			q(n.Name), sink.Path, n.Stream.Checkpoint)
	}
}

// checkResettable reports a node whose query could not start where its
// old checkpoint had committed: only Kafka sources take starting offsets.
// A rate source always starts at 0, and a file or Delta stream would read
// every file (every version) again, duplicating the sink's data.
func (r *resolver) checkResettable(f string, n *Node) {
	if !clearablePath(n.Stream.Checkpoint) {
		r.add(f, problem.CodeInvalidValue, "node %s has checkpoint %s; execd resets only checkpoints on its own file system (plain or file:)", q(n.Name), n.Stream.Checkpoint)
		return
	}
	for _, src := range n.Stream.Sources {
		if !src.Static && src.Format != "kafka" {
			r.add(f, problem.CodeInvalidValue, "node %s reads a %s stream (%s), which cannot start where the old checkpoint had committed, so a reset would reprocess it from its start; use full_refresh to rebuild the sink instead",
				q(n.Name), src.Format, src.Key)
			return
		}
	}
}
