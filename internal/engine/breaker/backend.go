package breaker

import (
	"fmt"
	"sync"
	"time"
)

// BackendPolicy configures a breaker that guards a shared backend (Spark)
// across runs.
type BackendPolicy struct {
	// Threshold is how many transport failures in a row open the breaker;
	// 0 turns it off.
	Threshold int
	// Cooldown is how long it stays open before work may try again.
	Cooldown time.Duration
}

// Backend is a breaker for a backend every run shares. Unlike the
// run-level Breaker it closes again: after Cooldown it lets work through
// (half-open), the next success closes it and the next failure opens it
// for another Cooldown. It is safe for concurrent use.
type Backend struct {
	p   BackendPolicy
	now func() time.Time

	mu       sync.Mutex
	failures int
	openedAt time.Time // zero while closed
	last     string
}

// NewBackend returns a closed breaker; now is the clock (time.Now if nil).
func NewBackend(p BackendPolicy, now func() time.Time) *Backend {
	if now == nil {
		now = time.Now
	}
	return &Backend{p: p, now: now}
}

// Allow returns an error saying why while the breaker is open and cooling
// down, nil otherwise.
func (b *Backend) Allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openedAt.IsZero() {
		return nil
	}
	if wait := b.openedAt.Add(b.p.Cooldown).Sub(b.now()); wait > 0 {
		return fmt.Errorf("circuit breaker open after %d failures in a row reaching the backend (last: %s); trying again in %s",
			b.failures, b.last, wait.Round(time.Second))
	}
	return nil
}

// Open reports whether the breaker refuses work now: open and cooling
// down. (Half-open, after the cool-down, it lets work through.)
func (b *Backend) Open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openedAt.IsZero() && b.now().Before(b.openedAt.Add(b.p.Cooldown))
}

// Success closes the breaker.
func (b *Backend) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures, b.openedAt, b.last = 0, time.Time{}, ""
}

// Failure counts a transport failure; the Threshold-th in a row, or any
// failure while half-open, opens the breaker.
func (b *Backend) Failure(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p.Threshold <= 0 {
		return
	}
	b.failures++
	b.last = reason
	if b.failures >= b.p.Threshold {
		b.openedAt = b.now()
	}
}
