package retry

import (
	"context"
	"errors"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Class is what kind of failure an error is, which decides both whether it
// is retried and the state a node ends in when it is not.
type Class uint8

const (
	// ClassTransient may succeed if tried again: a lost connection, a busy
	// cluster. Unknown errors are transient, because a retry that fails
	// again costs little and a pipeline that gives up on a blip costs a run.
	ClassTransient Class = iota
	// ClassPermanent fails the same way every time: a bug in user code, an
	// analysis error in SQL, a missing table. It fails the node at once.
	ClassPermanent
	// ClassTimedOut ran out of time. It is retried while attempts remain;
	// a node that times out on its last attempt ends TIMED_OUT.
	ClassTimedOut
	// ClassCancelled was stopped on purpose and is never retried.
	ClassCancelled
)

// Retryable reports whether another attempt may succeed.
func (c Class) Retryable() bool { return c == ClassTransient || c == ClassTimedOut }

// State is the state a node ends in when a failure of this class is final.
func (c Class) State() run.NodeState {
	switch c {
	case ClassTimedOut:
		return run.NodeTimedOut
	case ClassCancelled:
		return run.NodeCancelled
	}
	return run.NodeFailed
}

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPermanent:
		return "permanent"
	case ClassTimedOut:
		return "timed_out"
	case ClassCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Classify says what kind of failure err is. The first rule that matches
// decides:
//
//  1. context.Canceled anywhere in the chain: cancelled.
//  2. context.DeadlineExceeded, or an error whose Timeout() is true (net.Error,
//     os.ErrDeadlineExceeded): timed out.
//  3. An error with a Retryable() bool method — Permanent and Transient
//     wrap errors in one — decides for itself; the outermost such error wins.
//  4. An error carrying a run.Error (a RunError() method, as Failure has) uses
//     its Retryable flag, as the worker that produced it reported.
//  5. Anything else is transient.
func Classify(err error) Class {
	if errors.Is(err, context.Canceled) {
		return ClassCancelled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ClassTimedOut
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return ClassTimedOut
	}
	var decides interface{ Retryable() bool }
	if errors.As(err, &decides) {
		return classOf(decides.Retryable())
	}
	var carrier interface{ RunError() run.Error }
	if errors.As(err, &carrier) {
		return classOf(carrier.RunError().Retryable)
	}
	return ClassTransient
}

func classOf(retryable bool) Class {
	if retryable {
		return ClassTransient
	}
	return ClassPermanent
}

// Permanent marks err as not worth retrying: runners wrap user-code and
// analysis errors in it so the node fails at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, retryable: false}
}

// Transient marks err as worth retrying even where a wrapped error says
// otherwise. Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, retryable: true}
}

type marked struct {
	err       error
	retryable bool
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() error   { return m.err }
func (m *marked) Retryable() bool { return m.retryable }

// Failure is an error that already knows how it should be recorded: a Python
// exception's type, message and traceback as a worker reported them, or a
// recovered panic. Its Err.Retryable flag classifies it (rule 4 of Classify).
type Failure struct {
	Err run.Error
	// Cause is the Go error behind the failure, if any, for errors.Is/As.
	Cause error
}

func (f *Failure) Error() string {
	switch {
	case f.Err.Type == "":
		return f.Err.Message
	case f.Err.Message == "":
		return f.Err.Type
	}
	return f.Err.Type + ": " + f.Err.Message
}

func (f *Failure) Unwrap() error { return f.Cause }

// RunError returns the record of the failure.
func (f *Failure) RunError() run.Error { return f.Err }
