package plan

import (
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// Output keys are compared parsed: "gold/sales/daily" and
// "gold.sales.daily" name the same table.

// resolveOutputs parses every node's output keys, finds their output
// configuration and records which node writes which key.
func (r *resolver) resolveOutputs() {
	r.producers = make(map[config.OutputKey]int32, len(r.nodes))
	r.producersRaw = make(map[string]int32, len(r.nodes))
	for i, n := range r.nodes {
		if len(n.Outputs) == 0 {
			continue
		}
		inf := &r.info[i]
		n.OutputKeys = make([]config.OutputKey, len(n.Outputs))
		inf.outs = make([]outputInfo, len(n.Outputs))
		for j, key := range n.Outputs {
			if key == "" {
				continue
			}
			f := func() string { return r.field(int32(i), "output") + "[" + itoa(j) + "]" }
			k, err := config.ParseOutputKey(key)
			if err != nil {
				r.add(f(), problem.CodeInvalidOutputKey,
					"node %s: %v", q(n.Name), err)
				continue
			}
			n.OutputKeys[j] = k
			if w, dup := r.producers[k]; dup {
				if int(w) != i {
					r.add(f(), problem.CodeInvalidValue,
						"output %s is written by both %s and %s; give each output one writer in a pipeline",
						q(key), q(r.nodes[w].Name), q(n.Name))
				}
				continue
			}
			r.producers[k] = int32(i)
			r.producersRaw[key] = int32(i)
			entry, found := r.outputEntry(key, k)
			if !found {
				r.add(f(), problem.CodeUnknownOutput,
					"node %s writes %s, which is not in the output config; add %s: {format: parquet, write_mode: overwrite} to the output config",
					q(n.Name), q(key), short(key))
				continue
			}
			out := &inf.outs[j]
			out.entry, out.found = entry, true
			if m, ok := entry.(*config.Map); ok {
				fv, _ := m.Get("format")
				s, _ := fv.(string)
				out.format = strings.ToLower(strings.TrimSpace(s))
			}
		}
	}
}

// outputEntry finds an output's configuration by its key as written, else
// by its parsed form ("a/b/c" finds "a.b.c").
func (r *resolver) outputEntry(key string, parsed config.OutputKey) (any, bool) {
	if v, ok := r.proj.Outputs.Get(key); ok {
		return v, true
	}
	if r.outIndex == nil {
		r.outIndex = make(map[config.OutputKey]string, r.proj.Outputs.Len())
		for _, k := range r.proj.Outputs.Keys {
			if pk, err := config.ParseOutputKey(k); err == nil {
				if _, dup := r.outIndex[pk]; !dup {
					r.outIndex[pk] = k
				}
			}
		}
	}
	if k, ok := r.outIndex[parsed]; ok {
		return r.proj.Outputs.Get(k)
	}
	return nil, false
}

// producer finds the node of the pipeline that writes key: by the key as
// written, else (when it can be an output key at all) by its parsed form.
func (r *resolver) producer(key string) (int32, bool) {
	if w, ok := r.producersRaw[key]; ok {
		return w, true
	}
	if !strings.ContainsAny(key, "./") {
		return 0, false
	}
	k, err := config.ParseOutputKey(key)
	if err != nil {
		return 0, false
	}
	w, ok := r.producers[k]
	return w, ok
}

// inputInfo is what checking one input config entry found.
type inputInfo struct {
	format string // lower case; "" when not given
	ok     bool   // false when a problem was reported
}

// resolveInputs links each input to the node that writes it (an automatic
// dependency) or to the input config. A node's output wins over an input
// config entry of the same key: the run produces that data.
func (r *resolver) resolveInputs() {
	r.inputSeen = make(map[string]inputInfo)
	for i, n := range r.nodes {
		inf := &r.info[i]
		if n.InlineInput != nil {
			fv, _ := n.InlineInput.Get("format")
			s, _ := fv.(string)
			format := strings.ToLower(strings.TrimSpace(s))
			if format != "" {
				r.checkInputFormat(r.field(int32(i), "input")+".format", format)
				if IsStreamingFormat(format) {
					inf.streamInputs = append(inf.streamInputs, format)
					inf.streamInputKey = "(inline input)"
				}
			}
		}
		for j, key := range n.Inputs {
			if key == "" {
				continue
			}
			if w, ok := r.producer(key); ok {
				if int(w) != i {
					if n.ProducedBy == nil {
						n.ProducedBy = make(map[string]string)
					}
					n.ProducedBy[key] = r.nodes[w].Name
					inf.refs = append(inf.refs, depRef{name: r.nodes[w].Name, to: w, auto: true, pos: int32(j)})
					continue
				}
				// A node reading what it writes (an incremental update) reads
				// the previous version: no dependency, no input entry needed.
				if _, ok := r.proj.Inputs.Get(key); !ok {
					continue
				}
			}
			ii, ok := r.inputSeen[key]
			if !ok {
				entry, found := r.proj.Inputs.Get(key)
				if !found {
					r.unknownInput(int32(i), j, key)
					continue
				}
				ii = r.checkInputEntry(key, entry)
				r.inputSeen[key] = ii
			}
			if IsStreamingFormat(ii.format) {
				inf.streamInputs = append(inf.streamInputs, ii.format)
				if inf.streamInputKey == "" {
					inf.streamInputKey = key
				}
			}
		}
	}
}

func (r *resolver) unknownInput(i int32, j int, key string) {
	n := r.nodes[i]
	f := r.field(i, "input") + "[" + itoa(j) + "]"
	hint := "add it to the input config (with format and filepath) or add the node that writes it to the pipeline"
	if w, ok := r.byName[key]; ok && len(r.nodes[w].Outputs) > 0 && r.nodes[w].Outputs[0] != "" {
		hint = "inputs name data, not nodes: to read what node " + q(key) + " writes, use its output key " + q(r.nodes[w].Outputs[0])
	} else if _, ok := r.proj.Outputs.Get(key); ok {
		hint = "it is an output key, but no node of this pipeline writes it; add an input config entry pointing at where it is stored, or add its writer to the pipeline"
	}
	r.add(f, problem.CodeUnknownInput,
		"node %s reads %s, which is neither in the input config nor written by a node of pipeline %s; %s",
		q(n.Name), q(key), q(r.name), hint)
}

// checkInputEntry checks an input config entry once, whichever nodes read it.
func (r *resolver) checkInputEntry(key string, entry any) inputInfo {
	f := "input." + key
	m, ok := entry.(*config.Map)
	if !ok {
		r.add(f, problem.CodeInvalidType, "input %s must be a mapping with format and filepath, got %s", q(key), typeName(entry))
		return inputInfo{}
	}
	fv, _ := m.Get("format")
	s, _ := fv.(string)
	format := strings.ToLower(strings.TrimSpace(s))
	if format == "" {
		r.add(f+".format", problem.CodeRequired, "input %s needs a format (e.g. format: parquet)", q(key))
		return inputInfo{}
	}
	// A format the policy forbids still says whether the input is a stream,
	// which keeps the node's other checks meaningful.
	if !r.checkInputFormat(f+".format", format) {
		return inputInfo{format: format}
	}
	switch {
	case slices.Contains(formatsNeedingPath, format):
		if p, _ := m.Get("filepath"); !nonEmptyString(p) {
			r.add(f+".filepath", problem.CodeRequired, "input %s (format %s) needs a filepath", q(key), format)
		}
	case format == "query":
		if p, _ := m.Get("query"); !nonEmptyString(p) {
			r.add(f+".query", problem.CodeRequired, "input %s (format query) needs the query text under query", q(key))
		}
	}
	return inputInfo{format: format, ok: true}
}

// checkInputFormat checks that format can be read under the policy.
func (r *resolver) checkInputFormat(f, format string) bool {
	if r.set.FormatPolicy.AllowsInput(format) {
		return true
	}
	known := slices.Contains(knownBatchInputs, format) || IsStreamingFormat(format)
	if !known {
		r.add(f, problem.CodeInvalidFormat, "unknown input format %s; execd reads %s, and as streams %s",
			q(format), strings.Join(knownBatchInputs, ", "), strings.Join(knownStreamingInputs, ", "))
		return false
	}
	which := "batch_inputs"
	if IsStreamingFormat(format) {
		which = "supported_inputs"
	}
	r.add(f, problem.CodeInvalidFormat, "input format %s is not allowed by global_settings.format_policy.%s (%s)",
		q(format), which, strings.Join(r.set.FormatPolicy.inputsFor(format), ", "))
	return false
}

func nonEmptyString(v any) bool {
	s, ok := v.(string)
	return ok && strings.TrimSpace(s) != ""
}

// classify decides which nodes are streaming: every node of a streaming
// pipeline, a node that says streaming, a node that reads a stream, and a
// node that reads what a streaming node writes (that table keeps changing,
// so only a stream can follow it). A node that says streaming: false stays
// batch, and the dependency checks tell it why that cannot work.
func (r *resolver) classify() {
	var queue []int32
	for i, n := range r.nodes {
		inf := &r.info[i]
		if inf.cfg == nil {
			continue
		}
		f := func() string { return r.field(int32(i), "streaming") }
		switch {
		case inf.streamFlag < 0 && r.ptype == TypeStreaming:
			r.add(f(), problem.CodeIncompatible,
				"node %s sets streaming: false, but pipeline %s is a streaming pipeline; use type: hybrid to mix batch and streaming nodes",
				q(n.Name), q(r.name))
		case inf.streamFlag < 0 && len(inf.streamInputs) > 0:
			r.add(f(), problem.CodeIncompatible,
				"node %s sets streaming: false but reads a stream (%s, format %s); remove streaming: false or read a batch format",
				q(n.Name), q(inf.streamInputKey), inf.streamInputs[0])
		}
		n.Streaming = r.ptype == TypeStreaming || inf.streamFlag > 0 || (inf.streamFlag == 0 && len(inf.streamInputs) > 0)
		if n.Streaming {
			queue = append(queue, int32(i))
		}
	}
	if len(queue) > 0 {
		r.propagateStreaming(queue)
	}

	var inBatch []string
	for i, n := range r.nodes {
		inf := &r.info[i]
		if inf.cfg == nil {
			continue
		}
		if !n.Streaming {
			if n.Kind == "" && !r.hasKindProblem(int32(i)) {
				r.add("nodes."+n.Name, problem.CodeInvalidFunction,
					"node %s has nothing to run: set module and function (a Python function) or sql (a Spark SQL query)", q(n.Name))
			}
			continue
		}
		if r.ptype == TypeBatch || r.ptype == TypeML {
			inBatch = append(inBatch, n.Name)
		}
		if n.Trigger.Type == "" {
			n.Trigger = defaultTrigger
		}
		if n.OutputMode == "" {
			n.OutputMode = "append"
		}
		if !inf.timeoutSet {
			n.Timeout = 0
		}
		if len(n.Outputs) == 0 && n.InlineOutput == nil {
			r.add(r.field(int32(i), "output"), problem.CodeRequired,
				"streaming node %s has no output; a streaming query needs a sink: add output", q(n.Name))
		}
		if n.Kind == "" && !r.hasKindProblem(int32(i)) {
			inputs := len(n.Inputs)
			if n.InlineInput != nil {
				inputs++
			}
			if inputs != 1 {
				r.add("nodes."+n.Name, problem.CodeInvalidFunction,
					"streaming node %s has no function, so it can only copy one input stream to its output, but it has %d inputs; add module and function (or sql) to combine them",
					q(n.Name), inputs)
			} else {
				n.Kind = KindPassthrough
			}
		}
	}
	if len(inBatch) > 0 {
		r.add(r.pipeField("type"), problem.CodeIncompatible,
			"pipeline %s is a %s pipeline but has streaming nodes (%s); set type: hybrid to mix batch and streaming nodes",
			q(r.name), r.ptype, joinQuoted(inBatch, 10))
	}
}

// propagateStreaming makes streaming every node that reads, by key, what a
// streaming node writes, transitively (a worklist, not recursion).
func (r *resolver) propagateStreaming(queue []int32) {
	readers := make(map[int32][]int32) // writer -> nodes reading its output
	for i := range r.info {
		for _, ref := range r.info[i].refs {
			if ref.auto {
				readers[ref.to] = append(readers[ref.to], int32(i))
			}
		}
	}
	for len(queue) > 0 {
		w := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, rd := range readers[w] {
			n := r.nodes[rd]
			if !n.Streaming && r.info[rd].cfg != nil && r.info[rd].streamFlag == 0 {
				n.Streaming = true
				queue = append(queue, rd)
			}
		}
	}
}

// hasKindProblem reports whether parseKind already reported this node, so
// that classify does not pile a second message on the same mistake.
func (r *resolver) hasKindProblem(i int32) bool {
	for _, k := range []string{"sql", "function", "module"} {
		if v, ok := r.get(i, k); ok && v != nil {
			return true
		}
	}
	return false
}

// checkOutputEntries checks the output configuration of every output, now
// that it is known whether its writer is streaming.
func (r *resolver) checkOutputEntries() {
	pol := r.set.FormatPolicy
	for i, n := range r.nodes {
		inf := &r.info[i]
		if n.InlineOutput != nil {
			fv, _ := n.InlineOutput.Get("format")
			s, _ := fv.(string)
			if format := strings.ToLower(strings.TrimSpace(s)); format != "" && !pol.AllowsOutput(format, n.Streaming) {
				r.outputFormatProblem(r.field(int32(i), "output")+".format", n, format)
			}
			if !n.Streaming {
				r.refuseCDC(r.field(int32(i), "output"), n.InlineOutput, n.Name)
			}
		}
		for j, key := range n.Outputs {
			if j >= len(inf.outs) || !inf.outs[j].found {
				continue
			}
			f := func() string { return "output." + key }
			m, ok := inf.outs[j].entry.(*config.Map)
			if !ok {
				r.add(f(), problem.CodeInvalidType, "output %s must be a mapping with format and write_mode, got %s", q(key), typeName(inf.outs[j].entry))
				continue
			}
			format := inf.outs[j].format
			if format == "" {
				r.add(f()+".format", problem.CodeRequired, "output %s needs a format (e.g. format: parquet)", q(key))
			} else if !pol.AllowsOutput(format, n.Streaming) {
				r.outputFormatProblem(f()+".format", n, format)
			}
			if format == "kafka" {
				r.checkKafkaSink(f(), "output "+q(key), textMap(m, "options"))
			}
			if n.Streaming {
				continue
			}
			r.refuseCDC(f(), m, n.Name)
			if v, ok := m.Get("write_mode"); ok && v != nil {
				s, _ := v.(string)
				mode := strings.ToLower(strings.TrimSpace(s))
				switch {
				case !slices.Contains(writeModes, mode):
					r.add(f()+".write_mode", problem.CodeInvalidValue,
						"output %s: write_mode must be overwrite, append, ignore or error, got %s", q(key), describe(v))
				case format == "kafka" && mode != "append":
					// Spark's Kafka writer refuses overwrite and ignore, and
					// takes error as append: a topic only grows.
					r.add(f()+".write_mode", problem.CodeIncompatible,
						"output %s: a kafka output appends records to its topic; set write_mode: append or leave it out, not %s", q(key), mode)
				}
			}
		}
	}
}

func (r *resolver) outputFormatProblem(f string, n *Node, format string) {
	kind, list, setting := "batch", knownBatchOutputs, "batch_outputs"
	if n.Streaming {
		kind, list, setting = "streaming", knownStreamingOutputs, "supported_outputs"
	}
	if !slices.Contains(list, format) {
		r.add(f, problem.CodeInvalidFormat, "node %s writes format %s, which a %s node cannot write; use one of %s",
			q(n.Name), q(format), kind, strings.Join(list, ", "))
		return
	}
	r.add(f, problem.CodeInvalidFormat, "node %s writes format %s, which global_settings.format_policy.%s (%s) does not allow",
		q(n.Name), q(format), setting, strings.Join(r.set.FormatPolicy.outputsFor(n.Streaming), ", "))
}
