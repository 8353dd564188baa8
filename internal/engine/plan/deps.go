package plan

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// refField is the path of the setting a dependency comes from.
func (r *resolver) refField(i int32, d depRef) string {
	key := "dependencies"
	if d.auto {
		key = "input"
	}
	return r.field(i, key) + "[" + itoa(int(d.pos)) + "]"
}

// firstRef is the first dependency of i on d as written (for a field path).
func (r *resolver) firstRef(i, d int32) depRef {
	for _, ref := range r.info[i].refs {
		if ref.to == d {
			return ref
		}
	}
	return depRef{to: d}
}

// buildGraph resolves dependency names, builds the dependency graph and
// reports unknown dependencies and cycles.
func (r *resolver) buildGraph() {
	n := len(r.nodes)
	total := 0
	for i := range r.info {
		total += len(r.info[i].refs)
	}
	g := &dag{start: make([]int32, n+1), adj: make([]int32, 0, total)}
	var scratch []int32
	for i := range r.nodes {
		inf := &r.info[i]
		scratch = scratch[:0]
		for k := range inf.refs {
			ref := &inf.refs[k]
			if !ref.auto {
				to, ok := r.byName[ref.name]
				if !ok {
					r.unknownDependency(int32(i), *ref)
					continue
				}
				ref.to = to
			}
			scratch = append(scratch, ref.to)
		}
		slices.Sort(scratch)
		g.adj = append(g.adj, slices.Compact(scratch)...)
		g.start[i+1] = int32(len(g.adj))
	}
	r.g, r.rev = g, g.reverse()

	order := topoOrder(g, r.rev)
	if len(order) == n {
		return
	}
	for _, cyc := range cycles(g, order) {
		names := make([]string, len(cyc))
		for k, v := range cyc {
			names[k] = r.nodes[v].Name
		}
		r.add(r.refField(cyc[0], r.firstRef(cyc[0], cyc[1])), problem.CodeCycle,
			"dependency cycle: %s (each node depends on the next); remove one of these dependencies",
			joinArrow(names))
	}
}

func joinArrow(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = short(n)
	}
	return strings.Join(parts, " -> ")
}

func (r *resolver) unknownDependency(i int32, ref depRef) {
	hint := "add " + q(ref.name) + " to the nodes of pipeline " + q(r.name) + " or remove the dependency"
	if _, ok := r.proj.Nodes.Get(ref.name); ok {
		hint = q(ref.name) + " is defined in the nodes config but not listed in pipeline " + q(r.name) + "; add it to the pipeline's nodes or remove the dependency"
	}
	r.add(r.refField(i, ref), problem.CodeUnknownDependency,
		"node %s depends on %s which is not in the pipeline; %s", q(r.nodes[i].Name), q(ref.name), hint)
}

// checkStreamingEdges applies the rules of mixing batch and streaming
// nodes: a batch node cannot wait for a stream, which never ends, and a
// stream can read what another node wrote only in a format a stream reads.
func (r *resolver) checkStreamingEdges() {
	pol := r.set.FormatPolicy
	for i, n := range r.nodes {
		inf := &r.info[i]
		if inf.cfg == nil {
			continue
		}
		for _, d := range r.g.deps(int32(i)) {
			up := r.nodes[d]
			if r.info[d].cfg == nil {
				continue
			}
			switch {
			case !n.Streaming && up.Streaming:
				r.add(r.refField(int32(i), r.firstRef(int32(i), d)), problem.CodeIncompatible,
					"batch node %s cannot depend on streaming node %s: a stream never finishes, so %s would never start; make %s streaming or remove the dependency",
					q(n.Name), q(up.Name), q(n.Name), q(n.Name))
			case n.Streaming && !up.Streaming:
				r.checkStreamOfBatch(int32(i), d, pol)
			}
		}
		if n.Streaming {
			r.setReadAs(int32(i), pol)
		}
	}
}

// checkStreamOfBatch checks an explicit dependency of streaming node i on
// batch node d: what i reads as a stream must be able to read d's output,
// unless i reads that output as a table. An automatic dependency is checked
// by setReadAs.
func (r *resolver) checkStreamOfBatch(i, d int32, pol FormatPolicy) {
	explicit := false
	for _, ref := range r.info[i].refs {
		if ref.to != d {
			continue
		}
		if ref.auto {
			return // reads d's output by key: setReadAs checks the format
		}
		explicit = true
	}
	if !explicit || len(r.info[i].streamInputs) == 0 || r.readsAsTable(i, d) {
		return
	}
	n, up := r.nodes[i], r.nodes[d]
	outs := make([]string, 0, len(r.info[d].outs)+1)
	for _, o := range r.info[d].outs {
		outs = append(outs, o.format)
	}
	if len(up.Outputs) == 0 && up.InlineOutput == nil {
		r.add(r.refField(i, r.firstRef(i, d)), problem.CodeIncompatible,
			"streaming node %s depends on batch node %s, which writes no output for it to read; give %s an output",
			q(n.Name), q(up.Name), q(up.Name))
		return
	}
	if up.InlineOutput != nil {
		fv, _ := up.InlineOutput.Get("format")
		s, _ := fv.(string)
		outs = append(outs, strings.ToLower(strings.TrimSpace(s)))
	}
	var firstOut string
	for _, o := range outs {
		if o == "" {
			continue
		}
		if firstOut == "" {
			firstOut = o
		}
		for _, in := range r.info[i].streamInputs {
			if pol.Compatible(o, in) {
				return
			}
		}
	}
	if firstOut == "" {
		return // the output's format is unknown; that is reported already
	}
	err := pol.checkHybrid(firstOut, r.info[i].streamInputs[0])
	hint := ""
	if len(up.OutputKeys) > 0 && len(r.info[d].outs) > 0 && r.info[d].outs[0].found {
		hint = fmt.Sprintf("; to join its output as a table instead, read it through an input config entry of format %s whose filepath is %s",
			q(firstOut), r.outputPath(up.OutputKeys[0]))
	}
	r.add(r.refField(i, r.firstRef(i, d)), problem.CodeIncompatible,
		"streaming node %s depends on batch node %s: %v%s", q(n.Name), q(up.Name), err, hint)
}

// readsAsTable reports whether streaming node i reads what batch node d
// writes as a table: through an input config entry of a batch format whose
// path is where one of d's outputs is written (a stream-static join). Its
// explicit dependency on d then only makes it start once d has written.
func (r *resolver) readsAsTable(i, d int32) bool {
	up, outs := r.nodes[d], r.info[d].outs
	for _, key := range r.nodes[i].Inputs {
		if _, produced := r.producer(key); produced {
			continue // read as a stream, or its own output
		}
		entry, _ := r.proj.Inputs.Get(key)
		m, _ := entry.(*config.Map)
		if m == nil || IsStreamingFormat(strings.ToLower(strings.TrimSpace(text(m, "format")))) {
			continue
		}
		p := firstText(m, "filepath", "path")
		if p == "" {
			continue
		}
		for j, k := range up.OutputKeys {
			if j < len(outs) && outs[j].found && samePath(r.abs(p), r.outputPath(k)) {
				return true
			}
		}
	}
	return false
}

// samePath compares two absolute paths or URLs.
func samePath(a, b string) bool {
	if config.HasScheme(a) || config.HasScheme(b) {
		return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// setReadAs chooses, for each input of streaming node i written by another
// node, the streaming format that reads it.
func (r *resolver) setReadAs(i int32, pol FormatPolicy) {
	n := r.nodes[i]
	for _, ref := range r.info[i].refs {
		if !ref.auto {
			continue
		}
		key := n.Inputs[ref.pos]
		up := r.nodes[ref.to]
		format := r.outputFormatOf(ref.to, key)
		if format == "" {
			continue // unknown output format: reported with the output
		}
		readAs := pol.StreamFormatFor(format)
		if readAs == "" {
			r.add(r.refField(i, ref), problem.CodeIncompatible,
				"incompatible format: streaming node %s reads %s as a stream, but node %s writes it as %s, which no streaming format reads; write it as %s",
				q(n.Name), q(key), q(up.Name), q(format), describeCompat(pol.Compatibility))
			continue
		}
		if n.ReadAs == nil {
			n.ReadAs = make(map[string]string)
		}
		n.ReadAs[key] = readAs
	}
	if len(r.info[i].streamInputs) == 0 && len(n.ReadAs) == 0 && !r.readsAnything(i) {
		r.add(r.field(i, "input"), problem.CodeRequired,
			"streaming node %s reads no stream; give it an input with a streaming format (%s) or read another node's output",
			q(n.Name), strings.Join(pol.StreamingInputs, ", "))
	}
}

// readsAnything reports whether a node has an input whose problem is already
// reported, so that "reads no stream" is not said on top of it.
func (r *resolver) readsAnything(i int32) bool {
	n := r.nodes[i]
	for _, ref := range r.info[i].refs {
		if ref.auto {
			return true
		}
	}
	for _, key := range n.Inputs {
		if ii, ok := r.inputSeen[key]; !ok || !ii.ok {
			return true
		}
	}
	return false
}

// outputFormatOf is the format node d writes key in.
func (r *resolver) outputFormatOf(d int32, key string) string {
	up := r.nodes[d]
	inf := &r.info[d]
	for j, o := range up.Outputs {
		if j < len(inf.outs) && (o == key || sameKey(up.OutputKeys[j], key)) {
			return inf.outs[j].format
		}
	}
	return ""
}

// sameKey compares a parsed output key with a key as written.
func sameKey(k config.OutputKey, key string) bool {
	pk, err := config.ParseOutputKey(key)
	return err == nil && pk == k
}
