package run

import (
	"errors"
	"fmt"
	"time"
)

// The rules of a run's record: which state may follow which, and what an
// event does to the run, its nodes and their attempts. They are pure
// functions over the parts of the record an event touches, so every store
// applies the same rules and only says how the rows are read and written.
//
//   - Run: PENDING → [QUEUED →] RUNNING → SUCCEEDED | FAILED | CANCELLED |
//     INTERRUPTED; a QUEUED run may also end CANCELLED without starting.
//     A run cannot end while one of its nodes is RUNNING, STREAMING or
//     RETRYING, and nothing may be appended after its terminal event,
//     except by a repair, which moves it back to PENDING.
//   - Node: PENDING → RUNNING (opens attempt n+1) → RETRYING (closes the
//     attempt as FAILED with the event's error) → RUNNING (attempt n+2) ...
//     → a terminal state (closes the open attempt with that state and
//     error). A RUNNING node whose streaming query has started becomes
//     STREAMING (same attempt) and ends like a RUNNING one. A PENDING or
//     RETRYING node may go straight to FAILED, CANCELLED, SKIPPED or
//     TIMED_OUT; only a RUNNING or STREAMING node may succeed. Attempt
//     numbers never restart, not even after a repair, so no attempt is
//     ever overwritten.
//   - An event's Attempt 0 means the node's current attempt (for RUNNING,
//     the next one); the rules fill the number in.
//   - Metrics go on an attempt that has started; messages need no attempt;
//     progress comes from a node whose attempt is under way.

// Errors of the rules, told apart with errors.Is.
var (
	// ErrInvalidEvent: an event does not fit the run's record. It points
	// at a bug in the caller, not in a user's request.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrRunEnded: the run has had its terminal event; only a repair may
	// reopen it.
	ErrRunEnded = errors.New("run has ended")
)

// RunRecord is the part of a run's record that its events change.
type RunRecord struct {
	ID      string
	State   State
	Message string
	Start   time.Time
	End     time.Time
}

// NodeRecord is the part of a node's record that its events change.
type NodeRecord struct {
	Name    string
	State   NodeState
	Attempt int
	Start   time.Time
	End     time.Time
	Error   *Error
}

// AttemptChange is what a node event does to the node's attempts: open
// one, close one, or both or neither.
type AttemptChange struct {
	// Open is the attempt a RUNNING event opens; 0 for none.
	Open int
	// Close is the attempt the event ends, with how it ended; 0 for none.
	Close      int
	CloseState NodeState
	CloseError *Error
}

// LiveNode finds the first node, in plan order, with an attempt RUNNING,
// STREAMING or RETRYING; "" when there is none.
type LiveNode func() (name string, state NodeState, err error)

// CheckAppend says whether ev may be appended to a run in r's state at all:
// nothing follows a terminal event but the PENDING event of a repair.
func CheckAppend(r RunRecord, ev Event, repair bool) error {
	reopens := repair && ev.Kind == RunStateChanged && ev.RunState == Pending
	if r.State.Terminal() && !reopens {
		return fmt.Errorf("%w: run %s is %s; its log is closed", ErrRunEnded, r.ID, r.State)
	}
	return nil
}

// ApplyRunState applies a run_state event to r at time now. live is asked
// only when the run is to end.
func ApplyRunState(r *RunRecord, ev *Event, repair bool, now time.Time, live LiveNode) error {
	switch st := ev.RunState; {
	case st == Pending:
		if !repair {
			return fmt.Errorf("%w: run %s: only creating a run and a repair set it PENDING", ErrInvalidEvent, r.ID)
		}
		r.End = time.Time{}
	case st == Queued:
		if r.State != Pending {
			return fmt.Errorf("%w: run %s is %s; only a PENDING run can be queued", ErrInvalidEvent, r.ID, r.State)
		}
	case st == Running:
		if r.State != Pending && r.State != Queued {
			return fmt.Errorf("%w: run %s is %s; only a PENDING or QUEUED run can start", ErrInvalidEvent, r.ID, r.State)
		}
		if r.Start.IsZero() {
			r.Start = now
		}
	case st.Terminal():
		// A run that ends with a node still running would leave that
		// node's attempt open for ever, and a repair could not tell
		// whether it finished.
		name, state, err := live()
		if err != nil {
			return err
		}
		if name != "" {
			return fmt.Errorf("%w: run %s cannot end %s while node %q is %s; record how the node ended first",
				ErrInvalidEvent, r.ID, st, name, state)
		}
		r.End = now
	default:
		return fmt.Errorf("%w: run %s: unknown run state %q", ErrInvalidEvent, r.ID, st)
	}
	r.State = ev.RunState
	r.Message = ev.Message
	return nil
}

// ApplyNodeState applies a node_state event to n at time now and says what
// it does to the node's attempts.
func ApplyNodeState(runID string, n *NodeRecord, ev *Event, repair bool, now time.Time) (AttemptChange, error) {
	var ch AttemptChange
	fail := func(format string, args ...any) (AttemptChange, error) {
		return AttemptChange{}, fmt.Errorf("%w: run %s, node %q: %s", ErrInvalidEvent, runID, n.Name, fmt.Sprintf(format, args...))
	}
	// current checks the event's attempt against the node's, filling it in
	// when the caller left it 0.
	current := func() bool {
		if ev.Attempt == 0 {
			ev.Attempt = n.Attempt
		}
		return ev.Attempt == n.Attempt
	}

	switch st := ev.NodeState; {
	case st == NodePending:
		if !repair {
			return fail("only creating a run and a repair set a node PENDING")
		}
		ev.Attempt = n.Attempt
		n.Start, n.End, n.Error = time.Time{}, time.Time{}, nil

	case st == NodeRunning:
		if n.State != NodePending && n.State != NodeRetrying {
			return fail("the node is %s; only a PENDING or RETRYING node can start an attempt", n.State)
		}
		if ev.Attempt == 0 {
			ev.Attempt = n.Attempt + 1
		}
		if ev.Attempt != n.Attempt+1 {
			return fail("attempt %d cannot start: the next attempt is %d (attempt numbers continue across repairs)", ev.Attempt, n.Attempt+1)
		}
		ch.Open = ev.Attempt
		n.Attempt = ev.Attempt
		if n.Start.IsZero() {
			n.Start = now
		}
		n.End, n.Error = time.Time{}, nil

	case st == NodeStreaming:
		if n.State != NodeRunning {
			return fail("the node is %s; only a RUNNING node's query can start streaming", n.State)
		}
		if !current() {
			return fail("the event is about attempt %d but the node is at attempt %d", ev.Attempt, n.Attempt)
		}

	case st == NodeRetrying:
		if !n.State.Live() {
			return fail("the node is %s; only a RUNNING or STREAMING node can be RETRYING", n.State)
		}
		if !current() {
			return fail("the event is about attempt %d but the node is at attempt %d", ev.Attempt, n.Attempt)
		}
		// The attempt before a retry failed; its error says how (a
		// timeout has Error.Type "Timeout").
		ch.Close, ch.CloseState, ch.CloseError = n.Attempt, NodeFailed, ev.Error
		n.Error = cloneError(ev.Error)

	case st.Terminal():
		if n.State.Terminal() {
			return fail("the node already ended %s", n.State)
		}
		if st == NodeSucceeded && !n.State.Live() {
			return fail("the node is %s; only a RUNNING or STREAMING node can succeed", n.State)
		}
		if !current() {
			return fail("the event is about attempt %d but the node is at attempt %d", ev.Attempt, n.Attempt)
		}
		if n.State.Live() {
			ch.Close, ch.CloseState, ch.CloseError = n.Attempt, st, ev.Error
		}
		n.End, n.Error = now, cloneError(ev.Error)

	default:
		return fail("unknown node state %q", st)
	}
	n.State = ev.NodeState
	return ch, nil
}

// ApplyProgress accepts a micro-batch's progress of a node whose query is
// under way; it changes nothing but the event's attempt.
func ApplyProgress(runID string, n NodeRecord, ev *Event) error {
	if !n.State.Live() {
		return fmt.Errorf("%w: run %s, node %q is %s; progress comes from a running query", ErrInvalidEvent, runID, n.Name, n.State)
	}
	if ev.Attempt == 0 {
		ev.Attempt = n.Attempt
	}
	return nil
}

// ApplyLag accepts a lag change of node n's running query.
func ApplyLag(runID string, n NodeRecord, ev *Event) error {
	if ev.Lag == nil || (ev.Lag.State != Lagging && ev.Lag.State != CaughtUp) {
		return fmt.Errorf("%w: run %s, node %q: a lag event must say LAGGING or CAUGHT_UP", ErrInvalidEvent, runID, n.Name)
	}
	return ApplyProgress(runID, n, ev)
}

// ApplyMessage accepts a message about node n, or about the run when n is
// nil.
func ApplyMessage(runID string, n *NodeRecord, ev *Event) error {
	if n == nil {
		if ev.Attempt != 0 {
			return fmt.Errorf("%w: run %s: a message with no node cannot name attempt %d", ErrInvalidEvent, runID, ev.Attempt)
		}
		return nil
	}
	if ev.Attempt == 0 {
		ev.Attempt = n.Attempt
	}
	if ev.Attempt > n.Attempt {
		return fmt.Errorf("%w: run %s, node %q: a message about attempt %d, which has not started", ErrInvalidEvent, runID, n.Name, ev.Attempt)
	}
	return nil
}

// ApplyMetric accepts a metric of one of node n's attempts that has started.
func ApplyMetric(runID string, n NodeRecord, ev *Event) error {
	if ev.Attempt == 0 {
		ev.Attempt = n.Attempt
	}
	if ev.Attempt < 1 || ev.Attempt > n.Attempt {
		return fmt.Errorf("%w: run %s, node %q: metric %q is for attempt %d, which has not started", ErrInvalidEvent, runID, n.Name, ev.MetricName, ev.Attempt)
	}
	return nil
}

func cloneError(e *Error) *Error {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}
