package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/conformance"
	"github.com/tauro-exec/tauro-exec/internal/engine/config"
)

// The conformance cases are read with config.Parse rather than
// conformance.Load: mapping order matters (node declaration order decides
// ties, and a multi-key dependency mapping lists its keys in order).
func cases(t *testing.T, section string) []*config.Map {
	t.Helper()
	sec := caseSection(t, section)
	list, ok := sec.([]any)
	if !ok || len(list) == 0 {
		t.Fatalf("section %s missing, empty or not a list", section)
	}
	out := make([]*config.Map, len(list))
	for i, c := range list {
		m, ok := c.(*config.Map)
		if !ok {
			t.Fatalf("section %s case %d is not a mapping", section, i)
		}
		out[i] = m
	}
	return out
}

// caseSection parses the cases file keeping mapping order and returns one
// section, failing the test (never panicking) when the file or the section
// is not there.
func caseSection(t *testing.T, section string) any {
	t.Helper()
	b, err := conformance.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	v, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", conformance.FileName, err)
	}
	top, ok := v.(*config.Map)
	if !ok {
		t.Fatalf("%s is not a mapping of sections", conformance.FileName)
	}
	sec, ok := top.Get(section)
	if !ok {
		t.Fatalf("%s has no section %s", conformance.FileName, section)
	}
	return sec
}

func str(m *config.Map, key string) string {
	v, _ := m.Get(key)
	s, _ := v.(string)
	return s
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = fmt.Sprint(e)
	}
	return out
}

func caseName(i int, c *config.Map) string {
	in, _ := c.Get("in")
	return fmt.Sprintf("%d:%s", i, strings.ReplaceAll(fmt.Sprint(config.Plain(in)), " ", "_"))
}

// checkOutcome compares an outcome with a case's error or success.
func checkOutcome(t *testing.T, c *config.Map, err error) {
	t.Helper()
	want := str(c, "error")
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("succeeded; want an error containing %q", want)
	case want != "" && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestConformance_DependencyNormalization(t *testing.T) {
	for i, c := range cases(t, "dependency_normalization") {
		t.Run(caseName(i, c), func(t *testing.T) {
			in, _ := c.Get("in")
			got, err := NormalizeDependencies(in)
			checkOutcome(t, c, err)
			if out, ok := c.Get("out"); ok && !equal(got, strs(out)) {
				t.Fatalf("got %q, want %q", got, strs(out))
			}
		})
	}
}

func TestConformance_PipelineNodeNames(t *testing.T) {
	for i, c := range cases(t, "pipeline_node_names") {
		t.Run(caseName(i, c), func(t *testing.T) {
			in, _ := c.Get("in")
			got, err := NodeName(in)
			checkOutcome(t, c, err)
			if out := str(c, "out"); out != "" && got != out {
				t.Fatalf("got %q, want %q", got, out)
			}
		})
	}
}

// orderingProject turns an ordering case's {node: dependencies} into a
// pipeline "p" of those nodes, in that order.
func orderingProject(nodes *config.Map) *config.Project {
	p := &config.Project{Global: config.NewMap(), Pipelines: config.NewMap(), Nodes: config.NewMap(),
		Inputs: config.NewMap(), Outputs: config.NewMap()}
	list := make([]any, 0, nodes.Len())
	for _, name := range nodes.Keys {
		list = append(list, name)
		n := config.NewMap()
		n.Set("function", "nodes.steps.run")
		n.Set("dependencies", nodes.Values[name])
		p.Nodes.Set(name, n)
	}
	pipe := config.NewMap()
	pipe.Set("nodes", list)
	pipe.Set("requires_dates", false)
	p.Pipelines.Set("p", pipe)
	return p
}

func TestConformance_Ordering(t *testing.T) {
	for i, c := range cases(t, "ordering") {
		nodes, _ := c.Get("nodes")
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			pl, err := Resolve(orderingProject(nodes.(*config.Map)), Request{Pipeline: "p"})
			checkOutcome(t, c, err)
			if order, ok := c.Get("order"); ok && !equal(pl.Plan.Order, strs(order)) {
				t.Fatalf("order %q, want %q", pl.Plan.Order, strs(order))
			}
		})
	}
}

func TestConformance_RequiredParams(t *testing.T) {
	for i, c := range cases(t, "required_params") {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			p := project(t, `
pipelines:
  p: {nodes: [a]}
nodes:
  a: {function: nodes.steps.run}
`)
			if v := str(c, "global_start"); v != "" {
				p.Global.Set("start_date", v)
			}
			if v := str(c, "global_end"); v != "" {
				p.Global.Set("end_date", v)
			}
			if v, ok := c.Get("requires_dates"); ok {
				pipe, _ := p.Pipelines.Get("p")
				pipe.(*config.Map).Set("requires_dates", v)
			}
			pl, err := Resolve(p, Request{Pipeline: str(c, "pipeline"), StartDate: str(c, "start"), EndDate: str(c, "end")})
			checkOutcome(t, c, err)
			if ok, _ := c.Get("ok"); ok == true && FormatDate(pl.StartDate) != str(c, "global_start")+str(c, "start") {
				t.Fatalf("effective start date %v", pl.StartDate)
			}
		})
	}
}

func TestConformance_PipelineConfig(t *testing.T) {
	for i, c := range cases(t, "pipeline_config") {
		t.Run(caseName(i, c), func(t *testing.T) {
			p := project(t, "{}")
			in, _ := c.Get("in")
			p.Pipelines.Set("p", in)
			nc, _ := c.Get("node_configs")
			for _, name := range strs(nc) {
				n := config.NewMap()
				n.Set("function", "nodes.steps.run")
				p.Nodes.Set(name, n)
			}
			_, err := Resolve(p, dated("p"))
			checkOutcome(t, c, err)
		})
	}
}

func TestConformance_StreamingTriggerIntervals(t *testing.T) {
	m, ok := caseSection(t, "streaming_trigger_intervals").(*config.Map)
	if !ok {
		t.Fatal("section streaming_trigger_intervals is not a mapping")
	}
	rawValid, _ := m.Get("valid")
	rawInvalid, _ := m.Get("invalid")
	valid, _ := rawValid.([]any)
	invalid, _ := rawInvalid.([]any)
	if len(valid) == 0 || len(invalid) == 0 {
		t.Fatal("no trigger interval cases: want lists under valid and invalid")
	}
	for _, in := range valid {
		t.Run(fmt.Sprint("valid:", in), func(t *testing.T) {
			d, err := ParseTriggerInterval(in)
			if err != nil || d <= 0 {
				t.Fatalf("ParseTriggerInterval(%q) = %v, %v; want a positive interval", in, d, err)
			}
		})
	}
	for _, in := range invalid {
		t.Run(fmt.Sprint("invalid:", in), func(t *testing.T) {
			if d, err := ParseTriggerInterval(in); err == nil {
				t.Fatalf("ParseTriggerInterval(%v) = %v; want an error", in, d)
			}
		})
	}
}

// TestConformance_HybridFormats checks each case both through
// CheckHybridFormat and through Resolve on a hybrid pipeline where a
// streaming node reads, as a stream, what a batch node wrote.
func TestConformance_HybridFormats(t *testing.T) {
	for i, c := range cases(t, "hybrid_formats") {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			if v, _ := c.Get("batch_depends_on_streaming"); v == true {
				_, err := Resolve(project(t, `
pipelines:
  h: {type: hybrid, nodes: [events, report]}
nodes:
  events:
    function: nodes.stream.clean
    input: {format: kafka, options: {kafka.bootstrap.servers: "b:9092", subscribe: events}}
    output: {format: delta, path: /tmp/events}
  report:
    function: nodes.batch.report
    dependencies: [events]
`), dated("h"))
				checkOutcome(t, c, err)
				return
			}
			out, in := str(c, "batch_output"), str(c, "streaming_input")
			checkOutcome(t, c, CheckHybridFormat(out, in))

			_, err := Resolve(project(t, fmt.Sprintf(`
pipelines:
  h: {type: hybrid, nodes: [load, watch]}
nodes:
  load: {function: nodes.batch.load, output: [gold.sales.daily]}
  watch:
    function: nodes.stream.watch
    input: {format: %s, options: {path: /data/gold/sales/daily}}
    output: {format: console}
    dependencies: [load]
output:
  gold.sales.daily: {format: %s}
`, in, out)), dated("h"))
			checkOutcome(t, c, err)
		})
	}
}
