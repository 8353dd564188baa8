package streaming

import (
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func TestReport_RatesAndRowsAreSummedOverTheSources(t *testing.T) {
	// A micro-batch as Spark 4.2's Connect server reports it: no top-level
	// numInputRows or rates, only the sources'.
	const js = `{"id": "c6bb1c07", "runId": "0960e471", "name": null, "timestamp": "2026-12-02T05:10:36.000Z",
	"batchId": 4, "batchDuration": 361, "durationMs": {"triggerExecution": 360, "addBatch": 140, "walCommit": 40},
	"eventTime": {"watermark": "2025-03-01T10:00:00.000Z"}, "stateOperators": [{"numRowsTotal": 7}],
	"sources": [
		{"description": "FileStreamSource[file:/in]", "startOffset": null, "endOffset": "{\"logOffset\":0}", "numInputRows": 2, "inputRowsPerSecond": 1.0, "processedRowsPerSecond": 5.5},
		{"description": "RateStreamV2", "startOffset": 3, "endOffset": 4, "numInputRows": 10, "inputRowsPerSecond": NaN, "processedRowsPerSecond": 20.0}],
	"sink": {"description": "DeltaSink", "numOutputRows": 12}}`
	r, err := parseReport(js)
	if err != nil {
		t.Fatal(err)
	}
	got := r.progress()
	want := run.Progress{BatchID: 4, InputRows: 12, InputRate: 1, ProcessRate: 25.5, BatchDuration: 360 * time.Millisecond,
		Watermark: "2025-03-01T10:00:00.000Z", StateRows: 7}
	if got != want {
		t.Errorf("progress %+v\nwant     %+v", got, want)
	}
	if !r.ranBatch() {
		t.Error("a batch with addBatch time did not run")
	}
}
