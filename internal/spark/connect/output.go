package connect

import (
	"context"
	"fmt"
	"maps"
	"strings"
)

// OutputSpec is one output of a node, as the engine resolved it from the
// output config (tauro's path rule applied).
//
// # Overwriting a date window (Delta replaceWhere)
//
// An overwrite normally replaces everything at Path. With OverwriteStrategy
// "replace_where" it replaces only the rows of a Delta table that match a
// predicate, and keeps the rest; every row written must match it too, or
// Delta refuses the write and the table is left as it was. The predicate is
// either the run's date window on DateColumn,
//
//	`<DateColumn>` >= '<StartDate>' AND `<DateColumn>` < '<EndDate + 1 day>'
//
// built only from a checked identifier and checked YYYY-MM-DD dates (so
// EndDate's whole day is covered for timestamp columns too, and a DATE or a
// 'YYYY-MM-DD' string column compares as expected), or ReplacePredicate.
//
// The tauro output config keys behind these fields:
//
//	format: delta
//	write_mode: overwrite                # the default; required for replaceWhere
//	overwrite_strategy: replaceWhere     # or replace_where, any case
//	partition_col: event_date            # DateColumn; else the only partition column
//	replace_predicate: "region = 'eu'"   # optional: a fixed predicate instead of the window
//
// StartDate and EndDate are the run's start_date and end_date.
type OutputSpec struct {
	// Key is the output key; dependents read the node's result by it.
	Key string
	// Format is a Spark data source: parquet, csv, json, orc, delta, avro.
	Format string
	// Path is the directory to write.
	Path string
	// WriteMode is overwrite (the default), append, ignore or error.
	WriteMode   string
	PartitionBy []string
	// Options are data source options (compression, header, mergeSchema...).
	Options map[string]string
	// OverwriteStrategy is "" (an overwrite replaces everything) or
	// "replace_where" (tauro's "replaceWhere": Delta only, write mode
	// overwrite; see above).
	OverwriteStrategy string
	// DateColumn is the column replace_where bounds by the window; empty
	// means the only PartitionBy column.
	DateColumn string
	// StartDate and EndDate, YYYY-MM-DD and both inclusive, are the window.
	StartDate, EndDate string
	// ReplacePredicate, when set, is the replace_where predicate instead of
	// the window. It is SQL from the output config, trusted as a node's SQL
	// is; never build it from request values.
	ReplacePredicate string
}

// Check finds what is wrong with out before Spark is asked: an unknown write
// mode or strategy, a missing format or path, a replace_where that is not a
// Delta overwrite or whose column or dates are not valid. Its errors are
// permanent and name the config key to fix, so the engine can run it when it
// validates a pipeline.
func (out OutputSpec) Check() error {
	_, _, err := out.resolve()
	return err
}

// resolve checks out and returns its save mode and its data source options,
// replaceWhere included.
func (out OutputSpec) resolve() (string, map[string]string, error) {
	op := "write output " + out.Key
	mode, ok := saveModes[strings.ToLower(out.WriteMode)]
	if !ok {
		return "", nil, permanent(op, "write_mode %q is not one of overwrite, append, ignore, error", out.WriteMode)
	}
	if out.Format == "" {
		return "", nil, permanent(op, "the output has no format; set one of parquet, delta, csv, json, orc, avro")
	}
	if out.Path == "" {
		return "", nil, permanent(op, "the output has no path")
	}
	strategy, err := overwriteStrategy(out.OverwriteStrategy)
	if err != nil {
		return "", nil, permanent(op, "%v", err)
	}
	if strategy == "" {
		return mode, out.Options, nil
	}
	if !strings.EqualFold(out.Format, "delta") {
		return "", nil, permanent(op, "overwrite_strategy replaceWhere needs format delta, not %s", out.Format)
	}
	if mode != "SAVE_MODE_OVERWRITE" {
		return "", nil, permanent(op, "overwrite_strategy replaceWhere needs write_mode overwrite, not %s", out.WriteMode)
	}
	for k := range out.Options {
		if strings.EqualFold(k, "replaceWhere") {
			return "", nil, permanent(op, "options.%s and overwrite_strategy replaceWhere both set the predicate; keep one", k)
		}
	}
	pred := strings.TrimSpace(out.ReplacePredicate)
	if pred == "" {
		column := out.DateColumn
		if column == "" {
			if len(out.PartitionBy) != 1 {
				return "", nil, permanent(op, "overwrite_strategy replaceWhere needs partition_col, the date column the run's window applies to")
			}
			column = out.PartitionBy[0]
		}
		if pred, err = WindowPredicate(column, out.StartDate, out.EndDate); err != nil {
			return "", nil, permanent(op, "overwrite_strategy replaceWhere: %v", err)
		}
	}
	opts := maps.Clone(out.Options)
	if opts == nil {
		opts = map[string]string{}
	}
	opts["replaceWhere"] = pred
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

// WriteOutput writes view to out.Path as DataFrameWriter would, with the
// save mode, partition columns and options given. Spark SQL has no statement
// that writes a path with a save mode, so this sends the protocol's
// WriteOperation, as every Spark client's writer does. A view without
// columns is refused; one without rows is written and reported with a
// warning.
func (s *Session) WriteOutput(ctx context.Context, view string, out OutputSpec) (*OutputResult, error) {
	op := "write output " + out.Key
	if err := s.check(op); err != nil {
		return nil, err
	}
	mode, options, err := out.resolve()
	if err != nil {
		return nil, err
	}
	schema, err := s.Schema(ctx, view)
	if err != nil {
		return nil, err
	}
	if len(schema) == 0 {
		return nil, permanent(op, "%s has no columns; a node must return at least one", view)
	}
	// Counting the rows as they are written costs nothing extra; counting
	// them afterwards would compute the view again. The observation's name
	// is unique per write: the session's writes run concurrently, and
	// observations of one name would report each other's counts.
	observation := rowsObservation + "_" + strings.ReplaceAll(newUUID(), "-", "")
	write := writeOperation(view, out.Format, out.Path, mode, out.PartitionBy, options, observation)
	resp, err := s.execute(ctx, write)
	if err != nil {
		return nil, withSourceHint(s.fail(ctx, op, err), out.Format)
	}
	res := &OutputResult{Key: out.Key, Path: out.Path, Rows: -1}
	if n, ok := resp.Observed[observation][rowsMetric]; ok {
		res.Rows = n
	}
	if res.Rows == 0 {
		res.Warning = fmt.Sprintf("output %s wrote no rows to %s", out.Key, out.Path)
	}
	return res, nil
}
