package pyworker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// TestPool_AResultIsHandedBackAsAPlanOnlyWhenExecdCanMakeIt: with
// Call.TakePlan, a worker hands its result back as a plan, which a session
// of execd's makes into the result view (TakeResult). When that fails, the
// worker makes the view itself, and a failing node fails with the worker's
// own error, as without TakePlan. A function that leaves something in the
// worker's session its result needs (a view of its own, a setting) hands
// nothing back, nor does any later call in that session.
func TestPool_AResultIsHandedBackAsAPlanOnlyWhenExecdCanMakeIt(t *testing.T) {
	p, remote := startPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := sparkconnect.Connect(ctx, remote, sparkconnect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	numbers := nodeCall("numbers", "numbers")
	if nodeErr, _ := runNode(t, p, numbers); nodeErr != nil {
		t.Fatalf("numbers failed: %+v", nodeErr)
	}
	input := "global_temp." + numbers.ResultView

	// offer has execd's session take c's plan, or fail to when refuse is set.
	offer := func(c *pycall.Call, refuse bool) *int {
		offered := new(int)
		node, view := c.Node, c.ResultView
		c.TakePlan = func(ctx context.Context, plan string) error {
			*offered++
			if !strings.Contains(plan, "namedTable") && !strings.Contains(plan, "range") {
				t.Errorf("%s's plan reads neither its input nor a range: %s", node, plan)
			}
			if refuse {
				return errors.New("execd cannot take it")
			}
			return s.TakeResult(ctx, node, view, plan, nil, true)
		}
		return offered
	}

	t.Run("taken", func(t *testing.T) {
		c := nodeCall("double", "double", input)
		offered := offer(&c, false)
		if nodeErr, _ := runNode(t, p, c); nodeErr != nil || *offered != 1 {
			t.Fatalf("double: error %+v, plan offered %d times; want success and one plan", nodeErr, *offered)
		}
		if schema := resultSchema(t, remote, c); len(schema) != 1 || schema[0].Name != "doubled" {
			t.Errorf("the view made from double's plan has the schema %v", schema)
		}
	})
	t.Run("refused, then made by the worker", func(t *testing.T) {
		c := nodeCall("double", "double", input)
		offered := offer(&c, true)
		if nodeErr, _ := runNode(t, p, c); nodeErr != nil || *offered != 1 {
			t.Fatalf("double: error %+v, plan offered %d times; want success and one plan", nodeErr, *offered)
		}
		if schema := resultSchema(t, remote, c); len(schema) != 1 || schema[0].Name != "doubled" {
			t.Errorf("the worker's view of double's result has the schema %v", schema)
		}
	})
	for _, tt := range []struct{ function, typ, msg string }{
		{"no_columns", "ResultError", "returned a DataFrame without columns"},
		{"bad_column", "AnalysisException", "no_such_column"},
	} {
		t.Run(tt.function, func(t *testing.T) {
			c := nodeCall(tt.function, tt.function)
			offered := offer(&c, false)
			e, _ := runNode(t, p, c)
			if e == nil || e.Type != tt.typ || !strings.Contains(e.Message, tt.msg) || *offered != 1 {
				t.Fatalf("error = %+v, plan offered %d times; want the worker's %s saying %q after one plan", e, *offered, tt.typ, tt.msg)
			}
			if strings.Contains(e.Traceback, "tauro_exec/worker/") {
				t.Errorf("traceback shows the worker's own frames:\n%s", e.Traceback)
			}
			if hasView(t, remote, c) {
				t.Errorf("the failed node left its result view %s", c.ResultView)
			}
		})
	}
	t.Run("kept by the worker", func(t *testing.T) {
		for _, fn := range []string{"own_view", "sets_conf", "double"} { // double: after sets_conf changed the session
			c := nodeCall(fn, fn, input)
			offered := offer(&c, false)
			if nodeErr, _ := runNode(t, p, c); nodeErr != nil || *offered != 0 {
				t.Fatalf("%s: error %+v, plan offered %d times; want success and no plan", fn, nodeErr, *offered)
			}
			if !hasView(t, remote, c) {
				t.Errorf("%s's worker made no result view", fn)
			}
		}
	})
}
