package store

import (
	"context"
	"iter"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
)

// ExperimentWatcher streams one experiment's events after a sequence,
// exactly once and in order, until its terminal event, its context's end
// or the store's close; Err tells which. It has the shape of a run's
// Watcher: Events to range over, Err and Last after.
type ExperimentWatcher struct {
	ctx   context.Context
	s     Store
	id    string
	after int64
	// first is the page the watcher read when it was made.
	first         []experiment.Event
	ended         bool
	next          <-chan struct{}
	err           error
	done, started bool
}

// watchPageExperiment is how many events a watcher reads at once.
const watchPageExperiment = 512

// WatchExperiment returns a watcher of experiment id's events after
// sequence after. It fails at once, with ErrNotFound or
// ErrInvalidArgument, for an unknown experiment or a sequence outside its
// log.
func WatchExperiment(ctx context.Context, s Store, id string, after int64) (*ExperimentWatcher, error) {
	evs, ended, next, err := s.ExperimentEvents(ctx, id, after, watchPageExperiment)
	if err != nil {
		return nil, err
	}
	return &ExperimentWatcher{ctx: ctx, s: s, id: id, after: after, first: evs, ended: ended, next: next}, nil
}

// Err reports why the stream ended: nil after the terminal event.
func (w *ExperimentWatcher) Err() error { return w.err }

// Last is the sequence of the last event delivered.
func (w *ExperimentWatcher) Last() int64 { return w.after }

// Events yields the events.
func (w *ExperimentWatcher) Events() iter.Seq[experiment.Event] {
	return func(yield func(experiment.Event) bool) {
		if w.done {
			return
		}
		evs, ended, next := w.first, w.ended, w.next
		w.first = nil
		if w.started {
			var err error
			if evs, ended, next, err = w.s.ExperimentEvents(w.ctx, w.id, w.after, watchPageExperiment); err != nil {
				w.finish(err)
				return
			}
		}
		w.started = true
		for {
			for _, ev := range evs {
				w.after = ev.Sequence
				if !yield(ev) {
					return
				}
			}
			if ended {
				w.finish(nil)
				return
			}
			if len(evs) < watchPageExperiment {
				select {
				case <-next:
				case <-w.ctx.Done():
					w.finish(w.ctx.Err())
					return
				case <-w.s.Done():
					w.finish(ErrClosed)
					return
				}
			}
			var err error
			if evs, ended, next, err = w.s.ExperimentEvents(w.ctx, w.id, w.after, watchPageExperiment); err != nil {
				w.finish(err)
				return
			}
		}
	}
}

func (w *ExperimentWatcher) finish(err error) { w.done, w.err = true, err }
