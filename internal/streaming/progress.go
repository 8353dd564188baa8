package streaming

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// report is the part of Spark's StreamingQueryProgress JSON that a run
// shows. Spark's JSON gives no input row count or rates for the whole
// batch: they are sums over the sources, as Spark defines them.
type report struct {
	BatchID        int64             `json:"batchId"`
	Timestamp      string            `json:"timestamp"` // when the trigger started
	DurationMs     map[string]int64  `json:"durationMs"`
	EventTime      map[string]string `json:"eventTime"`
	StateOperators []struct {
		NumRowsTotal int64 `json:"numRowsTotal"`
	} `json:"stateOperators"`
	Sources []struct {
		Description  string          `json:"description"`
		NumInputRows int64           `json:"numInputRows"`
		InputRate    float64         `json:"inputRowsPerSecond"`
		ProcessRate  float64         `json:"processedRowsPerSecond"`
		StartOffset  json.RawMessage `json:"startOffset"`
	} `json:"sources"`
}

// parseReport reads one progress report. Spark writes NaN for a rate it
// cannot compute yet, which JSON does not allow.
func parseReport(js string) (*report, error) {
	js = strings.ReplaceAll(js, ": NaN", ": 0")
	var r report
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// triggerOf names the trigger a report (or "", none) is of: its start
// time, or the report itself when it cannot be read.
func triggerOf(js string) string {
	if r, err := parseReport(js); err == nil && r.Timestamp != "" {
		return r.Timestamp
	}
	return js
}

// ranBatch reports whether the trigger ran a micro-batch. One that found no
// new data reports only how long it took to look (latestOffset), never
// addBatch.
func (r *report) ranBatch() bool {
	_, ok := r.DurationMs["addBatch"]
	return ok
}

// progress is the report as a run event's payload.
func (r *report) progress() run.Progress {
	p := run.Progress{
		BatchID:       r.BatchID,
		BatchDuration: time.Duration(r.DurationMs["triggerExecution"]) * time.Millisecond,
		Watermark:     r.EventTime["watermark"],
	}
	for _, s := range r.Sources {
		p.InputRows += s.NumInputRows
		p.InputRate += s.InputRate
		p.ProcessRate += s.ProcessRate
	}
	for _, op := range r.StateOperators {
		p.StateRows += op.NumRowsTotal
	}
	return p
}

// startOffsets describes where the batch's sources started, "" when every
// source started from nothing (a query's first run).
func (r *report) startOffsets() string {
	var parts []string
	for _, s := range r.Sources {
		off := strings.TrimSpace(string(s.StartOffset))
		if off == "" || off == "null" {
			continue
		}
		parts = append(parts, s.Description+" offset "+off)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
