package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// resolver holds one Resolve call's state. Checks append to probs and carry
// on with a safe fallback, so that one call reports everything.
type resolver struct {
	proj  *config.Project
	req   Request
	probs problem.List

	set   Settings
	name  string // pipeline name
	ptype string
	pcfg  *config.Map

	nodes  []*Node    // every node of the pipeline, declaration order
	info   []nodeInfo // parallel to nodes
	byName map[string]int32

	producers    map[config.OutputKey]int32 // output key -> the node writing it
	producersRaw map[string]int32           // the same, by the key as written
	outIndex     map[config.OutputKey]string
	inputSeen    map[string]inputInfo

	g, rev *dag
}

// nodeInfo is what resolution learns about a node beyond the Node itself.
type nodeInfo struct {
	entry int         // position in the pipeline's nodes list
	cfg   *config.Map // effective configuration; nil when missing or unusable
	over  *config.Map // the pipeline entry's overrides
	// streamFlag is the node's `streaming` setting: -1 false, 0 unset, 1 true.
	streamFlag int8
	timeoutSet bool
	refs       []depRef
	// streamInputs are the streaming formats the node reads directly
	// (inline input or input config), and streamInputKey one such input.
	streamInputs   []string
	streamInputKey string
	outs           []outputInfo // parallel to Node.Outputs
}

// outputInfo is what resolution found for one output key of a node.
type outputInfo struct {
	entry  any    // its output config entry; nil when not found
	format string // lower case; "" when unknown
	found  bool
}

// depRef is one dependency as written: an explicit one
// (dependencies[pos]) or an automatic one (input[pos] written by node to).
type depRef struct {
	name string
	to   int32 // -1 when not a node of the pipeline
	auto bool
	pos  int32
}

func (r *resolver) resolve() *Pipeline {
	name := r.req.Pipeline
	if strings.TrimSpace(name) == "" {
		r.add("pipeline", problem.CodeRequired, "pipeline name is required: pass the name of a pipeline in the pipelines config")
		name = ""
	}
	r.name = name
	if r.proj == nil {
		r.add("", problem.CodeConfigFile, "no project configuration is loaded")
		return nil
	}
	var sp problem.List
	r.set, sp = ParseSettings(r.proj.Global)
	r.probs = append(r.probs, sp...)
	if r.req.MaxWorkers < 0 || r.req.MaxWorkers > maxParallelLimit {
		r.add("max_workers", problem.CodeInvalidValue, "max_workers must be from 0 (use max_parallel_nodes) to %d, got %d", maxParallelLimit, r.req.MaxWorkers)
	}
	if name == "" {
		r.checkDates(r.requiresDates())
		return nil
	}
	raw, ok := r.proj.Pipelines.Get(name)
	if !ok {
		avail := "the pipelines config defines none"
		if r.proj.Pipelines.Len() > 0 {
			avail = "available: " + joinPlain(r.proj.Pipelines.Keys, 50)
		}
		r.add("pipeline", problem.CodeUnknownPipeline, "pipeline %s is not defined in the pipelines config; %s", q(name), avail)
		r.checkDates(r.requiresDates())
		return nil
	}
	pf := r.pipeField("")
	pcfg, ok := raw.(*config.Map)
	if !ok {
		r.add(pf, problem.CodeInvalidType,
			"pipeline configuration must be a mapping, got %s; write it as %s: {type: batch, nodes: [...]}", typeName(raw), short(name))
		r.checkDates(r.requiresDates())
		return nil
	}
	r.pcfg = pcfg
	r.ptype = r.pipelineType()
	entries := r.pipelineNodes()

	r.collectNodes(entries)
	for i := range r.nodes {
		if r.info[i].cfg != nil {
			r.parseNode(int32(i))
		}
	}
	r.resolveOutputs()
	r.resolveInputs()
	r.classify()
	r.checkOutputEntries()
	r.buildGraph()
	r.checkStreamingEdges()

	out := &Pipeline{Name: name, Env: r.proj.Env, Type: r.ptype, Settings: r.set, BreakerThreshold: r.set.BreakerThreshold}
	out.StartDate, out.EndDate = r.checkDates(r.requiresDates())
	out.MaxWorkers = r.req.MaxWorkers
	if out.MaxWorkers == 0 {
		out.MaxWorkers = r.set.MaxParallelNodes
	}
	r.pipelineSettings(out)
	sel := r.selection()
	if len(r.probs) > 0 {
		return nil
	}
	r.resolveSpecs(out)
	for i := range r.nodes {
		r.checkExpected(int32(i))
		r.resolveQuarantine(int32(i), out)
	}
	for i, n := range r.nodes {
		if n.Streaming {
			r.resolveStream(int32(i), out)
			r.checkStreamQuarantine(int32(i))
		}
	}
	if len(r.probs) > 0 {
		return nil
	}
	r.nodeValues(out)
	r.buildPlan(out, sel)
	r.resolveClears(out)
	r.isolate(out)
	return out
}

// isolate moves the selected nodes' writes, and the read-backs of what
// they and the nodes left out wrote, to the request's isolation folders.
func (r *resolver) isolate(out *Pipeline) {
	iso := r.req.Isolate
	if iso == nil {
		return
	}
	out.Isolation = iso
	kept := make(map[string]bool, len(out.Nodes))
	for _, n := range out.Nodes {
		kept[n.Name] = true
	}
	for _, n := range out.Nodes {
		for j := range n.OutputSpecs {
			n.OutputSpecs[j].Path = Isolated(n.OutputSpecs[j].Path, iso.Writes)
		}
		if n.Quarantine != nil {
			n.Quarantine.Path = Isolated(n.Quarantine.Path, iso.Writes)
		}
		for j := range n.InputSpecs {
			in := &n.InputSpecs[j]
			switch {
			case in.Producer == "":
			case kept[in.Producer]:
				in.Read.Path = Isolated(in.Read.Path, iso.Writes)
			case slices.Contains(iso.Shared, in.Producer):
				in.Read.Path = Isolated(in.Read.Path, iso.Reads)
			}
		}
	}
}

// nodeValues gives every node what it is run with beyond its own settings:
// the run's hyperparameters under its own, and its configuration as plain
// values.
func (r *resolver) nodeValues(out *Pipeline) {
	for _, n := range r.nodes {
		hp := make(map[string]any, len(out.Hyperparams)+len(n.Hyperparams))
		maps.Copy(hp, out.Hyperparams)
		maps.Copy(hp, n.Hyperparams)
		n.Hyperparams = hp
		n.Config, _ = config.Plain(n.raw).(map[string]any)
	}
}

// add records a problem.
func (r *resolver) add(field, code, format string, args ...any) {
	r.probs.Add(field, code, format, args...)
}

// pipeField is the path of a key of the pipeline's configuration.
func (r *resolver) pipeField(key string) string {
	f := "pipelines." + r.name
	if key != "" {
		f += "." + key
	}
	return f
}

// field is the path of a node setting: in the pipeline entry when the entry
// overrides it, else in the nodes config.
func (r *resolver) field(i int32, key string) string {
	inf := &r.info[i]
	if inf.over != nil {
		if _, ok := inf.over.Get(key); ok {
			return fmt.Sprintf("pipelines.%s.nodes[%d].%s", r.name, inf.entry, key)
		}
	}
	return "nodes." + r.nodes[i].Name + "." + key
}

// get reads a node setting from its effective configuration.
func (r *resolver) get(i int32, key string) (any, bool) {
	return r.info[i].cfg.Get(key)
}

// pipelineType reads and checks the pipeline's type.
func (r *resolver) pipelineType() string {
	v, ok := r.pcfg.Get("type")
	if !ok || v == nil {
		return TypeBatch
	}
	s, _ := v.(string)
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case TypeBatch, TypeStreaming, TypeHybrid, TypeML:
		return t
	}
	r.add(r.pipeField("type"), problem.CodeInvalidValue,
		"pipeline type must be batch, streaming, hybrid or ml, got %s", describe(v))
	return TypeBatch
}

// pipelineNodes checks the shape of the pipeline's nodes list.
func (r *resolver) pipelineNodes() []any {
	v, ok := r.pcfg.Get("nodes")
	f := r.pipeField("nodes")
	if !ok {
		r.add(f, problem.CodeRequired, "pipeline must contain 'nodes': list the names of its nodes, e.g. nodes: [extract, transform]")
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			r.add(f, problem.CodeRequired, "pipeline must have at least one node: list them under nodes")
			return nil
		}
		r.add(f, problem.CodeInvalidType, "'nodes' must be a list of node names, got %s", typeName(v))
		return nil
	}
	if len(list) == 0 {
		r.add(f, problem.CodeRequired, "pipeline must have at least one node: list them under nodes")
	}
	return list
}

// collectNodes reads the pipeline's entries and finds each node's
// configuration.
func (r *resolver) collectNodes(entries []any) {
	r.nodes = make([]*Node, 0, len(entries))
	r.info = make([]nodeInfo, 0, len(entries))
	r.byName = make(map[string]int32, len(entries))
	var missing []string
	for e, entry := range entries {
		ef := func() string { return fmt.Sprintf("pipelines.%s.nodes[%d]", r.name, e) }
		name, over, err := nodeEntry(entry)
		if err != nil {
			r.add(ef(), problem.CodeInvalidValue, "%v", err)
			continue
		}
		if msg := checkNodeName(name); msg != "" {
			r.add(ef(), problem.CodeInvalidValue, "node name %s %s", q(name), msg)
			continue
		}
		if prev, dup := r.byName[name]; dup {
			r.add(ef(), problem.CodeInvalidValue, "node %s is listed twice (also at nodes[%d]); list each node once",
				q(name), r.info[prev].entry)
			continue
		}
		idx := int32(len(r.nodes))
		r.byName[name] = idx
		n := &Node{Name: name, Index: int(idx)}
		inf := nodeInfo{entry: e, over: over}
		raw, ok := r.proj.Nodes.Get(name)
		switch m, isMap := raw.(*config.Map); {
		case !ok:
			missing = append(missing, name)
		case !isMap:
			r.add("nodes."+name, problem.CodeInvalidType,
				"node %s configuration must be a mapping with module and function (or sql), got %s", q(name), typeName(raw))
		case over != nil:
			merged := config.NewMap()
			merged.Keys = append(merged.Keys, m.Keys...)
			merged.Values = maps.Clone(m.Values)
			for _, k := range over.Keys {
				merged.Set(k, over.Values[k])
			}
			inf.cfg = merged
		default:
			inf.cfg = m
		}
		n.raw = inf.cfg
		r.nodes = append(r.nodes, n)
		r.info = append(r.info, inf)
	}
	if len(missing) > 0 {
		r.add(r.pipeField("nodes"), problem.CodeMissingNodeConfig,
			"missing node configurations: %s; define them in the nodes config or remove them from pipeline %s",
			joinPlain(missing, 50), q(r.name))
	}
}

// pipelineSettings fills the pipeline-level settings.
func (r *resolver) pipelineSettings(out *Pipeline) {
	out.Hyperparams = maps.Clone(r.set.DefaultHyperparams)
	if v, ok := r.pcfg.Get("hyperparams"); ok && v != nil {
		if _, isMap := mapKeys(v); isMap {
			hp, _ := config.Plain(v).(map[string]any)
			if out.Hyperparams == nil {
				out.Hyperparams = make(map[string]any, len(hp))
			}
			maps.Copy(out.Hyperparams, hp)
		} else {
			r.add(r.pipeField("hyperparams"), problem.CodeInvalidType, "hyperparams must be a mapping of name to value, got %s", typeName(v))
		}
	}
	if len(r.req.Hyperparams) > 0 {
		if out.Hyperparams == nil {
			out.Hyperparams = make(map[string]any, len(r.req.Hyperparams))
		}
		maps.Copy(out.Hyperparams, r.req.Hyperparams)
	}
	out.Config, _ = config.Plain(r.pcfg).(map[string]any)
	out.ModelVersion = r.set.DefaultModelVersion
	if v, ok := r.pcfg.Get("model_version"); ok && v != nil {
		if s, ok := scalarString(v); ok {
			out.ModelVersion = s
		} else {
			r.add(r.pipeField("model_version"), problem.CodeInvalidType, "model_version must be a string, got %s", typeName(v))
		}
	}
	if r.req.ModelVersion != "" {
		out.ModelVersion = r.req.ModelVersion
	}
	out.MaxActiveRuns = 1
	if v, ok := r.pcfg.Get("max_active_runs"); ok && v != nil {
		if n, ok := asInt(v); ok && n >= 1 && n <= 1000 {
			out.MaxActiveRuns = n
		} else {
			r.add(r.pipeField("max_active_runs"), problem.CodeInvalidValue,
				"max_active_runs must be a whole number from 1 to 1000 (runs of this pipeline executing at once), got %s", describe(v))
		}
	}
	if v, ok := r.pcfg.Get("stream_timeout"); ok && v != nil {
		if d, ok := asDuration(v); ok && d > 0 {
			out.StreamTimeout = d
		} else {
			r.add(r.pipeField("stream_timeout"), problem.CodeInvalidValue,
				"stream_timeout must be a number of seconds (e.g. 600) or a duration like \"10 minutes\", got %s", describe(v))
		}
	}
	out.SparkConfig = maps.Clone(r.set.SparkConfig)
	if v, ok := r.pcfg.Get("spark_config"); ok && v != nil {
		sc := sparkConfig(v, r.pipeField("spark_config"), &r.probs)
		if out.SparkConfig == nil && len(sc) > 0 {
			out.SparkConfig = make(map[string]string, len(sc))
		}
		maps.Copy(out.SparkConfig, sc)
	}
}

// requiresDates applies tauro's rule: the pipeline's requires_dates, else
// the global one, else true except for streaming pipelines.
func (r *resolver) requiresDates() bool {
	if r.pcfg != nil {
		if v, ok := r.pcfg.Get("requires_dates"); ok && v != nil {
			if b, ok := asBool(v); ok {
				return b
			}
			r.add(r.pipeField("requires_dates"), problem.CodeInvalidType, "requires_dates must be true or false, got %s", typeName(v))
		}
	}
	if r.set.RequiresDates != nil {
		return *r.set.RequiresDates
	}
	return r.ptype != TypeStreaming
}

// describe renders a scalar for a message, or names its type.
func describe(v any) string {
	if s, ok := scalarString(v); ok {
		return q(s)
	}
	return typeName(v)
}

// short renders a user-supplied name unquoted, for messages that quote a
// format ("a -> b -> a", "missing node configurations: b, c").
func short(s string) string {
	t := q(s)
	if strings.HasPrefix(t, "'") {
		return t[1 : len(t)-1]
	}
	return t
}

// joinPlain lists names unquoted, eliding the tail of a long list.
func joinPlain(names []string, limit int) string { return joinWith(names, limit, short) }

// checkNodeName keeps node names to what is safe everywhere a name goes:
// selectors (a leading or trailing '+' would be ambiguous), field paths,
// view names, log lines. It returns what is wrong, or "".
func checkNodeName(name string) string {
	if len(name) > 256 {
		return "is longer than 256 bytes"
	}
	if strings.HasPrefix(name, "+") || strings.HasSuffix(name, "+") {
		return "starts or ends with '+', which node selectors use; rename it"
	}
	word := false
	for _, c := range name {
		switch {
		case c == '_' || isLetterOrDigit(c):
			word = true
		case c == '-' || c == '.':
		default:
			return fmt.Sprintf("contains %q; use letters, digits, '_', '-' and '.'", c)
		}
	}
	if !word {
		return "needs at least one letter, digit or '_'"
	}
	return ""
}
