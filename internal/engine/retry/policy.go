// Package retry decides whether a failed node attempt is tried again and how
// long to wait first. A Policy is a plain value, so the same policy can be
// read from configuration, compared in tests and handed to the scheduler,
// which owns the waiting (on an injected clock).
package retry

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is exponential backoff with a cap, an attempt limit and jitter. The
// zero Policy makes exactly one attempt.
type Policy struct {
	// Initial is the wait after the first failed attempt.
	Initial time.Duration
	// Coefficient multiplies the wait after each further failure. Values
	// below 1, the zero value included, keep the wait constant at Initial.
	Coefficient float64
	// Max caps the wait, jitter included; 0 means no cap.
	Max time.Duration
	// MaxAttempts counts every attempt, the first one included, so tauro's
	// max_retries is MaxAttempts-1. Values below 1 mean a single attempt.
	MaxAttempts int
	// Jitter spreads each wait uniformly over ±Jitter of its value (0.2 gives
	// 80%..120%), so nodes that failed together do not retry in lockstep
	// against the same backend. It is clamped to [0, 1].
	Jitter float64
}

// Validate reports a policy that cannot mean what its author intended.
func (p Policy) Validate() error {
	var errs []error
	if p.Initial < 0 {
		errs = append(errs, errors.New("retry: initial delay must not be negative"))
	}
	if p.Coefficient != 0 && p.Coefficient < 1 {
		errs = append(errs, errors.New("retry: coefficient must be 0 (constant delay) or at least 1"))
	}
	if p.Max < 0 {
		errs = append(errs, errors.New("retry: maximum delay must not be negative"))
	}
	if p.Max > 0 && p.Max < p.Initial {
		errs = append(errs, errors.New("retry: maximum delay must not be below the initial delay"))
	}
	if p.MaxAttempts < 0 {
		errs = append(errs, errors.New("retry: maximum attempts must not be negative"))
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		errs = append(errs, errors.New("retry: jitter must be between 0 and 1"))
	}
	return errors.Join(errs...)
}

// Attempts returns how many attempts the policy allows, at least 1.
func (p Policy) Attempts() int { return max(p.MaxAttempts, 1) }

// Delay returns how long to wait after failed attempt number attempt (1 is the
// first attempt) before the next one: Initial·Coefficient^(attempt-1), capped
// at Max, spread by Jitter using rnd, which returns values in [0, 1). A nil
// rnd uses math/rand/v2; tests pass a constant to get exact delays.
func (p Policy) Delay(attempt int, rnd func() float64) time.Duration {
	d := float64(max(p.Initial, 0))
	if p.Coefficient > 1 && attempt > 1 {
		d *= math.Pow(p.Coefficient, float64(attempt-1))
	}
	if p.Max > 0 {
		d = min(d, float64(p.Max))
	}
	if j := min(p.Jitter, 1); j > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		d *= 1 + j*(2*rnd()-1)
	}
	if p.Max > 0 {
		d = min(d, float64(p.Max))
	}
	switch {
	case d <= 0:
		return 0
	case d >= math.MaxInt64: // float64(MaxInt64) rounds up, so convert only below it
		return math.MaxInt64
	}
	return time.Duration(d)
}

// ShouldRetry reports whether failed attempt number attempt is followed by
// another: the error must be worth retrying and an attempt must remain.
func (p Policy) ShouldRetry(attempt int, err error) bool {
	return err != nil && attempt < p.Attempts() && Classify(err).Retryable()
}
