package breaker

import (
	"slices"
	"testing"
)

// event is a node outcome fed to the breaker: a name fails, "" succeeds.
type event = string

func TestBreaker(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		events    []event
		wantOpen  bool
		reason    string
	}{
		{"opens after Threshold consecutive failures", 3, []event{"a", "b", "c"}, true,
			"circuit breaker open after 3 consecutive node failures: a, b, c"},
		{"stays closed below Threshold", 3, []event{"a", "b"}, false, ""},
		{"a success resets the count", 3, []event{"a", "b", "", "c", "d"}, false, ""},
		{"counts again from the last success", 2, []event{"a", "", "b", "c"}, true,
			"circuit breaker open after 2 consecutive node failures: b, c"},
		{"Threshold 1 opens on the first failure", 1, []event{"", "a"}, true,
			"circuit breaker open after 1 node failure: a"},
		{"Threshold 0 never opens", 0, []event{"a", "b", "c", "d"}, false, ""},
		{"stays open and keeps its reason after later outcomes", 2, []event{"a", "b", "", "c"}, true,
			"circuit breaker open after 2 consecutive node failures: a, b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(Policy{Threshold: tt.threshold})
			opened := 0
			for _, e := range tt.events {
				if e == "" {
					b.Success()
				} else if b.Failure(e) {
					opened++
				}
			}
			if got := b.State() == Open; got != tt.wantOpen {
				t.Fatalf("open = %v, want %v", got, tt.wantOpen)
			}
			if tt.wantOpen && opened != 1 {
				t.Errorf("Failure reported opening %d times, want exactly once", opened)
			}
			if got := b.Reason(); got != tt.reason {
				t.Errorf("Reason() = %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestBreaker_ZeroValueNeverOpens(t *testing.T) {
	var b Breaker
	for range 10 {
		if b.Failure("x") {
			t.Fatal("zero Breaker opened")
		}
	}
	if b.State() != Closed || b.Failed() != nil {
		t.Fatalf("zero Breaker: state %v, failed %v", b.State(), b.Failed())
	}
}

func TestBreaker_FailedNamesTheStreak(t *testing.T) {
	b := New(Policy{Threshold: 2})
	b.Failure("x")
	b.Failure("y")
	if got := b.Failed(); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("Failed() = %v", got)
	}
}
