package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func constant(v float64) func() float64 { return func() float64 { return v } }

func TestPolicy_Delay(t *testing.T) {
	exp := Policy{Initial: time.Second, Coefficient: 2, Max: 10 * time.Second, MaxAttempts: 10}
	jittered := exp
	jittered.Jitter = 0.5
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first failure waits Initial", exp, 1, 0, time.Second},
		{"second failure waits Initial times Coefficient", exp, 2, 0, 2 * time.Second},
		{"fourth failure waits Initial times Coefficient cubed", exp, 4, 0, 8 * time.Second},
		{"growth stops at Max", exp, 5, 0, 10 * time.Second},
		{"huge attempt numbers stay at Max", exp, 10_000, 0, 10 * time.Second},
		{"zero Coefficient keeps the delay constant", Policy{Initial: 3 * time.Second}, 7, 0, 3 * time.Second},
		{"Coefficient 1 keeps the delay constant", Policy{Initial: 3 * time.Second, Coefficient: 1}, 7, 0, 3 * time.Second},
		{"jitter at the low end of rnd shortens the wait", jittered, 1, 0, 500 * time.Millisecond},
		{"jitter at the middle of rnd leaves the wait", jittered, 2, 0.5, 2 * time.Second},
		{"jitter at 0.75 lengthens the wait by half the jitter", jittered, 3, 0.75, 5 * time.Second},
		{"jitter never pushes the wait past Max", jittered, 5, 0.99, 10 * time.Second},
		{"jitter above 1 is clamped to 1", Policy{Initial: time.Second, Jitter: 5}, 1, 0, 0},
		{"zero Policy waits nothing", Policy{}, 1, 0.3, 0},
		{"uncapped growth saturates instead of overflowing", Policy{Initial: time.Hour, Coefficient: 10}, 100, 0, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Delay(tt.attempt, constant(tt.rnd)); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestPolicy_DelayWithNilRandStaysWithinJitter(t *testing.T) {
	p := Policy{Initial: time.Second, Jitter: 0.2}
	for range 1000 {
		if d := p.Delay(1, nil); d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("Delay = %v, want within 800ms..1.2s", d)
		}
	}
}

func TestPolicy_ShouldRetry(t *testing.T) {
	three := Policy{MaxAttempts: 3}
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		err     error
		want    bool
	}{
		{"transient failure with attempts left is retried", three, 1, errors.New("connection reset"), true},
		{"transient failure on the last attempt is not", three, 3, errors.New("connection reset"), false},
		{"zero Policy never retries", Policy{}, 1, errors.New("connection reset"), false},
		{"permanent failure is not retried", three, 1, Permanent(errors.New("NameError")), false},
		{"timeout with attempts left is retried", three, 2, context.DeadlineExceeded, true},
		{"cancellation is never retried", three, 1, context.Canceled, false},
		{"success is not retried", three, 1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.ShouldRetry(tt.attempt, tt.err); got != tt.want {
				t.Errorf("ShouldRetry(%d, %v) = %v, want %v", tt.attempt, tt.err, got, tt.want)
			}
		})
	}
}

type selfJudged bool

func (s selfJudged) Error() string   { return "self-judged" }
func (s selfJudged) Retryable() bool { return bool(s) }

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      Class
		state     run.NodeState
		retryable bool
	}{
		{"context.Canceled is cancelled", fmt.Errorf("spark: %w", context.Canceled), ClassCancelled, run.NodeCancelled, false},
		{"cancellation wins over a Transient mark", Transient(context.Canceled), ClassCancelled, run.NodeCancelled, false},
		{"DeadlineExceeded is a timeout", fmt.Errorf("query: %w", context.DeadlineExceeded), ClassTimedOut, run.NodeTimedOut, true},
		{"an error with Timeout() true is a timeout", os.ErrDeadlineExceeded, ClassTimedOut, run.NodeTimedOut, true},
		{"Permanent fails at once", Permanent(errors.New("AnalysisException")), ClassPermanent, run.NodeFailed, false},
		{"Transient is retried", Transient(errors.New("busy")), ClassTransient, run.NodeFailed, true},
		{"the outermost mark wins", Transient(Permanent(errors.New("x"))), ClassTransient, run.NodeFailed, true},
		{"an error judging itself permanent", fmt.Errorf("wrapped: %w", selfJudged(false)), ClassPermanent, run.NodeFailed, false},
		{"an error judging itself retryable", selfJudged(true), ClassTransient, run.NodeFailed, true},
		{"a carried run.Error that is not retryable", &Failure{Err: run.Error{Type: "ValueError"}}, ClassPermanent, run.NodeFailed, false},
		{"a carried run.Error that is retryable", fmt.Errorf("worker: %w", &Failure{Err: run.Error{Type: "Py4JNetworkError", Retryable: true}}), ClassTransient, run.NodeFailed, true},
		{"a mark wins over a carried run.Error", Permanent(&Failure{Err: run.Error{Retryable: true}}), ClassPermanent, run.NodeFailed, false},
		{"an unknown error is transient", errors.New("who knows"), ClassTransient, run.NodeFailed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Classify(tt.err)
			if c != tt.want {
				t.Fatalf("Classify(%v) = %v, want %v", tt.err, c, tt.want)
			}
			if c.State() != tt.state || c.Retryable() != tt.retryable {
				t.Errorf("%v: State() = %v, Retryable() = %v; want %v, %v", c, c.State(), c.Retryable(), tt.state, tt.retryable)
			}
		})
	}
}

func TestMarks_KeepTheWrappedError(t *testing.T) {
	base := errors.New("table not found")
	for _, err := range []error{Permanent(base), Transient(base), &Failure{Err: run.Error{Message: "x"}, Cause: base}} {
		if !errors.Is(err, base) {
			t.Errorf("errors.Is(%v, base) = false", err)
		}
	}
	if Permanent(nil) != nil || Transient(nil) != nil {
		t.Error("marking nil returned an error")
	}
	if got := Permanent(base).Error(); got != "table not found" {
		t.Errorf("Permanent(err).Error() = %q, want the wrapped message", got)
	}
}

func TestFailure_ErrorReadsAsTypeAndMessage(t *testing.T) {
	tests := []struct {
		err  run.Error
		want string
	}{
		{run.Error{Type: "ValueError", Message: "bad date"}, "ValueError: bad date"},
		{run.Error{Type: "ValueError"}, "ValueError"},
		{run.Error{Message: "bad date"}, "bad date"},
	}
	for _, tt := range tests {
		if got := (&Failure{Err: tt.err}).Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestPolicy_Validate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		ok     bool
	}{
		{"zero policy", Policy{}, true},
		{"typical policy", Policy{Initial: time.Second, Coefficient: 2, Max: time.Minute, MaxAttempts: 4, Jitter: 0.2}, true},
		{"negative initial", Policy{Initial: -1}, false},
		{"shrinking coefficient", Policy{Coefficient: 0.5}, false},
		{"negative max", Policy{Max: -1}, false},
		{"max below initial", Policy{Initial: time.Minute, Max: time.Second}, false},
		{"negative attempts", Policy{MaxAttempts: -1}, false},
		{"jitter above 1", Policy{Jitter: 1.5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.policy.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
