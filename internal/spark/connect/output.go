package connect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// OutputSpec is one output of a node as planning resolved it: tauro's path
// rule applied, the save mode normalised, the replaceWhere predicate built
// from checked values or taken from the output config.
type OutputSpec = plan.OutputSpec

// resolveOutput checks out and returns its save mode and its data source
// options, replaceWhere included.
func resolveOutput(out OutputSpec) (string, map[string]string, error) {
	op := "write output " + out.Key
	mode, ok := saveModes[strings.ToLower(out.WriteMode)]
	if !ok {
		return "", nil, permanent(op, "write_mode %q is not one of overwrite, append, ignore, error", out.WriteMode)
	}
	if out.Format == "" {
		return "", nil, permanent(op, "the output has no format; set one of parquet, delta, csv, json, orc, avro, kafka")
	}
	if strings.EqualFold(out.Format, "kafka") {
		if out.Path != "" || out.Options["topic"] == "" || mode != "SAVE_MODE_APPEND" {
			return "", nil, permanent(op, "a kafka output appends to options.topic and has no path; got path %q, topic %q, write_mode %q",
				out.Path, out.Options["topic"], out.WriteMode)
		}
		return mode, out.Options, nil
	}
	if out.Path == "" {
		return "", nil, permanent(op, "the output has no path")
	}
	if out.ReplaceWhere == "" {
		return mode, out.Options, nil
	}
	if !strings.EqualFold(out.Format, "delta") || mode != "SAVE_MODE_OVERWRITE" {
		return "", nil, permanent(op, "replaceWhere needs a Delta overwrite, not %s %s", out.Format, out.WriteMode)
	}
	opts := maps.Clone(out.Options)
	if opts == nil {
		opts = map[string]string{}
	}
	opts["replaceWhere"] = out.ReplaceWhere
	return mode, opts, nil
}

// OutputResult reports one written output.
type OutputResult struct {
	Key  string
	Path string
	// Rows is the number of rows written, -1 when Spark did not say (a
	// write skipped by mode ignore, a source without metrics).
	Rows int64
	// Warning is set when the output is empty.
	Warning string
	// Observed are the values the write observed by name: "rows" and its
	// Observe's metrics.
	Observed map[string]int64
}

const rowsObservation = "tauro_rows_written"

var saveModes = map[string]string{
	"":              "SAVE_MODE_OVERWRITE",
	"overwrite":     "SAVE_MODE_OVERWRITE",
	"append":        "SAVE_MODE_APPEND",
	"ignore":        "SAVE_MODE_IGNORE",
	"error":         "SAVE_MODE_ERROR_IF_EXISTS",
	"errorifexists": "SAVE_MODE_ERROR_IF_EXISTS",
}

// destination names where out writes, for messages.
func destination(out OutputSpec) string {
	if out.Path == "" && out.Options["topic"] != "" {
		return "topic " + out.Options["topic"]
	}
	return out.Path
}

// WriteOutput writes view to out.Path (a kafka output: to its topic) as
// DataFrameWriter would, with the
// save mode, partition columns and options given. Spark SQL has no statement
// that writes a path with a save mode, so this sends the protocol's
// WriteOperation, as every Spark client's writer does. A view without
// columns is refused; one without rows is written and reported with a
// warning.
//
// A non-empty step names the write in the session's journal: it runs once,
// and another process that takes the session up takes the write up where
// it was instead of writing again (see executeStep).
func (s *Session) WriteOutput(ctx context.Context, view string, out OutputSpec, step string) (*OutputResult, error) {
	op := "write output " + out.Key
	if err := s.check(op); err != nil {
		return nil, err
	}
	if _, _, err := resolveOutput(out); err != nil {
		return nil, err
	}
	schema, err := s.Schema(ctx, view)
	if err != nil {
		return nil, err
	}
	if len(schema) == 0 {
		return nil, noColumns(op, view)
	}
	return s.WriteResult(ctx, view, out, step)
}

func noColumns(op, view string) error {
	return permanent(op, "%s has no columns; a node must return at least one", view)
}

// WriteResult writes view as WriteOutput does, without asking Spark for
// its columns first: one round trip less for a result known to have some.
// A write that fails is looked at once more, so that a result without
// columns is still reported as such rather than by the data source. step
// is as WriteOutput's.
func (s *Session) WriteResult(ctx context.Context, view string, out OutputSpec, step string) (*OutputResult, error) {
	return s.WriteObserved(ctx, view, out, step, Observe{})
}

// Observe is what a write looks at besides the rows it writes, in the job
// that writes them (Dataset.observe): no second pass over the data.
type Observe struct {
	// Metrics are aggregates over every row of the view, Keep or not.
	Metrics []Metric
	// Keep, when set, is a SQL condition: only the rows that meet it are
	// written, and counted as written.
	Keep string
	// Unfiltered: the rows meeting Keep are counted as written, but every
	// row is passed on, for a sink that filters them itself (a streaming
	// node's quarantine split).
	Unfiltered bool
}

// CountWhere is the aggregate that counts the rows meeting condition (a
// NULL does not). It is a sum over a CASE rather than count_if: in an
// observation, Spark evaluates count_if at several times the cost.
func CountWhere(condition string) string {
	return "sum(CASE WHEN (" + condition + ") THEN 1L ELSE 0L END)"
}

// observedInput is view as a write of obs takes it: observed under
// observation over every row (the rows Keep keeps counted as "rows"),
// then filtered by Keep. One observation, as a plain write has: each is a
// step of the job that Spark's generated code cannot run through.
func observedInput(view string, obs Observe, observation string) relation {
	rows := ""
	if obs.Keep != "" {
		rows = CountWhere(obs.Keep)
	}
	input := countingRows(namedTable(view, nil), observation, "1", rows, obs.Metrics...)
	if obs.Keep != "" && !obs.Unfiltered {
		input = filtered(input, obs.Keep)
	}
	return input
}

// WriteObserved writes view as WriteResult does, filtered and observed as
// obs says; the result's Observed holds obs's metrics by name.
func (s *Session) WriteObserved(ctx context.Context, view string, out OutputSpec, step string, obs Observe) (*OutputResult, error) {
	op := "write output " + out.Key
	if err := s.check(op); err != nil {
		return nil, err
	}
	mode, options, err := resolveOutput(out)
	if err != nil {
		return nil, err
	}
	// Counting the rows as they are written costs nothing extra; counting
	// them afterwards would compute the view again. The observation's name
	// is unique per write: the session's writes run concurrently, and
	// observations of one name would report each other's counts.
	// A journaled write is named after its step: the process that takes it
	// up reads the metric the first one asked for.
	observation := rowsObservation + "_" + strings.ReplaceAll(newUUID(), "-", "")
	if step != "" {
		sum := sha256.Sum256([]byte(step))
		observation = rowsObservation + "_" + hex.EncodeToString(sum[:12])
	}
	write := writeOperation(observedInput(view, obs, observation), out.Format, out.Path, mode, out.PartitionBy, options)
	resp, err := s.executeStep(ctx, step, write)
	if err != nil {
		err = withSourceHint(s.fail(ctx, op, err), out.Format)
		var se *Error
		if ctx.Err() == nil && errors.As(err, &se) && !se.Retryable() {
			if schema, serr := s.Schema(ctx, view); serr == nil && len(schema) == 0 {
				return nil, noColumns(op, view)
			}
		}
		return nil, err
	}
	res := &OutputResult{Key: out.Key, Path: out.Path, Rows: -1}
	if n, ok := resp.Observed[observation][rowsMetric]; ok {
		res.Rows = n
	}
	res.Observed = maps.Clone(resp.Observed[observation])
	if res.Rows == 0 {
		res.Warning = fmt.Sprintf("output %s wrote no rows to %s", out.Key, destination(out))
	}
	return res, nil
}
