// Package breaker stops work that keeps failing. The run-level breaker here
// opens after a number of consecutive node failures, on the reasoning that
// when several nodes in a row fail, the cause is usually shared (the cluster
// is down, a source table is gone) and running the rest only burns time and
// buries the first error under many more.
//
// It is a plain value driven by its caller: no goroutines, no clock. A
// breaker guarding a backend (Spark, a worker pool) would add a HalfOpen
// State and a cool-down to Policy, letting one trial through after a pause;
// a run-level breaker has no use for that, because once open the run stops.
package breaker

import (
	"fmt"
	"slices"
	"strings"
)

// Policy configures a Breaker.
type Policy struct {
	// Threshold is how many nodes must fail in a row to open the breaker.
	// 0 turns the breaker off.
	Threshold int
}

// Enabled reports whether the policy can ever open a breaker.
func (p Policy) Enabled() bool { return p.Threshold > 0 }

// State is whether a breaker lets work through.
type State uint8

const (
	// Closed lets work through.
	Closed State = iota
	// Open lets nothing through.
	Open
)

func (s State) String() string {
	if s == Open {
		return "open"
	}
	return "closed"
}

// Breaker counts consecutive node failures within one run. The zero value is
// a closed breaker that never opens. It is not safe for concurrent use: the
// scheduler's loop owns it.
type Breaker struct {
	policy Policy
	// streak names the nodes that failed since the last success, in order.
	streak []string
	state  State
}

// New returns a closed breaker following p.
func New(p Policy) *Breaker { return &Breaker{policy: p} }

// State reports whether the breaker is open.
func (b *Breaker) State() State { return b.state }

// Success records that a node succeeded, which ends a streak of failures.
func (b *Breaker) Success() {
	if b.state == Closed {
		b.streak = b.streak[:0]
	}
}

// Failure records that node failed for good (after its retries) and reports
// whether this failure opened the breaker.
func (b *Breaker) Failure(node string) bool {
	if b.state == Open || !b.policy.Enabled() {
		return false
	}
	b.streak = append(b.streak, node)
	if len(b.streak) < b.policy.Threshold {
		return false
	}
	b.state = Open
	return true
}

// Reason explains why the breaker is open, naming the failed nodes in the
// order they failed; it is empty while the breaker is closed.
func (b *Breaker) Reason() string {
	if b.state == Closed {
		return ""
	}
	failures := "consecutive node failures"
	if len(b.streak) == 1 {
		failures = "node failure"
	}
	return fmt.Sprintf("circuit breaker open after %d %s: %s", len(b.streak), failures, strings.Join(b.streak, ", "))
}

// Failed returns the nodes whose failures opened the breaker.
func (b *Breaker) Failed() []string {
	if b.state == Closed {
		return nil
	}
	return slices.Clone(b.streak)
}
