package plan

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// InputSpec says how to read one input: an entry of the input config, or
// what a node of the pipeline writes, read back. Paths are absolute (taken
// from the project's base_path) or URLs.
type InputSpec struct {
	// Key is the input key; node SQL reads the input by it.
	Key string
	// Format is a Spark data source (parquet, csv, json, orc, avro, delta,
	// xml, text), "table" for a catalog table or "query" for a SQL query.
	Format  string
	Path    string
	Options map[string]string
	// Schema is a DDL schema ("id BIGINT, name STRING") used instead of
	// inference.
	Schema string
	// Table is the table name of format table.
	Table string
	// Query is the SQL of format query; the run's dates are bound to it.
	Query string
	// Filter is tauro's partition_filter, a SQL condition Spark can prune
	// partitions with.
	Filter string
}

// Input is one input of a node.
type Input struct {
	// Key is the input key as the node wrote it.
	Key string
	// Producer is the node of the pipeline that writes Key; "" when the
	// input comes from the input config (or the node reads its own
	// output's previous version).
	Producer string
	// Read is how to read it without its producer's live result: the input
	// config entry, or the producer's output read back.
	Read InputSpec
}

// OutputSpec is one output of a node: tauro's output config entry with its
// path rule applied (<output_path>/[<env>/]<schema>/<sub_folder>/<table>).
type OutputSpec struct {
	// Key is the parsed output key, schema.sub_folder.table.
	Key    string
	Format string
	Path   string
	// WriteMode is overwrite (the default), append, ignore or error.
	WriteMode   string
	PartitionBy []string
	Options     map[string]string
	// ReplaceWhere, when set, makes an overwrite replace only the rows of a
	// Delta table that match it (tauro's overwrite_strategy replaceWhere):
	// the run's date window on a date column, or the output's
	// replace_predicate.
	ReplaceWhere string
}

// ReadBack is how a later execution reads what o wrote.
func (o OutputSpec) ReadBack() InputSpec {
	return InputSpec{Key: o.Key, Format: o.Format, Path: o.Path, Options: o.Options}
}

// Readable reports whether what o writes can be read back as its node's
// result. A kafka topic cannot: its records are Kafka's (key, value,
// offsets) and hold every earlier write as well.
func (o OutputSpec) Readable() bool { return !strings.EqualFold(o.Format, "kafka") }

// Stored reports whether n writes an output its result can be read back
// from, by a run that does not run n (a repair, a selection, a trial).
func (n *Node) Stored() bool { return slices.ContainsFunc(n.OutputSpecs, OutputSpec.Readable) }

// writeModes are the save modes an output may ask for; "" means overwrite.
var saveModes = map[string]string{"": "overwrite", "overwrite": "overwrite", "append": "append",
	"ignore": "ignore", "error": "error", "errorifexists": "error"}

// resolveSpecs turns every node's input and output keys into specs, once
// the pipeline is otherwise known to be sound. Streaming nodes keep their
// inline configuration; their sinks have no save mode.
func (r *resolver) resolveSpecs(out *Pipeline) {
	outputs := make(map[string]OutputSpec) // by the key as written, of every node
	for i, n := range r.nodes {
		if len(n.OutputKeys) == 0 {
			continue
		}
		n.OutputSpecs = make([]OutputSpec, len(n.Outputs))
		for j, key := range n.Outputs {
			inf := r.info[i].outs[j]
			m, _ := inf.entry.(*config.Map)
			if m == nil {
				continue
			}
			spec := r.outputSpec(int32(i), key, n.OutputKeys[j], m, out)
			n.OutputSpecs[j] = spec
			outputs[key] = spec
		}
	}
	for i, n := range r.nodes {
		if len(n.Inputs) == 0 {
			continue
		}
		n.InputSpecs = make([]Input, len(n.Inputs))
		for j, key := range n.Inputs {
			in := Input{Key: key}
			w, produced := r.producer(key)
			if produced && int(w) != i {
				in.Producer = r.nodes[w].Name
				in.Read = r.nodes[w].outputByKey(key).ReadBack()
			} else if entry, ok := r.proj.Inputs.Get(key); ok {
				if m, ok := entry.(*config.Map); ok {
					in.Read = r.inputSpec(key, m)
				}
			} else if produced { // its own output's previous version
				in.Read = n.outputByKey(key).ReadBack()
				in.Read.Key = key
			}
			n.InputSpecs[j] = in
		}
	}
}

// outputByKey finds the spec of the output n writes under key, as written
// or parsed.
func (n *Node) outputByKey(key string) OutputSpec {
	for j, k := range n.Outputs {
		if k == key && j < len(n.OutputSpecs) {
			return n.OutputSpecs[j]
		}
	}
	if pk, err := config.ParseOutputKey(key); err == nil {
		for j, k := range n.OutputKeys {
			if k == pk && j < len(n.OutputSpecs) {
				return n.OutputSpecs[j]
			}
		}
	}
	return OutputSpec{}
}

func (r *resolver) inputSpec(key string, m *config.Map) InputSpec {
	spec := InputSpec{
		Key:     key,
		Format:  strings.ToLower(strings.TrimSpace(text(m, "format"))),
		Options: textMap(m, "options"),
		Schema:  text(m, "schema"),
		Table:   firstText(m, "table", "table_name"),
		Query:   text(m, "query"),
		Filter:  text(m, "partition_filter"),
	}
	if p := firstText(m, "filepath", "path"); p != "" {
		spec.Path = r.abs(p)
	}
	return spec
}

func (r *resolver) outputSpec(i int32, key string, k config.OutputKey, m *config.Map, p *Pipeline) OutputSpec {
	out := OutputSpec{
		Key:         k.String(),
		Format:      strings.ToLower(strings.TrimSpace(text(m, "format"))),
		Path:        r.outputPath(k),
		PartitionBy: firstList(m, "partition", "partition_by", "partition_columns"),
		Options:     textMap(m, "options"),
	}
	if out.Format == "" {
		out.Format = "parquet"
	}
	if out.Format == "kafka" {
		out.Path = "" // it writes to options.topic; tauro's path rule is for files
	}
	if r.nodes[i].Streaming {
		return out
	}
	f := "output." + key
	mode := strings.ToLower(strings.TrimSpace(text(m, "write_mode")))
	out.WriteMode = saveModes[mode] // an unknown one is reported by checkOutputEntries
	if out.Format == "kafka" && mode == "" {
		out.WriteMode = "append" // a topic only grows; checkOutputEntries refuses other modes
	}
	strategy := text(m, "overwrite_strategy")
	if strategy == "" {
		return out
	}
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(strategy)), "_", "") {
	case "replacewhere":
	default:
		r.add(f+".overwrite_strategy", problem.CodeInvalidValue,
			"output %s: overwrite_strategy %s is not supported; use replaceWhere or leave it out", q(key), q(strategy))
		return out
	}
	switch {
	case out.Format != "delta":
		r.add(f+".format", problem.CodeIncompatible, "output %s: overwrite_strategy replaceWhere needs format delta, not %s", q(key), out.Format)
		return out
	case out.WriteMode != "overwrite":
		r.add(f+".write_mode", problem.CodeIncompatible, "output %s: overwrite_strategy replaceWhere needs write_mode overwrite, not %s", q(key), mode)
		return out
	}
	for opt := range out.Options {
		if strings.EqualFold(opt, "replaceWhere") {
			r.add(f+".options."+opt, problem.CodeIncompatible,
				"output %s: options.%s and overwrite_strategy replaceWhere both set the predicate; keep one", q(key), opt)
			return out
		}
	}
	if pred := strings.TrimSpace(text(m, "replace_predicate")); pred != "" {
		out.ReplaceWhere = pred
		return out
	}
	column := text(m, "partition_col")
	if column == "" {
		if len(out.PartitionBy) != 1 {
			r.add(f+".partition_col", problem.CodeRequired,
				"output %s: overwrite_strategy replaceWhere needs partition_col, the date column the run's window applies to", q(key))
			return out
		}
		column = out.PartitionBy[0]
	}
	pred, err := WindowPredicate(column, p.StartDate, p.EndDate)
	if err != nil {
		r.add(f+".partition_col", problem.CodeInvalidValue, "output %s: overwrite_strategy replaceWhere: %v", q(key), err)
		return out
	}
	out.ReplaceWhere = pred
	return out
}

var identifierRE = regexp.MustCompile(`^[\p{L}_][\p{L}\p{N}_]*$`)

// WindowPredicate is the SQL condition "column lies in [start, end]", for
// whole days: column >= start AND column < the day after end, so that a
// timestamp column's last day is covered and a DATE or 'YYYY-MM-DD' string
// column compares as expected. column must be a plain identifier; nothing
// else reaches the SQL text but the formatted dates.
func WindowPredicate(column string, start, end time.Time) (string, error) {
	if len(column) > 128 || !identifierRE.MatchString(column) {
		return "", fmt.Errorf("the date column %q is not a plain column name (letters, digits and underscores)", column)
	}
	if start.IsZero() || end.IsZero() {
		return "", fmt.Errorf("the window needs the run's start_date and end_date")
	}
	if end.Before(start) {
		return "", fmt.Errorf("end_date %s is before start_date %s", FormatDate(end), FormatDate(start))
	}
	c := "`" + column + "`"
	return fmt.Sprintf("%s >= '%s' AND %s < '%s'", c, FormatDate(start), c, FormatDate(end.AddDate(0, 0, 1))), nil
}

// outputPath is where output k is written: tauro's path rule under the
// output path (the project's "output" folder when none is set).
func (r *resolver) outputPath(k config.OutputKey) string {
	base := r.set.OutputPath
	if base == "" {
		base = "output"
	}
	return config.OutputPath(r.abs(base), r.set.Mode, r.proj.Env, k)
}

// abs makes a config path absolute against the project's base_path; URLs
// (s3://, abfss://, dbfs:/...) are kept as written.
func (r *resolver) abs(p string) string {
	if config.HasScheme(p) || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.proj.BasePath, p)
}

// text reads a scalar setting as text, "" when unset.
func text(m *config.Map, key string) string {
	v, _ := m.Get(key)
	s, _ := scalarString(v)
	return s
}

func firstText(m *config.Map, keys ...string) string {
	for _, k := range keys {
		if s := text(m, k); s != "" {
			return s
		}
	}
	return ""
}

func firstList(m *config.Map, keys ...string) []string {
	for _, k := range keys {
		v, _ := m.Get(k)
		switch x := v.(type) {
		case string:
			if x != "" {
				return []string{x}
			}
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				if s, ok := scalarString(e); ok {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return nil
}

// textMap reads a mapping of options; Spark takes every value as text.
func textMap(m *config.Map, key string) map[string]string {
	v, _ := m.Get(key)
	sub, ok := v.(*config.Map)
	if !ok {
		return nil
	}
	out := make(map[string]string, sub.Len())
	for _, k := range sub.Keys {
		if s, ok := scalarString(sub.Values[k]); ok {
			out[k] = s
		}
	}
	return out
}
