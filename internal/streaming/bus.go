package streaming

import (
	"context"
	"errors"
	"sync"
	"time"

	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Listener is a session's streaming query listener bus
// (sparkconnect.Session.ListenQueries): one stream of the events of every
// query of the session.
type Listener interface {
	ListenQueries(ctx context.Context, added func(), each func(sparkconnect.QueryEvent)) error
}

// bus shares one listener stream among the queries of a session and hands
// each query's events to that query's follower. It is opened by the first
// follower of the session and ends with the last (see listen).
//
// A stream that drops is opened again, after a pause that grows while it
// keeps dropping; meanwhile the followers poll (see follower.onNotes), and
// once it is back each follower recovers the batches it missed from its
// query's recent progress. A server without the bus (ErrNoListenerBus)
// leaves the followers polling for good.
type bus struct {
	src    Listener
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	refs  int
	up    bool
	subs  map[sparkconnect.QueryID]*inbox
	drop  context.CancelFunc // ends the stream now open, for dropStream
	ended error              // why the bus ended for good, nil while it runs
}

// buses holds the bus of each session that has a followed query, keyed by
// the session (a *sparkconnect.Session: a pointer, so comparable), and
// the end of each bus that is closing, which a new bus of the session
// waits for: the server keeps one listener per session, and the old bus's
// removal of its own must not remove the new one's.
var buses = struct {
	sync.Mutex
	of      map[Listener]*bus
	closing map[Listener]chan struct{}
}{of: map[Listener]*bus{}, closing: map[Listener]chan struct{}{}}

// listen subscribes query id to the events of src's bus, opening the bus
// for the session's first query. The inbox receives, in order: noteUp each
// time the stream is open (at once when it is already), the query's events
// while it is, noteDown each time it is not. release ends the
// subscription, and the bus with the session's last one.
func listen(src Listener, id sparkconnect.QueryID) (in *inbox, release func()) {
	buses.Lock()
	b := buses.of[src]
	if b == nil {
		ctx, cancel := context.WithCancel(context.Background())
		b = &bus{src: src, cancel: cancel, done: make(chan struct{}), subs: map[sparkconnect.QueryID]*inbox{}}
		buses.of[src] = b
		go b.run(ctx, buses.closing[src])
	}
	b.refs++
	buses.Unlock()

	in = newInbox()
	b.mu.Lock()
	b.subs[id] = in
	switch {
	case b.up:
		in.put(note{kind: noteUp})
	case b.ended != nil:
		in.put(note{kind: noteDown, err: b.ended})
	}
	b.mu.Unlock()
	return in, func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
		buses.Lock()
		b.refs--
		last := b.refs == 0
		if last {
			delete(buses.of, src)
			buses.closing[src] = b.done
		}
		buses.Unlock()
		if !last {
			return
		}
		b.cancel()
		<-b.done // the server-side listener is removed before the session may close
		buses.Lock()
		if buses.closing[src] == b.done {
			delete(buses.closing, src)
		}
		buses.Unlock()
	}
}

// Pauses between two openings of a dropped stream: the first, and the
// most it grows to while the stream keeps dropping.
const (
	reopenFirst = 100 * time.Millisecond
	reopenMost  = 10 * time.Second
)

// run keeps the stream open until ctx ends, once the session's previous
// bus, if it is closing, has ended.
func (b *bus) run(ctx context.Context, previous <-chan struct{}) {
	defer close(b.done)
	if previous != nil {
		<-previous
	}
	pause := reopenFirst
	for {
		stream, drop := context.WithCancel(ctx)
		b.mu.Lock()
		b.drop = drop
		b.mu.Unlock()
		opened := time.Now()
		err := b.src.ListenQueries(stream, b.opened, b.dispatch)
		drop()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, sparkconnect.ErrNoListenerBus) {
			b.closed(err, true)
			return
		}
		b.closed(err, false)
		if time.Since(opened) > time.Minute {
			pause = reopenFirst // it had been open a while: this drop is a new one
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, reopenMost)
	}
}

// opened tells every follower the stream is open.
func (b *bus) opened() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up = true
	for _, in := range b.subs {
		in.put(note{kind: noteUp})
	}
}

// closed tells every follower the stream is not open, for good when final.
func (b *bus) closed(err error, final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		err = errors.New("the listener stream ended")
	}
	wasUp := b.up
	b.up = false
	if final {
		b.ended = err
	}
	if !wasUp && !final {
		return // they were told when it dropped, or were never told it opened
	}
	for _, in := range b.subs {
		in.put(note{kind: noteDown, err: err})
	}
}

// dispatch hands an event to its query's follower; events of queries no
// one follows here (another node's that ended, a query started outside
// tauro-exec in the session) are dropped.
func (b *bus) dispatch(e sparkconnect.QueryEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if in := b.subs[e.Query]; in != nil {
		in.put(note{kind: noteEvent, event: e})
	}
}

// dropStream ends the stream now open as a dropped connection would, so
// that the bus opens it again: for tests of the recovery.
func (b *bus) dropStream() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drop != nil {
		b.drop()
	}
}
