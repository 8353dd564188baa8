package pyworker

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
)

func TestRunRequest_PassesDatesAsDaysAndTheZeroDateAsEmpty(t *testing.T) {
	tests := []struct {
		name       string
		start, end time.Time
		want       [2]string
	}{
		{"window", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC), [2]string{"2025-01-01", "2025-01-31"}},
		{"no window", time.Time{}, time.Time{}, [2]string{"", ""}},
		{"a day in its own zone", time.Date(2025, 3, 2, 0, 0, 0, 0, time.FixedZone("CET", 3600)), time.Time{}, [2]string{"2025-03-02", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, nodeErr := runRequest(pycall.Call{StartDate: tt.start, EndDate: tt.end}, "")
			if nodeErr != nil {
				t.Fatal(nodeErr)
			}
			if got := [2]string{req.StartDate, req.EndDate}; got != tt.want {
				t.Errorf("dates = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunRequest_PassesTheStartTimeInUTC(t *testing.T) {
	start := time.Date(2025, 6, 1, 14, 30, 0, 123456789, time.FixedZone("CEST", 2*3600))
	req, _ := runRequest(pycall.Call{StartTime: start}, "")
	if got, want := req.Context.StartTime, "2025-06-01T12:30:00.123456789Z"; got != want {
		t.Errorf("start time = %q, want %q", got, want)
	}
}

func TestRunRequest_PassesMappingsAsJSONAndNoMappingAsNull(t *testing.T) {
	req, nodeErr := runRequest(pycall.Call{
		Hyperparams: map[string]any{"epochs": int64(10), "rate": 0.5},
		NodeConfig:  map[string]any{},
	}, "")
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	c := req.Context
	got := [3]string{c.HyperparamsJson, c.NodeConfigJson, c.PipelineConfigJson}
	if want := [3]string{`{"epochs":10,"rate":0.5}`, `{}`, `null`}; got != want {
		t.Errorf("JSON = %q, want %q", got, want)
	}
}

func TestRunRequest_AMappingJSONCannotCarryFailsTheNodeNamingIt(t *testing.T) {
	_, nodeErr := runRequest(pycall.Call{Node: "train", Hyperparams: map[string]any{"rate": math.NaN()}}, "")
	if nodeErr == nil || nodeErr.Type != "ConfigError" || nodeErr.Retryable ||
		!strings.Contains(nodeErr.Message, `node "train": hyperparams cannot be passed to Python`) {
		t.Errorf("error = %+v; want a permanent ConfigError naming the node and its hyperparams", nodeErr)
	}
}

func TestRunRequest_UsesThePoolsSparkRemoteWhenTheCallHasNone(t *testing.T) {
	tests := []struct{ call, want string }{
		{"", "sc://pool:15002"},
		{"sc://moved:15002", "sc://moved:15002"},
	}
	for _, tt := range tests {
		req, _ := runRequest(pycall.Call{SparkRemote: tt.call}, "sc://pool:15002")
		if req.SparkRemote != tt.want {
			t.Errorf("call's remote %q: request's = %q, want %q", tt.call, req.SparkRemote, tt.want)
		}
	}
}

// The worker calls a streaming node's function in tauro's streaming form
// only when told the node is one.
func TestRunRequest_SaysWhetherTheNodeIsStreaming(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		req, _ := runRequest(pycall.Call{Streaming: streaming}, "")
		if req.Streaming != streaming {
			t.Errorf("a call with Streaming %t made a request with %t", streaming, req.Streaming)
		}
	}
}
