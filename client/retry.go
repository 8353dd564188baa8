package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	defaultRetryFor         = 30 * time.Second
	defaultReconnectTimeout = 60 * time.Second
	firstDelay              = 200 * time.Millisecond
	maxDelay                = 2 * time.Second
)

// delays are the exponential pauses between attempts.
type delays struct{ next time.Duration }

func (d *delays) wait() time.Duration {
	if d.next == 0 {
		d.next = firstDelay
	}
	w := d.next
	d.next = min(2*d.next, maxDelay)
	return w
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// callErr is the client's error for a failed call: ctx's own when the call
// ended because ctx did, else the typed status error.
func callErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if c := status.Code(err); c == codes.Canceled || c == codes.DeadlineExceeded {
			return ctx.Err()
		}
	}
	return fromStatus(err)
}

// once makes a call that must not be repeated (Cancel, Stop).
func once[T any](ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	v, err := call(ctx)
	if err != nil {
		return v, callErr(ctx, err)
	}
	return v, nil
}

// retry makes a call that is safe to repeat, again while execd is
// UNAVAILABLE, for up to the client's retry budget.
func retry[T any](ctx context.Context, c *Client, call func(context.Context) (T, error)) (T, error) {
	var d delays
	start := time.Now()
	for {
		v, err := call(ctx)
		if err == nil {
			return v, nil
		}
		if status.Code(err) != codes.Unavailable || time.Since(start) >= c.retryFor || ctx.Err() != nil {
			return v, callErr(ctx, err)
		}
		if perr := pause(ctx, d.wait()); perr != nil {
			return v, fmt.Errorf("%w; the last attempt: %w", perr, fromStatus(err))
		}
	}
}

// follow yields the events of a run or an experiment after sequence after,
// each exactly once, in order: it replays what is stored, then follows live.
// A dropped stream, or an execd unreachable for up to the reconnect timeout
// without an event, is resumed after the last event yielded. It ends once
// reread says the target is terminal and every event up to its last one has
// been yielded.
//
// open starts the watch call; recv returns the next event and its sequence,
// io.EOF at the stream's end. reread reads the target again.
func follow[E any](ctx context.Context, c *Client, after int64,
	open func(ctx context.Context, after int64) (recv func() (E, int64, error), err error),
	reread func(ctx context.Context) (terminal bool, newest int64, err error),
) iter.Seq2[E, error] {
	return func(yield func(E, error) bool) {
		var zero E
		last := after
		var d delays
		var downSince time.Time
		for {
			sctx, cancel := context.WithCancel(ctx)
			recv, err := open(sctx, last)
			for err == nil {
				var ev E
				var seq int64
				ev, seq, err = recv()
				if err != nil {
					break
				}
				if seq <= last {
					continue // yielded before a reconnect
				}
				if seq != last+1 {
					cancel()
					yield(zero, fmt.Errorf("execd sent sequence %d after %d: events are missing", seq, last))
					return
				}
				last, downSince, d = seq, time.Time{}, delays{}
				if !yield(ev, nil) {
					cancel()
					return
				}
			}
			cancel()
			terminal, newest := false, int64(0)
			if errors.Is(err, io.EOF) {
				terminal, newest, err = reread(ctx)
			}
			if err != nil {
				if ctx.Err() != nil || status.Code(err) != codes.Unavailable {
					yield(zero, callErr(ctx, err))
					return
				}
				if downSince.IsZero() {
					downSince = time.Now()
				} else if time.Since(downSince) > c.reconnects {
					yield(zero, fmt.Errorf("execd unreachable for %s: %w", c.reconnects.Round(time.Second), fromStatus(err)))
					return
				}
			} else if terminal && last >= newest {
				return
			}
			// The stream ended before the target did, or before its last
			// event reached us (execd restarted): resume after the last one.
			if perr := pause(ctx, d.wait()); perr != nil {
				yield(zero, perr)
				return
			}
		}
	}
}
