package plan

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// StreamSpec is how a streaming node runs: the streams and tables it reads,
// its sink, and its query's settings.
type StreamSpec struct {
	// Sources are the node's inputs, the inline one first.
	Sources []StreamSource
	Sink    StreamSink
	Trigger Trigger
	// OutputMode is append, update or complete.
	OutputMode string
	// Checkpoint is the query's checkpoint folder: the node's
	// streaming.checkpoint_location, else one stable per environment,
	// pipeline and node under the output path, so a restarted query resumes
	// where it stopped, whichever run restarts it.
	Checkpoint string
	// QueryName is the node's query_name, else pipeline_node.
	QueryName string
	Health    StreamHealth
	// Clear is what the run deletes before the query starts; "" nothing.
	Clear Clear
}

// StreamHealth are a streaming node's lag rules (streaming.health): a
// query breaking one is reported LAGGING until it catches up.
type StreamHealth struct {
	// MaxBatchDuration: a micro-batch that takes longer is lagging.
	MaxBatchDuration time.Duration
	// MaxIdleTriggers: no micro-batch for this many trigger intervals is
	// lagging (processing_time triggers only).
	MaxIdleTriggers int
}

// StreamSource is one input of a streaming node.
type StreamSource struct {
	// Key is the view name the node's SQL reads the source by: the input
	// key, or <node>_input for an inline input.
	Key string
	// Producer is the node of the pipeline that writes it, "" when none.
	Producer string
	// Static marks an input read as a table, not a stream (an input config
	// entry of a batch format): Read says how.
	Static bool
	Read   InputSpec
	// Format is Spark's streaming source: kafka, rate, delta, or the file
	// format (csv, json, parquet, orc, text) of a file stream.
	Format  string
	Path    string
	Options map[string]string
	Schema  string
	// JSONSchema is set when the records' value is parsed as JSON
	// (parse_json with json_schema).
	JSONSchema string
	// WatermarkColumn and WatermarkDelay are the source's watermark.
	WatermarkColumn, WatermarkDelay string
}

// StreamSink is where a streaming node writes.
type StreamSink struct {
	// Key is the output key, "" for an inline output.
	Key string
	// Format is delta, parquet, json, csv, kafka, console, memory or
	// foreachbatch.
	Format      string
	Path        string
	Table       string
	Options     map[string]string
	PartitionBy []string
	// BatchFunction is a foreachBatch sink's function.
	BatchFunction *BatchFunction
	// CDC is a Delta sink's change data capture, nil for a plain sink.
	CDC *ChangeCapture
}

// BatchFunction is the function a foreachBatch sink calls with each
// micro-batch, fn(batch_df, batch_id).
type BatchFunction struct {
	Module, Function string
	// Field is where the config sets it, for messages.
	Field string
}

// resolveStream builds the StreamSpec of streaming node i.
func (r *resolver) resolveStream(i int32, out *Pipeline) {
	n := r.nodes[i]
	spec := &StreamSpec{Trigger: n.Trigger, OutputMode: n.OutputMode, QueryName: out.Name + "_" + n.Name}
	if v, ok := r.streamSetting(i, "query_name"); ok {
		spec.QueryName = v
	}
	spec.Health = r.streamHealth(i)
	f := r.field(i, "input")
	if n.InlineInput != nil {
		spec.Sources = append(spec.Sources, r.streamSource(f, n.Name+"_input", n.InlineInput))
	}
	for j, in := range n.InputSpecs {
		src := StreamSource{Key: in.Key, Producer: in.Producer}
		switch readAs := n.ReadAs[in.Key]; {
		case in.Producer != "" && readAs != "":
			src.Format, src.Path, src.Options = in.Read.Format, in.Read.Path, in.Read.Options
			if f := sourceFormat(readAs); f != nil && f.readBack != nil {
				f.readBack(&src)
			}
		case in.Producer != "":
			src.Static, src.Read = true, in.Read
		default:
			entry, _ := r.proj.Inputs.Get(in.Key)
			m, _ := entry.(*config.Map)
			if m == nil || !IsStreamingFormat(strings.ToLower(strings.TrimSpace(text(m, "format")))) {
				src.Static, src.Read = true, in.Read
				break
			}
			src = r.streamSource(r.field(i, "input")+"["+itoa(j)+"]", in.Key, m)
		}
		spec.Sources = append(spec.Sources, src)
	}
	spec.Sink = r.streamSink(i)
	if sf := sinkFormat(spec.Sink.Format); sf != nil && sf.tableIsQueryName && spec.Sink.Table != "" {
		spec.QueryName, spec.Sink.Table = spec.Sink.Table, ""
	}
	spec.Checkpoint = r.checkpoint(i, out)
	n.Stream = spec
}

// streamHealth reads streaming.health.
func (r *resolver) streamHealth(i int32) StreamHealth {
	var h StreamHealth
	v, _ := r.get(i, "streaming")
	m, _ := v.(*config.Map)
	if m == nil {
		return h
	}
	hv, ok := m.Get("health")
	if !ok || hv == nil {
		return h
	}
	f := r.field(i, "streaming") + ".health"
	hm, ok := hv.(*config.Map)
	if !ok {
		r.add(f, problem.CodeInvalidType, "health must be a mapping {max_batch_duration: \"30 seconds\", max_idle_triggers: 5}")
		return h
	}
	if d, ok := hm.Get("max_batch_duration"); ok && d != nil {
		if dd, ok := asDuration(d); ok && dd > 0 {
			h.MaxBatchDuration = dd
		} else {
			r.add(f+".max_batch_duration", problem.CodeInvalidValue, "max_batch_duration must be seconds or a duration like \"30 seconds\", got %s", describe(d))
		}
	}
	if n, ok := hm.Get("max_idle_triggers"); ok && n != nil {
		if nn, ok := asInt(n); ok && nn > 0 {
			h.MaxIdleTriggers = nn
		} else {
			r.add(f+".max_idle_triggers", problem.CodeInvalidValue, "max_idle_triggers must be a whole number above 0, got %s", describe(n))
		}
	}
	return h
}

// streamSetting reads a string under the node's streaming mapping.
func (r *resolver) streamSetting(i int32, key string) (string, bool) {
	v, _ := r.get(i, "streaming")
	m, ok := v.(*config.Map)
	if !ok {
		return "", false
	}
	s := text(m, key)
	return s, s != ""
}

// streamSource reads one streaming input configuration (tauro's format).
func (r *resolver) streamSource(f, key string, m *config.Map) StreamSource {
	src := StreamSource{
		Key:     key,
		Options: textMap(m, "options"),
		Schema:  text(m, "schema"),
	}
	p := firstText(m, "path", "filepath")
	if p == "" { // Spark's own spelling: options.path
		p = src.Options["path"]
	}
	delete(src.Options, "path")
	if p != "" {
		src.Path = r.abs(p)
	}
	format := strings.ToLower(strings.TrimSpace(text(m, "format")))
	if sf := sourceFormat(format); sf != nil {
		sf.resolve(r, f, m, &src)
	} else {
		src.Format = format // not one execd runs: the format policy says so
	}
	if pj, _ := m.Get("parse_json"); pj == true {
		src.JSONSchema = text(m, "json_schema")
		if src.JSONSchema == "" {
			r.add(f+".json_schema", problem.CodeRequired, "parse_json needs json_schema, the DDL of the JSON records (e.g. \"id INT, name STRING\")")
		}
	}
	if wv, ok := m.Get("watermark"); ok && wv != nil {
		wm, isMap := wv.(*config.Map)
		if !isMap {
			r.add(f+".watermark", problem.CodeInvalidType, "watermark must be a mapping {column: ..., delay: \"10 minutes\"}")
		} else {
			src.WatermarkColumn, src.WatermarkDelay = text(wm, "column"), text(wm, "delay")
			if src.WatermarkDelay == "" {
				src.WatermarkDelay = "10 seconds"
			}
			if src.WatermarkColumn == "" {
				r.add(f+".watermark.column", problem.CodeRequired, "watermark needs the event-time column it bounds")
			} else if _, err := parseInterval(src.WatermarkDelay); err != nil {
				r.add(f+".watermark.delay", problem.CodeInvalidValue, "watermark delay: %v", err)
			}
		}
	}
	return src
}

// streamSink resolves a streaming node's sink: its output key's entry with
// tauro's path rule, or its inline output.
func (r *resolver) streamSink(i int32) StreamSink {
	n := r.nodes[i]
	if len(n.OutputSpecs) > 0 {
		o := n.OutputSpecs[0]
		sink := StreamSink{Key: o.Key, Format: o.Format, Path: o.Path, Options: o.Options, PartitionBy: o.PartitionBy}
		// The entry's own checks ran with the outputs; only the format's
		// settings and cdc are read here.
		if len(n.Outputs) == 0 {
			return sink
		}
		entry, _ := r.outputEntry(n.Outputs[0], n.OutputKeys[0])
		if m, ok := entry.(*config.Map); ok {
			f := "output." + n.Outputs[0]
			if sf := sinkFormat(sink.Format); sf != nil && sf.read != nil {
				sf.read(r, f, m, &sink)
			}
			r.readCDC(f, m, &sink)
		}
		return sink
	}
	m := n.InlineOutput
	if m == nil {
		return StreamSink{}
	}
	f := r.field(i, "output")
	sink := StreamSink{
		Format:      strings.ToLower(strings.TrimSpace(text(m, "format"))),
		Table:       firstText(m, "table_name", "table"),
		Options:     textMap(m, "options"),
		PartitionBy: firstList(m, "partition_by", "partition", "partition_columns"),
	}
	if p := firstText(m, "path", "filepath"); p != "" {
		sink.Path = r.abs(p)
	}
	if sf := sinkFormat(sink.Format); sf != nil {
		if sf.read != nil {
			sf.read(r, f, m, &sink)
		}
		if sf.check != nil {
			sf.check(r, f, sink)
		}
	}
	r.readCDC(f, m, &sink)
	return sink
}

// checkpoint is the node's checkpoint folder.
func (r *resolver) checkpoint(i int32, out *Pipeline) string {
	if c := r.nodes[i].Checkpoint; c != "" {
		return r.abs(c)
	}
	base := r.set.OutputPath
	if base == "" {
		base = "output"
	}
	base = r.abs(base)
	env := r.proj.Env
	if env == "" {
		env = "base"
	}
	parts := []string{"_checkpoints", env, pathSegment(out.Name), pathSegment(r.nodes[i].Name)}
	if config.HasScheme(base) {
		return strings.TrimRight(base, "/") + "/" + strings.Join(parts, "/")
	}
	return filepath.Join(append([]string{base}, parts...)...)
}

// pathSegment keeps a name to one folder: separators and dot-only names
// cannot climb out of the checkpoint root.
func pathSegment(name string) string {
	s := strings.NewReplacer("/", "_", `\`, "_").Replace(name)
	if strings.Trim(s, ".") == "" {
		return "_" + s
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
