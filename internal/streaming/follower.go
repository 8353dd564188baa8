package streaming

import (
	"context"

	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Follower is what the Spark backend follows its streaming nodes' queries
// with (sparkbackend.Streams): execd hands it over with SetStreams, so the
// arrow between the two packages points one way, from here to the backend.
type Follower struct{}

var _ sparkbackend.Streams = Follower{}

// Run implements sparkbackend.Streams with Run.
func (Follower) Run(ctx context.Context, s *sparkconnect.Session, q sparkconnect.StreamStart, opt sparkbackend.StreamOptions) error {
	return Run(ctx, s, q, options(opt))
}

// Adopt implements sparkbackend.Streams with Adopt.
func (Follower) Adopt(ctx context.Context, s *sparkconnect.Session, id sparkconnect.QueryID, lastBatch int64, opt sparkbackend.StreamOptions) error {
	return Adopt(ctx, s, id, lastBatch, options(opt))
}

func options(o sparkbackend.StreamOptions) Options {
	return Options{Stop: o.Stop, Emit: o.Emit, Timeout: o.Timeout, Log: o.Log,
		Lag: Lag{MaxBatchDuration: o.MaxBatchDuration, MaxIdle: o.MaxIdle}}
}
