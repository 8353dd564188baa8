package backend

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// clearStream does what the run's full_refresh or reset_checkpoint asks of
// streaming node n before its query starts, and records it (the engine
// then never clears n again in this run). It returns n's sources, a Kafka
// one given startingOffsets after a reset.
//
// A reset moves the checkpoint aside before reading it and deletes it only
// once the clear is recorded: an execd killed in between finds the moved
// folder and reads the same offsets, where deleting first would lose them.
func (r *runExec) clearStream(n *plan.Node, emit func(run.Event)) ([]plan.StreamSource, error) {
	spec := n.Stream
	if spec.Clear == "" {
		return spec.Sources, nil
	}
	if sources, ok := r.clearedBefore(n.Name); ok {
		return sources, nil
	}
	ckpt := localPath(spec.Checkpoint)
	switch spec.Clear {
	case plan.ClearFullRefresh:
		paths, data := []string{ckpt, localPath(spec.Sink.Path)}, "the sink's data at "+spec.Sink.Path
		if q := n.Quarantine; q != nil {
			// The rows it holds are quarantined again as the sources are reprocessed.
			paths, data = append(paths, localPath(q.Path)), data+" and the quarantine at "+q.Path
		}
		for _, p := range paths {
			if err := os.RemoveAll(p); err != nil {
				return nil, clearFailure(n, err)
			}
		}
		r.markCleared(n.Name, spec.Sources)
		emit(run.Event{Kind: run.NodeMessage, Level: "info", Cleared: string(plan.ClearFullRefresh),
			Message: fmt.Sprintf("full refresh: deleted the checkpoint %s and %s; the query reprocesses its sources from their start", spec.Checkpoint, data)})
		return spec.Sources, nil
	case plan.ClearCheckpoint:
		aside := ckpt + ".reset-" + r.rc.RunID
		if err := os.Rename(ckpt, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, clearFailure(n, err)
		}
		offsets, batch, err := committedOffsets(aside)
		if err != nil {
			return nil, clearFailure(n, err)
		}
		sources, err := startAt(spec.Sources, offsets)
		if err != nil {
			return nil, clearFailure(n, err)
		}
		msg := fmt.Sprintf("checkpoint reset: deleted the checkpoint %s, kept the sink's data; ", spec.Checkpoint)
		if batch < 0 {
			msg += "it had committed no batch, so the query starts as its sources are configured"
		} else {
			msg += fmt.Sprintf("the query starts after batch %d, the last it had committed (%s)", batch, strings.Join(offsets, ", "))
		}
		r.markCleared(n.Name, sources)
		emit(run.Event{Kind: run.NodeMessage, Level: "info", Cleared: string(plan.ClearCheckpoint), Message: msg})
		if err := os.RemoveAll(aside); err != nil {
			r.log.Warn("deleting a reset checkpoint", "node", n.Name, "path", aside, "err", err)
		}
		return sources, nil
	}
	return spec.Sources, nil
}

// clearedBefore returns the sources of node when an earlier attempt of
// this execution cleared it.
func (r *runExec) clearedBefore(node string) ([]plan.StreamSource, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sources, ok := r.cleared[node]
	return sources, ok
}

func (r *runExec) markCleared(node string, sources []plan.StreamSource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cleared == nil {
		r.cleared = map[string][]plan.StreamSource{}
	}
	r.cleared[node] = sources
}

// clearFailure fails the node without starting its query: nothing was
// recorded as cleared, so a retry clears again.
func clearFailure(n *plan.Node, err error) error {
	return &retry.Failure{Err: run.Error{Type: "ClearFailed",
		Message: fmt.Sprintf("streaming node %q: %s of its checkpoint failed: %v", n.Name, n.Stream.Clear, err)}}
}

// localPath is p (a plain or file: path, as planning checked) as a path of
// this file system.
func localPath(p string) string {
	if u, err := url.Parse(p); err == nil && u.Scheme == "file" {
		return filepath.FromSlash(u.Path)
	}
	return p
}

// committedOffsets reads a checkpoint's last committed batch (commits/<n>)
// and the end offsets of its sources for it (offsets/<n>: a version line,
// the batch's metadata, then one line per source in the query's order).
// A missing checkpoint, or one with no commit, is batch -1.
func committedOffsets(ckpt string) (offsets []string, batch int64, err error) {
	batch = -1
	entries, err := os.ReadDir(filepath.Join(ckpt, "commits"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, -1, nil
	}
	if err != nil {
		return nil, -1, err
	}
	for _, e := range entries {
		if b, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && b > batch {
			batch = b
		}
	}
	if batch < 0 {
		return nil, -1, nil
	}
	f, err := os.Open(filepath.Join(ckpt, "offsets", strconv.FormatInt(batch, 10)))
	if err != nil {
		return nil, -1, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 0; sc.Scan(); line++ {
		if line >= 2 {
			offsets = append(offsets, sc.Text())
		}
	}
	return offsets, batch, sc.Err()
}

// startAt gives each Kafka source the committed end offsets of the topics
// it subscribes to as startingOffsets. Planning let only Kafka streams
// through; with one stream its offsets are the one line, with several
// each line goes to the source subscribed to its topics.
func startAt(sources []plan.StreamSource, offsets []string) ([]plan.StreamSource, error) {
	if len(offsets) == 0 {
		return sources, nil
	}
	out := slices.Clone(sources)
	var streams []int
	for i, s := range out {
		if !s.Static {
			streams = append(streams, i)
		}
	}
	for _, line := range offsets {
		var byTopic map[string]map[string]int64
		if err := json.Unmarshal([]byte(line), &byTopic); err != nil {
			return nil, fmt.Errorf("the old checkpoint's offsets %s are not Kafka offsets: %v", line, err)
		}
		i, err := offsetsOwner(out, streams, byTopic)
		if err != nil {
			return nil, err
		}
		opts := maps.Clone(out[i].Options)
		if opts == nil {
			opts = map[string]string{}
		}
		opts["startingOffsets"] = line
		out[i].Options = opts
	}
	return out, nil
}

// offsetsOwner is the stream source that reads the topics of one line of
// offsets.
func offsetsOwner(sources []plan.StreamSource, streams []int, byTopic map[string]map[string]int64) (int, error) {
	if len(streams) == 1 {
		return streams[0], nil
	}
	for _, i := range streams {
		subscribed := strings.Split(sources[i].Options["subscribe"], ",")
		for j := range subscribed {
			subscribed[j] = strings.TrimSpace(subscribed[j])
		}
		all := true
		for t := range byTopic {
			all = all && slices.Contains(subscribed, t)
		}
		if all {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no Kafka source of the node subscribes (options.subscribe) to every topic of the old checkpoint's offsets %v; use full_refresh instead", slices.Collect(maps.Keys(byTopic)))
}
