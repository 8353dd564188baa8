package store

import (
	"context"
	"fmt"
	"iter"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Watching a run, and why it is exactly-once
//
// A watcher subscribes to live events first and reads the log second.
// Every event is committed before it is published, so every event is in at
// least one of the two places the watcher looks: committed before the read
// (the read sees it) or published after the subscription (the buffer gets
// it). The watcher keeps the sequence it expects next and uses it to drop
// what it already has and to notice what it missed: a live event beyond
// the expected one means the buffer overflowed, or the events were
// published out of order, and the watcher reads the log from where it is.
// Publishing never blocks; an overflowing buffer raises a one-slot "missed"
// signal, so a watcher whose last events were dropped does not wait for a
// next event that may never come. A store whose events are committed
// elsewhere (another replica) raises the same signal with Poke, and the
// watcher reads them from the log.

// Log is what a Watcher reads besides the live events: a run's stored
// events.
type Log interface {
	// ReadLog returns up to limit events of the run from sequence from on
	// and, when that is all there is (fewer than limit), whether the run
	// has ended: both from one snapshot, so "ended" means "ended with
	// nothing after".
	ReadLog(ctx context.Context, runID string, from int64, limit int) (evs []run.Event, ended bool, err error)
	// Done is closed when the store closes.
	Done() <-chan struct{}
}

// Hub hands committed events to the watchers of their run.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
}

type subscriber struct {
	events chan run.Event
	missed chan struct{}
}

func (h *Hub) subscribe(runID string, buffer int) *subscriber {
	sub := &subscriber{events: make(chan run.Event, buffer), missed: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[string]map[*subscriber]struct{}{}
	}
	m := h.subs[runID]
	if m == nil {
		m = map[*subscriber]struct{}{}
		h.subs[runID] = m
	}
	m[sub] = struct{}{}
	return sub
}

func (h *Hub) unsubscribe(runID string, sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[runID], sub)
	if len(h.subs[runID]) == 0 {
		delete(h.subs, runID)
	}
}

// Count is how many watchers are subscribed.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.subs {
		n += len(m)
	}
	return n
}

// Publish offers committed events to their watchers without blocking.
func (h *Hub) Publish(evs []run.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		for sub := range h.subs[ev.RunID] {
			e := ev
			e.Error = cloneError(ev.Error) // watchers must not share it
			select {
			case sub.events <- e:
			default:
				sub.miss()
			}
		}
	}
}

// Poke tells the watchers of run id that events were committed that they
// will not receive live: they read the log.
func (h *Hub) Poke(runID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[runID] {
		sub.miss()
	}
}

// PokeAll tells every watcher to read the log.
func (h *Hub) PokeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for sub := range m {
			sub.miss()
		}
	}
}

func (s *subscriber) miss() {
	select {
	case s.missed <- struct{}{}:
	default:
	}
}

// Watcher streams one run's events: every event after the sequence given
// to NewWatcher, exactly once and in order, first from the log and then
// live. It ends after the run's terminal event, when its context ends, or
// when the store closes; Err tells which.
//
// A terminal event ends the stream only if no later event exists when the
// watcher gets to it. That later event can only be a repair reopening the
// run, so a watcher replaying a repaired run from the start reads through
// the first failure into the repair, while a live watcher normally ends at
// the failure (watch again with its last sequence to follow a repair).
//
// A Watcher is used by one goroutine. Ranging over Events again after a
// break resumes where the previous range stopped.
type Watcher struct {
	hub    *Hub
	log    Log
	buffer int
	ctx    context.Context
	runID  string
	next   int64 // the sequence owed to the consumer next
	done   bool
	err    error
	// fallbacks counts reads from the log after the live buffer missed
	// events; tests use it to prove that path runs.
	fallbacks int
}

// NewWatcher returns a Watcher of run id's events after sequence after,
// fed by hub and log, that may fall buffer live events behind before it
// reads the log instead. The store checks the run and after first.
func NewWatcher(ctx context.Context, hub *Hub, log Log, runID string, after int64, buffer int) *Watcher {
	return &Watcher{hub: hub, log: log, buffer: max(buffer, 1), ctx: ctx, runID: runID, next: after + 1}
}

// Err reports why the stream ended: nil after the run's terminal event,
// the context's error, ErrClosed, or a database error.
func (w *Watcher) Err() error { return w.err }

// Last is the sequence of the last event delivered (or the after given to
// Watch): the value to resume from.
func (w *Watcher) Last() int64 { return w.next - 1 }

// Fallbacks is how often the watcher read the log because live events
// were missed.
func (w *Watcher) Fallbacks() int { return w.fallbacks }

// Events yields the events. Live events are buffered per watcher while the
// range is running; a consumer slower than the run's writer falls back to
// the log and never slows the writer down.
func (w *Watcher) Events() iter.Seq[run.Event] {
	return func(yield func(run.Event) bool) {
		if w.done {
			return
		}
		sub := w.hub.subscribe(w.runID, w.buffer)
		defer w.hub.unsubscribe(w.runID, sub)
		if w.catchUp(yield) {
			return
		}
		for {
			select {
			case <-w.ctx.Done():
				w.finish(w.ctx.Err())
				return
			case <-w.log.Done():
				w.finish(ErrClosed)
				return
			case <-sub.missed:
				w.fallbacks++
				if w.catchUp(yield) {
					return
				}
			case ev := <-sub.events:
				switch {
				case ev.Sequence < w.next:
					// Already delivered from the log.
				case ev.Sequence > w.next:
					w.fallbacks++
					if w.catchUp(yield) {
						return
					}
				default:
					if !w.deliver(ev, yield) {
						return
					}
					// Whether the stream is over depends on whether a
					// repair has already followed; the log knows.
					if ev.Terminal() && w.catchUp(yield) {
						return
					}
				}
			}
		}
	}
}

// watchPage is how many events a watcher reads from the log at once.
const watchPage = 512

// catchUp delivers every stored event from w.next on. It reports whether
// the range must stop: the consumer broke off, the stream ended, or
// reading failed.
func (w *Watcher) catchUp(yield func(run.Event) bool) (stop bool) {
	for {
		evs, ended, err := w.log.ReadLog(w.ctx, w.runID, w.next, watchPage)
		if err != nil {
			w.finish(err)
			return true
		}
		for _, ev := range evs {
			if ev.Sequence < w.next {
				continue
			}
			if !w.deliver(ev, yield) {
				return true
			}
		}
		if len(evs) < watchPage {
			if ended {
				w.finish(nil)
			}
			return ended
		}
	}
}

// deliver hands ev, which must be the next in sequence, to the consumer and
// reports whether the consumer wants more.
func (w *Watcher) deliver(ev run.Event, yield func(run.Event) bool) bool {
	if ev.Sequence != w.next {
		w.finish(fmt.Errorf("store: run %s: expected event %d, got %d", w.runID, w.next, ev.Sequence))
		return false
	}
	w.next++
	return yield(ev)
}

func (w *Watcher) finish(err error) {
	if err != nil && w.ctx.Err() == nil {
		select {
		case <-w.log.Done():
			err = ErrClosed
		default:
		}
	}
	w.done, w.err = true, err
}

func cloneError(e *run.Error) *run.Error {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}
