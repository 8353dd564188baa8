package run

import "fmt"

// ExpectationResult is how one expectation or check of a node held over
// what the node produced (an attempt's result, or one micro-batch).
type ExpectationResult struct {
	Name string `json:"name"`
	// Kind is a row expectation's action (warn, drop, fail) or a check's
	// kind (row_count, unique, not_null, freshness).
	Kind string `json:"kind"`
	// Passed and Failed count rows: those that met the condition and those
	// that did not; for a check, the rows looked at and those that broke it.
	Passed int64 `json:"passed"`
	Failed int64 `json:"failed"`
	// Severity is "error" (a broken one fails the node) or "warn".
	Severity string `json:"severity"`
	OK       bool   `json:"ok"`
	Message  string `json:"message,omitempty"`
}

// Expectations is a NodeExpectations event's body.
type Expectations struct {
	// BatchID is the micro-batch, for a streaming node; nil for a batch
	// node's attempt.
	BatchID *int64              `json:"batch_id,omitempty"`
	Results []ExpectationResult `json:"results"`
}

// ApplyExpectations accepts the expectation results of one of node n's
// attempts that has started.
func ApplyExpectations(runID string, n NodeRecord, ev *Event) error {
	if ev.Expectations == nil || len(ev.Expectations.Results) == 0 {
		return fmt.Errorf("%w: run %s, node %q: an expectations event carries no results", ErrInvalidEvent, runID, n.Name)
	}
	if ev.Attempt == 0 {
		ev.Attempt = n.Attempt
	}
	if ev.Attempt == 0 {
		return fmt.Errorf("%w: run %s, node %q has not started; its expectations come from an attempt", ErrInvalidEvent, runID, n.Name)
	}
	if ev.Attempt > n.Attempt {
		return fmt.Errorf("%w: run %s, node %q: expectations of attempt %d, which has not started", ErrInvalidEvent, runID, n.Name, ev.Attempt)
	}
	return nil
}

// SumExpectations adds a micro-batch's results into an attempt's, by name:
// a streaming attempt's expectations are the sum over its batches, and
// holds only while every batch held.
func SumExpectations(into []ExpectationResult, add []ExpectationResult) []ExpectationResult {
next:
	for _, r := range add {
		for i := range into {
			if into[i].Name == r.Name && into[i].Kind == r.Kind {
				into[i].Passed += r.Passed
				into[i].Failed += r.Failed
				if !r.OK {
					into[i].OK, into[i].Message = false, r.Message
				}
				continue next
			}
		}
		into = append(into, r)
	}
	return into
}
