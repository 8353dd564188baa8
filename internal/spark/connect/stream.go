package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// StreamInput is one input of a streaming node read as a stream.
type StreamInput struct {
	// Name is the view the node's query reads it by.
	Name string
	// Format is a Spark streaming source: kafka, rate, delta, or a file
	// format (csv, json, parquet, orc, text) for a folder of files.
	Format  string
	Path    string
	Options map[string]string
	// Schema is DDL; file streams need one unless they infer it.
	Schema string
	// JSONSchema, when set, parses each record's value (Kafka's, as text)
	// as JSON of this DDL schema and makes its fields the columns.
	JSONSchema string
	// WatermarkColumn and WatermarkDelay set the event-time watermark.
	WatermarkColumn, WatermarkDelay string
}

// RegisterStream makes in readable by node SQL as a streaming view named
// in.Name. Spark resolves the source at once, so a missing folder or a
// source without its connector fails here with Spark's message.
func (s *Session) RegisterStream(ctx context.Context, in StreamInput) error {
	op := "register stream " + in.Name
	if err := s.check(op); err != nil {
		return err
	}
	if in.Name == "" || in.Format == "" {
		return permanent(op, "a stream needs a name and a format")
	}
	rel := streamSource(strings.ToLower(in.Format), in.Path, in.Schema, in.Options)
	if in.JSONSchema != "" {
		var err error
		raw := in.Name + "__raw"
		if err = s.createView(ctx, op, raw, rel, false); err != nil {
			return withSourceHint(err, in.Format)
		}
		rel, err = sqlRelation("SELECT parsed.* FROM (SELECT from_json(CAST(value AS STRING), :schema) AS parsed FROM "+quote(raw)+")",
			map[string]any{"schema": in.JSONSchema})
		if err != nil {
			return permanent(op, "%v", err)
		}
	}
	if in.WatermarkColumn != "" {
		rel = withWatermark(rel, in.WatermarkColumn, in.WatermarkDelay)
	}
	if err := s.createView(ctx, op, in.Name, rel, false); err != nil {
		return withSourceHint(err, in.Format)
	}
	s.addInput(in.Name)
	return nil
}

// DefineView makes the result of query (over the session's views, streams
// among them) a session view named name, without running it.
func (s *Session) DefineView(ctx context.Context, name, query string, params map[string]any) error {
	op := "define view " + name
	if err := s.check(op); err != nil {
		return err
	}
	rel, err := sqlRelation(query, params)
	if err != nil {
		return permanent(op, "%v", err)
	}
	if err := s.createView(ctx, op, name, rel, false); err != nil {
		return err
	}
	s.addView(name)
	return nil
}

// QueryID names a streaming query: its id is stable across restarts from
// the same checkpoint, its run id is new at each start.
type QueryID struct {
	ID    string `json:"id"`
	RunID string `json:"runId"`
}

// StartStream starts q and returns its id once Spark has started it.
func (s *Session) StartStream(ctx context.Context, q StreamStart) (QueryID, error) {
	op := "start streaming query " + q.View
	if err := s.check(op); err != nil {
		return QueryID{}, err
	}
	resp, err := s.execute(ctx, writeStreamStart(q))
	if err != nil {
		return QueryID{}, withSourceHint(s.fail(ctx, op, err), q.Format)
	}
	var res struct {
		QueryID QueryID `json:"queryId"`
	}
	if err := decodeResult(resp, fieldStreamStartResult, &res); err != nil || res.QueryID.ID == "" {
		return QueryID{}, permanent(op, "Spark started no query: %v", err)
	}
	return res.QueryID, nil
}

// QueryStatus is what Spark says a query is doing now.
type QueryStatus struct {
	Message       string `json:"statusMessage"`
	DataAvailable bool   `json:"isDataAvailable"`
	TriggerActive bool   `json:"isTriggerActive"`
	Active        bool   `json:"isActive"`
}

// QueryStatus asks for q's status. A query that has ended is not active.
func (s *Session) QueryStatus(ctx context.Context, q QueryID) (QueryStatus, error) {
	var res struct {
		Status QueryStatus `json:"status"`
	}
	err := s.queryCommand(ctx, q, "status", true, &res)
	return res.Status, err
}

// progressResult is how Spark answers both recentProgress and lastProgress.
type progressResult struct {
	Recent struct {
		JSON []string `json:"recentProgressJson"`
	} `json:"recentProgress"`
}

// QueryProgress returns the query's recent progress reports as Spark's
// JSON, oldest first (Spark keeps the last hundred or so).
func (s *Session) QueryProgress(ctx context.Context, q QueryID) ([]string, error) {
	var res progressResult
	err := s.queryCommand(ctx, q, "recentProgress", true, &res)
	return res.Recent.JSON, err
}

// QueryLastProgress returns the query's newest progress report as Spark's
// JSON, "" before its first: one report, where QueryProgress sends them all.
func (s *Session) QueryLastProgress(ctx context.Context, q QueryID) (string, error) {
	var res progressResult
	if err := s.queryCommand(ctx, q, "lastProgress", true, &res); err != nil || len(res.Recent.JSON) == 0 {
		return "", err
	}
	return res.Recent.JSON[0], nil
}

// QueryError is why a query failed.
type QueryError struct {
	Message string `json:"exceptionMessage"`
	Class   string `json:"errorClass"`
	Stack   string `json:"stackTrace"`
}

// QueryException returns why q failed, nil when it has not.
func (s *Session) QueryException(ctx context.Context, q QueryID) (*QueryError, error) {
	var res struct {
		Exception *QueryError `json:"exception"`
	}
	if err := s.queryCommand(ctx, q, "exception", true, &res); err != nil {
		return nil, err
	}
	if res.Exception == nil || res.Exception.Message == "" {
		return nil, nil
	}
	return res.Exception, nil
}

// StopQuery stops q: the micro-batch under way is interrupted, and the
// call returns once the query has stopped.
func (s *Session) StopQuery(ctx context.Context, q QueryID) error {
	return s.queryCommand(ctx, q, "stop", true, nil)
}

// ActiveQueries lists the session's running streaming queries.
func (s *Session) ActiveQueries(ctx context.Context) ([]QueryID, error) {
	op := "list streaming queries"
	if err := s.check(op); err != nil {
		return nil, err
	}
	resp, err := s.execute(ctx, activeQueries())
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	var res struct {
		Active struct {
			Queries []struct {
				ID QueryID `json:"id"`
			} `json:"activeQueries"`
		} `json:"active"`
	}
	if err := decodeResult(resp, fieldStreamManagerResult, &res); err != nil {
		return nil, permanent(op, "%v", err)
	}
	out := make([]QueryID, 0, len(res.Active.Queries))
	for _, q := range res.Active.Queries {
		out = append(out, q.ID)
	}
	return out, nil
}

func (s *Session) queryCommand(ctx context.Context, q QueryID, which string, arg any, into any) error {
	op := "streaming query " + q.ID + ": " + which
	if err := s.check(op); err != nil {
		return err
	}
	resp, err := s.execute(ctx, streamingQueryCommand(q.ID, q.RunID, which, arg))
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if into == nil {
		return nil
	}
	if err := decodeResult(resp, fieldStreamQueryResult, into); err != nil {
		return permanent(op, "%v", err)
	}
	return nil
}

// decodeResult reads the command result the response carried.
func decodeResult(resp *executeResponse, field protoreflect.Name, into any) error {
	b, ok := resp.Results[field]
	if !ok {
		return fmt.Errorf("the server sent no %s", field)
	}
	return json.Unmarshal(b, into)
}
