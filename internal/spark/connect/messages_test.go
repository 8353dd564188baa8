package connect

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

// messageBuilders builds every kind of message the package sends, each
// through its builder in messages.go, with values that set every field the
// builder can set. A new builder gets a case here; the test fails until it
// has one.
var messageBuilders = []struct {
	name  string // the builder, then what the case shows
	build func() (any, error)
}{
	{"namedTable/bare", func() (any, error) { return namedTable("global_temp.`tauro_r_n`", nil), nil }},
	{"namedTable/with options", func() (any, error) {
		return namedTable("db.t", map[string]string{"versionAsOf": "3"}), nil
	}},
	{"dataSource/inferred", func() (any, error) { return dataSource("parquet", "/data/in", "", nil), nil }},
	{"dataSource/schema and options", func() (any, error) {
		return dataSource("csv", "/data/*.csv", "id BIGINT, day DATE", map[string]string{"header": "true", "sep": ";"}), nil
	}},
	{"filtered", func() (any, error) { return filtered(namedTable("t", nil), "day >= '2024-01-01'"), nil }},
	{"sqlRelation/without parameters", func() (any, error) { return sqlRelation("SELECT 1 AS x", nil) }},
	{"sqlRelation/a parameter of every type", func() (any, error) {
		day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
		return sqlRelation("SELECT :s, :b, :i, :i32, :i64, :f, :d, :ts, :n", map[string]any{
			"s": "eu", "b": true, "i": 7, "i32": int32(3), "i64": int64(1) << 40, "f": 1.5,
			"d": day, "ts": day.Add(90 * time.Minute), "n": nil,
		})
	}},
	{"countingRows", func() (any, error) { return countingRows(namedTable("v", nil), "tauro_rows_written_x", "1", ""), nil }},
	{"countingRows/with metrics", func() (any, error) {
		return countingRows(namedTable("v", nil), "tauro_x", "1", "count_if(a > 0)", Metric{"e0", "count_if(coalesce((a > 0), false))"}), nil
	}},
	{"streamSource/files with a schema", func() (any, error) {
		return streamSource("csv", "/in/orders", "id INT, at TIMESTAMP", map[string]string{"header": "true", "maxFilesPerTrigger": "1"}), nil
	}},
	{"streamSource/no path", func() (any, error) {
		return streamSource("rate", "", "", map[string]string{"rowsPerSecond": "5"}), nil
	}},
	{"withWatermark", func() (any, error) { return withWatermark(namedTable("events", nil), "at", "10 minutes"), nil }},
	{"writeStreamStart/to a path, every trigger field", func() (any, error) {
		return writeStreamStart(StreamStart{View: "v", Format: "delta", Path: "/out", Options: map[string]string{"mergeSchema": "true"},
			PartitionBy: []string{"day"}, Trigger: TriggerProcessingTime, Interval: 10 * time.Second, OutputMode: "append",
			QueryName: "q", Checkpoint: "/chk"}), nil
	}},
	{"observedInput", func() (any, error) {
		return observedInput("global_temp.`v`", Observe{Metrics: []Metric{{"e0", "count_if(a > 0)"}}, Keep: "a > 0"}, "obs"), nil
	}},
	{"streamInput/plain", func() (any, error) { return streamInput(StreamStart{View: "v"}), nil }},
	{"streamInput/observed", func() (any, error) {
		return streamInput(StreamStart{View: "v", Observe: Observe{Metrics: []Metric{{"c0", "count_if(b IS NULL)"}}}}), nil
	}},
	{"writeStreamStart/observed", func() (any, error) {
		return writeStreamStart(StreamStart{View: "v", Format: "parquet", Path: "/out", OutputMode: "append", Checkpoint: "/chk",
			Observe: Observe{Metrics: []Metric{{"e0", "count_if(a > 0)"}, {"c0", "count_if(a > 0 AND b IS NULL)"}}, Keep: "a > 0"}}), nil
	}},
	{"writeStreamStart/to a table, available now", func() (any, error) {
		return writeStreamStart(StreamStart{View: "v", Format: "delta", Table: "db.t", Trigger: TriggerAvailableNow, OutputMode: "update", Checkpoint: "/chk"}), nil
	}},
	{"writeStreamStart/once, continuous", func() (any, error) {
		return writeStreamStart(StreamStart{View: "v", Format: "memory", Trigger: TriggerContinuous, Interval: 1500 * time.Millisecond, OutputMode: "complete", QueryName: "t"}), nil
	}},
	{"writeStreamStart/foreachBatch", func() (any, error) {
		return writeStreamStart(StreamStart{View: "v", ForeachBatch: &PythonFunction{Command: []byte{0x80, 0x05, 0x95}, PythonVer: "3.11"},
			Trigger: TriggerProcessingTime, Interval: 5 * time.Second, OutputMode: "update", Checkpoint: "/chk"}), nil
	}},
	{"listenerBus/add", func() (any, error) { return listenerBus(true), nil }},
	{"listenerBus/remove", func() (any, error) { return listenerBus(false), nil }},
	{"streamingQueryCommand/status", func() (any, error) { return streamingQueryCommand("id", "run", "status", true), nil }},
	{"streamingQueryCommand/stop", func() (any, error) { return streamingQueryCommand("id", "run", "stop", true), nil }},
	{"streamingQueryCommand/recent progress", func() (any, error) {
		return streamingQueryCommand("id", "run", "recentProgress", true), nil
	}},
	{"streamingQueryCommand/last progress", func() (any, error) {
		return streamingQueryCommand("id", "run", "lastProgress", true), nil
	}},
	{"activeQueries", func() (any, error) { return activeQueries(), nil }},

	{"inputRelation/table", func() (any, error) {
		return inputRelation("op", InputSpec{Key: "t", Format: "table", Table: "db.t", Options: map[string]string{"a": "b"}}, nil)
	}},
	{"inputRelation/query", func() (any, error) {
		return inputRelation("op", InputSpec{Key: "q", Format: "query", Query: "SELECT :d AS d"}, map[string]any{"d": "2024-01-02"})
	}},
	{"inputRelation/file", func() (any, error) {
		return inputRelation("op", InputSpec{Key: "f", Format: "JSON", Path: "/in.json", Schema: "a INT", Options: map[string]string{"multiLine": "true"}}, nil)
	}},
	{"createDataframeView/global", func() (any, error) { return createDataframeView("tauro_r_n", namedTable("n", nil), true), nil }},
	{"createDataframeView/of the session", func() (any, error) {
		return createDataframeView("sales", dataSource("csv", "/s.csv", "", nil), false), nil
	}},
	{"writeOperation/plain", func() (any, error) {
		return writeOperation(countingRows(namedTable("global_temp.`v`", nil), "obs", "1", ""), "parquet", "/out", "SAVE_MODE_OVERWRITE", nil, nil), nil
	}},
	{"writeOperation/partitioned with options", func() (any, error) {
		return writeOperation(countingRows(namedTable("global_temp.`v`", nil), "obs", "1", ""), "Delta", "/out", "SAVE_MODE_APPEND", []string{"day", "region"},
			map[string]string{"replaceWhere": "`day` >= '2024-01-01'", "mergeSchema": "true"}), nil
	}},
	{"writeOperation/no path (kafka)", func() (any, error) {
		return writeOperation(countingRows(namedTable("global_temp.`v`", nil), "obs", "1", ""), "kafka", "", "SAVE_MODE_APPEND", nil,
			map[string]string{"kafka.bootstrap.servers": "127.0.0.1:9092", "topic": "events"}), nil
	}},
	{"executePlanRequest", func() (any, error) {
		return executePlanRequest("6e5f0b5c-0000-4000-8000-000000000001", "ann", "6e5f0b5c-0000-4000-8000-000000000002",
			createDataframeView("v", namedTable("t", nil), false)), nil
	}},
	{"reattachableExecutePlanRequest", func() (any, error) {
		return reattachableExecutePlanRequest("6e5f0b5c-0000-4000-8000-000000000001", "ann", "6e5f0b5c-0000-4000-8000-000000000002",
			createDataframeView("v", namedTable("t", nil), false)), nil
	}},
	{"reattachExecuteRequest/from the start", func() (any, error) { return reattachExecuteRequest("sid", "ann", "op", ""), nil }},
	{"reattachExecuteRequest/after a response", func() (any, error) { return reattachExecuteRequest("sid", "ann", "op", "resp"), nil }},
	{"releaseExecuteRequest", func() (any, error) { return releaseExecuteRequest("sid", "ann", "op"), nil }},
	{"interruptRequest/all", func() (any, error) { return interruptRequest("sid", "ann", ""), nil }},
	{"interruptRequest/one operation", func() (any, error) { return interruptRequest("sid", "ann", "op"), nil }},
	{"releaseSessionRequest", func() (any, error) { return releaseSessionRequest("sid", "ann"), nil }},
	{"configSetRequest", func() (any, error) {
		return configSetRequest("sid", "ann", map[string]string{"spark.sql.shuffle.partitions": "4", "spark.sql.ansi.enabled": "true"}), nil
	}},
}

func TestMessages_EveryBuilderMatchesTheProtocol(t *testing.T) {
	for _, c := range messageBuilders {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.build()
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			name, body := wireForm(t, v)
			if err := matchesProtocol(name, body); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMessages_EveryBuilderHasACase(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range messageBuilders {
		covered[strings.SplitN(c.name, "/", 2)[0]] = true
	}
	for _, b := range messageBuilderFuncs(t) {
		if !covered[b] {
			t.Errorf("builder %s has no case in messageBuilders", b)
		}
	}
}

// TestMessages_TheCheckCatchesMisspeltAndDroppedFields shows the check is
// not vacuous.
func TestMessages_TheCheckCatchesMisspeltAndDroppedFields(t *testing.T) {
	cases := map[string]relation{
		"misspelt":   {"read": obj{"namedTabel": obj{"unparsedIdentifier": "t"}}},
		"dropped":    {"read": obj{"dataSource": obj{"format": "csv", "schema": nil}}},
		"wrong type": {"read": obj{"dataSource": obj{"format": "csv", "paths": "/p"}}},
	}
	for name, rel := range cases {
		if err := matchesProtocol("Relation", obj(rel)); err == nil {
			t.Errorf("%s: the check accepted %v", name, rel)
		}
	}
}

// wireForm is the message name and protojson body of what a builder made.
func wireForm(t *testing.T, v any) (string, obj) {
	t.Helper()
	switch m := v.(type) {
	case relation:
		return "Relation", obj(m)
	case command:
		return "Command", obj(m)
	case rpc:
		if m.method == "" || m.response == "" {
			t.Errorf("rpc %s has no method or response", m.request)
		}
		if _, err := newMessage(m.response); err != nil {
			t.Error(err)
		}
		return m.request, m.body
	}
	t.Fatalf("a builder returned a %T; teach wireForm its message", v)
	return "", nil
}

// matchesProtocol checks body against the descriptor of spark.connect.name:
// protojson must accept it with unknown fields refused, and writing the
// message back must keep every field body gives, with its value.
func matchesProtocol(name string, body obj) error {
	in, err := json.Marshal(body)
	if err != nil {
		return err
	}
	m, err := newMessage(name)
	if err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(in, m); err != nil {
		return fmt.Errorf("%s rejects %s: %w", name, in, err)
	}
	back, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var given, kept any
	if err := json.Unmarshal(in, &given); err != nil {
		return err
	}
	if err := json.Unmarshal(back, &kept); err != nil {
		return err
	}
	if path, ok := keeps(kept, given, name); !ok {
		return fmt.Errorf("%s does not keep %s:\n given %s\n kept  %s", name, path, in, back)
	}
	return nil
}

// keeps reports whether got holds everything want does, with the same
// values, and else the path of the first difference.
func keeps(got, want any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return path + "." + k, false
			}
			if p, ok := keeps(gv, wv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := keeps(g[i], w[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	}
	return path, reflect.DeepEqual(got, want)
}

// messageBuilderFuncs lists the package's functions that return a
// relation, a command or an rpc.
func messageBuilderFuncs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Type.Results == nil {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && slices.Contains([]string{"relation", "command", "rpc"}, id.Name) {
				names = append(names, fn.Name.Name)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("found no message builders")
	}
	return names
}
