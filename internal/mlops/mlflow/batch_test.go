package mlflow

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// bigBatch is 2,500 metrics (10 keys of 250 steps), 150 params and 150
// tags.
func bigBatch() Batch {
	var b Batch
	for k := range 10 {
		for step := range 250 {
			b.Metrics = append(b.Metrics, Metric{Key: fmt.Sprintf("m%d", k), Value: float64(k*1000 + step), Timestamp: 1_700_000_000_000 + int64(step), Step: int64(step)})
		}
	}
	for i := range 150 {
		b.Params = append(b.Params, Param{Key: fmt.Sprintf("p%03d", i), Value: fmt.Sprint(i)})
		b.Tags = append(b.Tags, Tag{Key: fmt.Sprintf("t%03d", i), Value: fmt.Sprint(i)})
	}
	return b
}

// checkParts fails the test unless every part is within MLflow's limits
// and the parts, put back together, are b in its order.
func checkParts(t *testing.T, b Batch, parts []Batch) {
	t.Helper()
	var all Batch
	for i, p := range parts {
		if len(p.Metrics) > MaxMetricsPerBatch || len(p.Params) > MaxParamsPerBatch || len(p.Tags) > MaxTagsPerBatch || p.len() > MaxEntitiesPerBatch {
			t.Errorf("part %d has %d metrics, %d params, %d tags: over MLflow's limits", i, len(p.Metrics), len(p.Params), len(p.Tags))
		}
		if p.len() == 0 {
			t.Errorf("part %d is empty", i)
		}
		body, err := json.Marshal(struct {
			RunID   string   `json:"run_id"`
			Metrics []Metric `json:"metrics"`
			Params  []Param  `json:"params"`
			Tags    []Tag    `json:"tags"`
		}{strings.Repeat("0", 32), p.Metrics, p.Params, p.Tags})
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > MaxBatchBytes {
			t.Errorf("part %d is %d bytes of JSON, over MLflow's %d", i, len(body), MaxBatchBytes)
		}
		all.Metrics = append(all.Metrics, p.Metrics...)
		all.Params = append(all.Params, p.Params...)
		all.Tags = append(all.Tags, p.Tags...)
	}
	if !reflect.DeepEqual(all, b) {
		t.Errorf("the parts put together are not the batch: %d metrics, %d params, %d tags of %d, %d, %d",
			len(all.Metrics), len(all.Params), len(all.Tags), len(b.Metrics), len(b.Params), len(b.Tags))
	}
}

func TestSplit_CountsWithinLimitsInOrder(t *testing.T) {
	b := bigBatch()
	parts := Split(b)
	checkParts(t, b, parts)
	// 100 params, 100 tags and 800 metrics; 50, 50 and 900; 800 metrics.
	if len(parts) != 3 {
		t.Errorf("%d parts, want 3", len(parts))
	}
}

func TestSplit_LongValuesBySize(t *testing.T) {
	var b Batch
	for i := range 100 {
		b.Params = append(b.Params, Param{Key: fmt.Sprintf("p%d", i), Value: strings.Repeat("v", MaxParamValueLength)})
		b.Tags = append(b.Tags, Tag{Key: fmt.Sprintf("t%d", i), Value: strings.Repeat("é", MaxTagValueLength)})
	}
	parts := Split(b)
	checkParts(t, b, parts)
	// 600 kB of params and 1.6 MB of tags (é is two bytes).
	if len(parts) < 3 {
		t.Errorf("%d parts for 2.2 MB, want at least 3", len(parts))
	}
}

func TestSplit_NothingHasNoParts(t *testing.T) {
	if parts := Split(Batch{}); len(parts) != 0 {
		t.Errorf("Split of nothing: %d parts", len(parts))
	}
}

func TestLogBatch_OverLongValuesAreRefusedAndNothingIsSent(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c, err := New(Config{URI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Batch{
		"param value": {Params: []Param{{Key: "ok", Value: "1"}, {Key: "long", Value: strings.Repeat("x", MaxParamValueLength+1)}}},
		"tag value":   {Tags: []Tag{{Key: "long", Value: strings.Repeat("x", MaxTagValueLength+1)}}},
		"key":         {Metrics: []Metric{{Key: strings.Repeat("k", MaxKeyLength+1)}}},
		"no key":      {Params: []Param{{Value: "1"}}},
	}
	for name, b := range cases {
		b.Metrics = append(b.Metrics, bigBatch().Metrics...) // parts that could have gone first
		err := c.LogBatch(context.Background(), "run", b)
		if !HasCode(err, CodeInvalidParameterValue) || IsRetryable(err) {
			t.Errorf("%s: LogBatch = %v, want a refusal, not retryable", name, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
	err = c.LogBatch(context.Background(), "run", Batch{Params: []Param{{Key: "p", Value: strings.Repeat("é", MaxParamValueLength)}}})
	if err != nil || requests.Load() != 1 {
		t.Errorf("a value at the limit in characters: %v, %d requests", err, requests.Load())
	}
}

func TestMetric_NonFiniteValuesAsProtobufJSON(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, -1.5, 1e300} {
		b, err := json.Marshal(Metric{Key: "m", Value: v, Timestamp: 5, Step: 2})
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		var back Metric
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		same := back.Value == v || (math.IsNaN(v) && math.IsNaN(back.Value))
		if !same || back.Key != "m" || back.Timestamp != 5 || back.Step != 2 {
			t.Errorf("%v went as %s and came back as %+v", v, b, back)
		}
	}
	if b, _ := json.Marshal(Metric{Value: math.NaN()}); !strings.Contains(string(b), `"value":"NaN"`) {
		t.Errorf("NaN encodes as %s, want the string NaN", b)
	}
}
