package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// expectationLine is one expectation result as an event line's tail:
// "every_27th drop 963 passed 37 failed".
func expectationLine(r *execv1.ExpectationResult) string {
	line := fmt.Sprintf("%s %s %d passed %d failed", r.GetName(), r.GetKind(), r.GetPassed(), r.GetFailed())
	if !r.GetOk() {
		line += "  BROKEN (" + r.GetSeverity() + ")"
		if m := r.GetMessage(); m != "" {
			line += ": " + m
		}
	}
	return line
}

// printExpectationsEvent prints a NodeExpectations event: a line per
// result, under the node's name and the batch for a streaming node.
func printExpectationsEvent(out io.Writer, at string, seq int64, x *execv1.NodeExpectations) {
	where := x.GetNode()
	if x.BatchId != nil {
		where += fmt.Sprintf(" batch %d", x.GetBatchId())
	}
	for _, r := range x.GetResults() {
		fmt.Fprintf(out, "%s  #%-4d %-24s expect %s\n", at, seq, where, expectationLine(r))
	}
}

// printExpectations lists, under the run's node table, each node's
// expectation results of its last attempt.
func printExpectations(out io.Writer, r *execv1.Run) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := false
	for _, n := range r.GetNodes() {
		as := n.GetAttempts()
		if len(as) == 0 || len(as[len(as)-1].GetExpectations()) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nNODE\tEXPECTATION\tKIND\tPASSED\tFAILED\tRESULT")
			header = true
		}
		for _, x := range as[len(as)-1].GetExpectations() {
			result := "ok"
			if !x.GetOk() {
				result = strings.ToUpper(x.GetSeverity()) + ": " + x.GetMessage()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", n.GetName(), x.GetName(), x.GetKind(), x.GetPassed(), x.GetFailed(), result)
		}
	}
	_ = tw.Flush()
}
