package streaming

import (
	"context"
	"errors"
	"time"

	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// onNotes acts on the listener bus's notes, in order, and reports whether
// the query terminated.
func (f *follower) onNotes(ctx context.Context, notes []note) (terminated bool) {
	for _, n := range notes {
		switch n.kind {
		case noteUp:
			// Batches that committed before the stream opened (before
			// this follower subscribed, or while a dropped stream was
			// down) are in the query's recent progress; those after it
			// come as events, and the ones in both are reported once.
			// A query that ended while there was no stream sent its
			// termination to none: its status is asked at the next tick.
			f.live, f.statusAt = true, time.Time{}
			f.progress(ctx)
		case noteDown:
			f.live = false
			if errors.Is(n.err, sparkconnect.ErrNoListenerBus) {
				f.opt.Log.Info("the Spark Connect server has no listener bus; polling the query's progress", "id", f.id.ID)
			} else {
				f.opt.Log.Warn("the listener stream dropped; polling the query's progress until it is open again", "id", f.id.ID, "err", n.err)
			}
		case noteEvent:
			switch n.event.Kind {
			case sparkconnect.QueryProgressed:
				f.onProgress(ctx, n.event.Progress)
			case sparkconnect.QueryTerminated:
				terminated = true
			}
		}
	}
	return terminated
}

// onProgress reports the batch of a progress event. The bus sends a
// query's events in order, so a batch past the one expected next means
// events were lost: the batches between are recovered from the query's
// recent progress first, so that every batch is reported, in order, once.
func (f *follower) onProgress(ctx context.Context, js string) {
	r, err := parseReport(js)
	if err != nil {
		f.opt.Log.Warn("unreadable streaming progress", "err", err)
		return
	}
	if r.ranBatch() && r.BatchID > f.lastBatch+1 {
		f.progress(ctx)
	}
	f.report([]string{js})
}
