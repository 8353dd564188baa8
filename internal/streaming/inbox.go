package streaming

import (
	"sync"

	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// noteKind is what a note tells a follower.
type noteKind int

const (
	noteUp    noteKind = iota // the listener stream is open
	noteDown                  // it is not (err says why)
	noteEvent                 // an event of the follower's query
)

// note is one message of the bus to a follower.
type note struct {
	kind  noteKind
	event sparkconnect.QueryEvent
	err   error
}

// inbox queues a follower's notes. It never blocks the bus: a follower
// busy stopping its query, or a slow one, must not hold up the events of
// the session's other queries. Notes are few (one per micro-batch).
type inbox struct {
	mu    sync.Mutex
	notes []note
	ready chan struct{} // has a value when notes is not empty
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (in *inbox) put(n note) {
	in.mu.Lock()
	in.notes = append(in.notes, n)
	in.mu.Unlock()
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

// take returns the notes queued, oldest first, and empties the inbox.
func (in *inbox) take() []note {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := in.notes
	in.notes = nil
	return n
}
