package mlflow

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// Tags MLflow gives a meaning to.
const (
	// TagNote is an experiment's or a run's description, shown by the UI.
	TagNote = "mlflow.note.content"
	// TagParentRunID makes a run a child of another, nested under it in
	// the UI.
	TagParentRunID = "mlflow.parentRunId"
)

// Tag is a run's, an experiment's or a model's tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Param is a run's parameter. MLflow keeps a param's first value: logging
// the same key again with another value is an error.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Metric is one value of a run's metric; a metric's values are kept, each
// with its step and timestamp (milliseconds).
type Metric struct {
	Key       string
	Value     float64
	Timestamp int64
	Step      int64
}

// wireMetric is a Metric as the API reads and writes it: a value that is
// not a finite number is a string ("NaN", "Infinity", "-Infinity"), as
// protobuf's JSON has it.
type wireMetric struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Timestamp int64           `json:"timestamp"`
	Step      int64           `json:"step"`
}

func (m Metric) MarshalJSON() ([]byte, error) {
	v := strconv.AppendFloat(nil, m.Value, 'g', -1, 64)
	switch {
	case math.IsNaN(m.Value):
		v = []byte(`"NaN"`)
	case math.IsInf(m.Value, 1):
		v = []byte(`"Infinity"`)
	case math.IsInf(m.Value, -1):
		v = []byte(`"-Infinity"`)
	}
	return json.Marshal(wireMetric{Key: m.Key, Value: v, Timestamp: m.Timestamp, Step: m.Step})
}

func (m *Metric) UnmarshalJSON(b []byte) error {
	var w wireMetric
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	text := string(w.Value)
	if len(w.Value) > 0 && w.Value[0] == '"' {
		if err := json.Unmarshal(w.Value, &text); err != nil {
			return err
		}
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("metric %q: value %s is not a number", w.Key, w.Value)
	}
	*m = Metric{Key: w.Key, Value: v, Timestamp: w.Timestamp, Step: w.Step}
	return nil
}

// Experiment is an MLflow experiment.
type Experiment struct {
	ID               string `json:"experiment_id"`
	Name             string `json:"name"`
	ArtifactLocation string `json:"artifact_location"`
	LifecycleStage   string `json:"lifecycle_stage"` // "active" or "deleted"
	Tags             []Tag  `json:"tags"`
}

// RunStatus is a run's status.
type RunStatus string

const (
	StatusRunning  RunStatus = "RUNNING"
	StatusFinished RunStatus = "FINISHED"
	StatusFailed   RunStatus = "FAILED"
	StatusKilled   RunStatus = "KILLED"
)

// RunInfo is a run's metadata.
type RunInfo struct {
	RunID          string    `json:"run_id"`
	ExperimentID   string    `json:"experiment_id"`
	RunName        string    `json:"run_name"`
	UserID         string    `json:"user_id"`
	Status         RunStatus `json:"status"`
	StartTime      int64     `json:"start_time"`
	EndTime        int64     `json:"end_time"`
	ArtifactURI    string    `json:"artifact_uri"`
	LifecycleStage string    `json:"lifecycle_stage"`
}

// RunData is what a run logged: each metric's latest value only (the
// history is MetricHistory's), its params and its tags.
type RunData struct {
	Metrics []Metric `json:"metrics"`
	Params  []Param  `json:"params"`
	Tags    []Tag    `json:"tags"`
}

// Run is an MLflow run.
type Run struct {
	Info RunInfo `json:"info"`
	Data RunData `json:"data"`
}

// GetOrCreateExperiment returns the experiment called name, creating it if
// there is none, with description as its note (TagNote). An existing
// experiment's note is set to description when they differ; an empty
// description leaves it. A deleted experiment of that name is an error:
// MLflow keeps its name until it is restored or deleted for good.
func (c *Client) GetOrCreateExperiment(ctx context.Context, name, description string) (Experiment, error) {
	exp, err := c.experimentByName(ctx, name)
	if HasCode(err, CodeResourceDoesNotExist) {
		req := struct {
			Name string `json:"name"`
			Tags []Tag  `json:"tags,omitempty"`
		}{Name: name}
		if description != "" {
			req.Tags = []Tag{{Key: TagNote, Value: description}}
		}
		err = c.post(ctx, "experiments/create", req, nil)
		// Created here or, since the look-up, by another client: it is
		// there either way.
		if err == nil || HasCode(err, CodeResourceAlreadyExists) {
			exp, err = c.experimentByName(ctx, name)
		}
	}
	if err != nil {
		return Experiment{}, err
	}
	if exp.LifecycleStage == "deleted" {
		return Experiment{}, fmt.Errorf("mlflow: experiment %q (id %s) is deleted: restore it, or delete it for good, in MLflow", name, exp.ID)
	}
	if description != "" && tagValue(exp.Tags, TagNote) != description {
		req := struct {
			ExperimentID string `json:"experiment_id"`
			Key          string `json:"key"`
			Value        string `json:"value"`
		}{exp.ID, TagNote, description}
		if err := c.post(ctx, "experiments/set-experiment-tag", req, nil); err != nil {
			return Experiment{}, err
		}
		exp.Tags = setTag(exp.Tags, TagNote, description)
	}
	return exp, nil
}

func (c *Client) experimentByName(ctx context.Context, name string) (Experiment, error) {
	var resp struct {
		Experiment Experiment `json:"experiment"`
	}
	err := c.get(ctx, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &resp)
	return resp.Experiment, err
}

// RunSpec describes a run to create.
type RunSpec struct {
	ExperimentID string
	Name         string
	User         string
	// StartTime is in milliseconds; zero is now.
	StartTime int64
	// ParentRunID, when set, nests the run under that run (TagParentRunID).
	ParentRunID string
	Tags        []Tag
}

// CreateRun creates a RUNNING run.
func (c *Client) CreateRun(ctx context.Context, spec RunSpec) (Run, error) {
	req := struct {
		ExperimentID string `json:"experiment_id"`
		UserID       string `json:"user_id,omitempty"`
		RunName      string `json:"run_name,omitempty"`
		StartTime    int64  `json:"start_time"`
		Tags         []Tag  `json:"tags,omitempty"`
	}{spec.ExperimentID, spec.User, spec.Name, spec.StartTime, spec.Tags}
	if req.StartTime == 0 {
		req.StartTime = time.Now().UnixMilli()
	}
	if spec.ParentRunID != "" {
		req.Tags = setTag(append([]Tag(nil), spec.Tags...), TagParentRunID, spec.ParentRunID)
	}
	var resp struct {
		Run Run `json:"run"`
	}
	err := c.post(ctx, "runs/create", req, &resp)
	return resp.Run, err
}

// UpdateRun sets a run's status and end time (milliseconds; zero is now).
func (c *Client) UpdateRun(ctx context.Context, runID string, status RunStatus, endTime int64) (RunInfo, error) {
	if endTime == 0 {
		endTime = time.Now().UnixMilli()
	}
	req := struct {
		RunID   string    `json:"run_id"`
		Status  RunStatus `json:"status"`
		EndTime int64     `json:"end_time"`
	}{runID, status, endTime}
	var resp struct {
		RunInfo RunInfo `json:"run_info"`
	}
	err := c.post(ctx, "runs/update", req, &resp)
	return resp.RunInfo, err
}

// GetRun returns a run, with each metric's latest value.
func (c *Client) GetRun(ctx context.Context, runID string) (Run, error) {
	var resp struct {
		Run Run `json:"run"`
	}
	err := c.get(ctx, "runs/get", url.Values{"run_id": {runID}}, &resp)
	return resp.Run, err
}

// SearchRuns returns the active runs of the experiments that match filter
// (MLflow's search syntax, e.g. "tags.mlflow.parentRunId = 'abc'"; empty
// matches all), every page of them, newest first.
func (c *Client) SearchRuns(ctx context.Context, experimentIDs []string, filter string) ([]Run, error) {
	var runs []Run
	token := ""
	for {
		req := struct {
			ExperimentIDs []string `json:"experiment_ids"`
			Filter        string   `json:"filter,omitempty"`
			MaxResults    int      `json:"max_results"`
			PageToken     string   `json:"page_token,omitempty"`
		}{experimentIDs, filter, 1000, token}
		var resp struct {
			Runs          []Run  `json:"runs"`
			NextPageToken string `json:"next_page_token"`
		}
		if err := c.post(ctx, "runs/search", req, &resp); err != nil {
			return nil, err
		}
		runs = append(runs, resp.Runs...)
		if resp.NextPageToken == "" {
			return runs, nil
		}
		token = resp.NextPageToken
	}
}

// MetricHistory returns every value a run logged for the metric key, every
// page of them.
func (c *Client) MetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	var metrics []Metric
	q := url.Values{"run_id": {runID}, "metric_key": {key}}
	for {
		var resp struct {
			Metrics       []Metric `json:"metrics"`
			NextPageToken string   `json:"next_page_token"`
		}
		if err := c.get(ctx, "metrics/get-history", q, &resp); err != nil {
			return nil, err
		}
		metrics = append(metrics, resp.Metrics...)
		if resp.NextPageToken == "" {
			return metrics, nil
		}
		q.Set("page_token", resp.NextPageToken)
	}
}

func tagValue(tags []Tag, key string) string {
	for _, t := range tags {
		if t.Key == key {
			return t.Value
		}
	}
	return ""
}

// setTag sets key to value in tags, replacing a tag of that key.
func setTag(tags []Tag, key, value string) []Tag {
	for i := range tags {
		if tags[i].Key == key {
			tags[i].Value = value
			return tags
		}
	}
	return append(tags, Tag{Key: key, Value: value})
}
