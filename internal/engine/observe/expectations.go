package observe

import (
	"context"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

type expectationsKey struct{}

// WithExpectations returns ctx carrying note, which ExpectationsCounted
// calls with a node attempt's expectation results as the backend counts
// them: once for a batch attempt, once per micro-batch of a streaming one.
// An Observer sets it in AttemptStarted to count rows by expectation.
func WithExpectations(ctx context.Context, note func([]run.ExpectationResult)) context.Context {
	return context.WithValue(ctx, expectationsKey{}, note)
}

// ExpectationsCounted tells whoever asked through WithExpectations what
// the attempt running under ctx counted; without a listener it does
// nothing.
func ExpectationsCounted(ctx context.Context, results []run.ExpectationResult) {
	if note, ok := ctx.Value(expectationsKey{}).(func([]run.ExpectationResult)); ok {
		note(results)
	}
}
