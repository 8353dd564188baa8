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
		EndOffset    json.RawMessage `json:"endOffset"`
		LatestOffset json.RawMessage `json:"latestOffset"`
	} `json:"sources"`
	Sink *struct {
		Description   string `json:"description"`
		NumOutputRows *int64 `json:"numOutputRows"`
	} `json:"sink"`
	// ObservedMetrics holds, per observation name, the row Dataset.observe
	// computed for the batch.
	ObservedMetrics map[string]map[string]any `json:"observedMetrics"`
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
		p.Sources = append(p.Sources, run.SourceProgress{Description: s.Description,
			StartOffset: offset(s.StartOffset), EndOffset: offset(s.EndOffset), LatestOffset: offset(s.LatestOffset),
			InputRows: s.NumInputRows, InputRate: s.InputRate, ProcessRate: s.ProcessRate})
	}
	if s := r.Sink; s != nil {
		p.Sink = &run.SinkProgress{Description: s.Description, OutputRows: -1}
		if s.NumOutputRows != nil {
			p.Sink.OutputRows = *s.NumOutputRows
		}
	}
	if len(r.ObservedMetrics) > 0 {
		p.Observed = r.ObservedMetrics
	}
	for _, op := range r.StateOperators {
		p.StateRows += op.NumRowsTotal
	}
	return p
}

// offset is a source's offset as its JSON, "" when it has none.
func offset(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "null" {
		return ""
	}
	return s
}

// startOffsets describes where the batch's sources started, "" when every
// source started from nothing (a query's first run).
func (r *report) startOffsets() string {
	var parts []string
	for _, s := range r.Sources {
		off := offset(s.StartOffset)
		if off == "" {
			continue
		}
		parts = append(parts, s.Description+" offset "+off)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
