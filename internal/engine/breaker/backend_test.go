package breaker

import (
	"strings"
	"testing"
	"time"
)

func TestBackend_OpensAfterThresholdFailuresAndRecoversAfterCooldown(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBackend(BackendPolicy{Threshold: 3, Cooldown: 10 * time.Second}, func() time.Time { return now })
	for i := 0; i < 2; i++ {
		b.Failure("unavailable")
		if err := b.Allow(); err != nil {
			t.Fatalf("open after %d failures: %v", i+1, err)
		}
	}
	if b.Open() {
		t.Fatal("Open after two failures of three")
	}
	b.Failure("connection refused")
	err := b.Allow()
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "10s") {
		t.Fatalf("after the third failure: %v", err)
	}
	if !b.Open() {
		t.Fatal("not Open after the third failure")
	}
	now = now.Add(10 * time.Second)
	if err := b.Allow(); err != nil {
		t.Fatalf("half-open after the cooldown should let a trial through: %v", err)
	}
	if b.Open() {
		t.Fatal("Open while half-open: it lets work through")
	}
	b.Failure("still down")
	if b.Allow() == nil {
		t.Fatal("a failed trial should open the breaker again")
	}
	now = now.Add(10 * time.Second)
	b.Success()
	if err := b.Allow(); err != nil {
		t.Fatalf("a success should close it: %v", err)
	}
}

func TestBackend_SuccessResetsTheCount(t *testing.T) {
	b := NewBackend(BackendPolicy{Threshold: 2, Cooldown: time.Minute}, nil)
	b.Failure("x")
	b.Success()
	b.Failure("y")
	if err := b.Allow(); err != nil {
		t.Fatalf("failures were not in a row: %v", err)
	}
}

func TestBackend_ZeroThresholdNeverOpens(t *testing.T) {
	b := NewBackend(BackendPolicy{}, nil)
	for i := 0; i < 100; i++ {
		b.Failure("x")
	}
	if err := b.Allow(); err != nil {
		t.Fatal(err)
	}
}
