package clock

import (
	"context"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(t Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestFake_TimerFiresExactlyAtItsDeadline(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(3 * time.Second)

	f.Advance(3*time.Second - time.Nanosecond)
	if fired(tm) {
		t.Fatal("timer fired 1ns before its deadline")
	}
	f.Advance(time.Nanosecond)
	if !fired(tm) {
		t.Fatal("timer did not fire at its deadline")
	}
	if got := f.Pending(); got != 0 {
		t.Fatalf("Pending() = %d after the timer fired, want 0", got)
	}
}

func TestFake_NonPositiveDurationFiresAtOnce(t *testing.T) {
	f := NewFake(epoch)
	for _, d := range []time.Duration{0, -time.Second} {
		if !fired(f.NewTimer(d)) {
			t.Errorf("NewTimer(%v) did not fire at once", d)
		}
	}
}

func TestFake_StoppedTimerNeverFires(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop() = false for a pending timer")
	}
	f.Advance(time.Hour)
	if fired(tm) {
		t.Fatal("stopped timer fired")
	}
	if tm.Stop() {
		t.Fatal("second Stop() = true")
	}
}

func TestFake_BlockUntilReturnsOnceTimersWait(t *testing.T) {
	f := NewFake(epoch)
	go f.NewTimer(time.Minute)
	if err := f.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.BlockUntil(ctx, 2); err == nil {
		t.Fatal("BlockUntil(2) with one timer and a cancelled ctx returned nil")
	}
}
