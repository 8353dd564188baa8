package plan

import (
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// selector is one parsed entry of Request.Select.
type selector struct {
	node           int32
	upstream, down bool
}

// selection checks the selectors and returns them parsed; nil selects the
// whole pipeline.
func (r *resolver) selection() []selector {
	if len(r.req.Select) == 0 {
		return nil
	}
	out := make([]selector, 0, len(r.req.Select))
	for i, s := range r.req.Select {
		f := "select[" + itoa(i) + "]"
		name := strings.TrimSpace(s)
		up := strings.HasPrefix(name, "+")
		name = strings.TrimPrefix(name, "+")
		down := strings.HasSuffix(name, "+")
		name = strings.TrimSuffix(name, "+")
		if name == "" {
			r.add(f, problem.CodeInvalidSelector,
				"selector %s names no node; write node, +node (with its upstream), node+ (with its downstream) or +node+", q(s))
			continue
		}
		idx, ok := r.byName[name]
		if !ok {
			r.add(f, problem.CodeInvalidSelector, "selector %s: pipeline %s has no node %s; its nodes are %s",
				q(s), q(r.name), q(name), joinPlain(r.nodeNames(), 20))
			continue
		}
		out = append(out, selector{idx, up, down})
	}
	return out
}

func (r *resolver) nodeNames() []string {
	names := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		names[i] = n.Name
	}
	return names
}

// buildPlan keeps the selected nodes and plans them. Dependencies on nodes
// outside the selection are not waited for but kept as Outside: the caller
// selected a part of the pipeline because the rest already ran.
func (r *resolver) buildPlan(out *Pipeline, sels []selector) {
	n := len(r.nodes)
	sel := make([]bool, n)
	if sels == nil {
		for i := range sel {
			sel[i] = true
		}
	} else {
		var up, down []int32
		for _, s := range sels {
			sel[s.node] = true
			if s.upstream {
				up = append(up, s.node)
			}
			if s.down {
				down = append(down, s.node)
			}
		}
		closure(r.g, up, sel)
		closure(r.rev, down, sel)
	}

	// Renumber the selected nodes; the numbering keeps declaration order,
	// so the dependency lists stay sorted.
	newIdx := make([]int32, n)
	kept := make([]*Node, 0, n)
	for i := range n {
		newIdx[i] = -1
		if sel[i] {
			newIdx[i] = int32(len(kept))
			kept = append(kept, r.nodes[i])
		}
	}
	sub := &dag{start: make([]int32, len(kept)+1), adj: make([]int32, 0, len(r.g.adj))}
	for i := range n {
		if !sel[i] {
			continue
		}
		node := r.nodes[i]
		deps := r.g.deps(int32(i))
		node.Dependencies = make([]string, 0, len(deps))
		node.Outside = nil
		for _, d := range deps {
			if sel[d] {
				sub.adj = append(sub.adj, newIdx[d])
				node.Dependencies = append(node.Dependencies, r.nodes[d].Name)
			} else {
				node.Outside = append(node.Outside, Upstream{Name: r.nodes[d].Name, Outputs: r.nodes[d].OutputSpecs})
			}
		}
		sub.start[newIdx[i]+1] = int32(len(sub.adj))
	}

	order := topoOrder(sub, sub.reverse())
	lv := levels(sub, order)
	maxLevel := int32(-1)
	for _, l := range lv {
		maxLevel = max(maxLevel, l)
	}
	counts := make([]int, maxLevel+1)
	for _, l := range lv {
		counts[l]++
	}
	stages := make([][]string, maxLevel+1)
	for l := range stages {
		stages[l] = make([]string, 0, counts[l])
	}
	for v, node := range kept {
		stages[lv[v]] = append(stages[lv[v]], node.Name)
	}

	p := &out.Plan
	p.Order = make([]string, len(order))
	for k, v := range order {
		name := kept[v].Name
		p.Order[k] = name
		if kept[v].Streaming {
			p.Streaming = append(p.Streaming, name)
		} else {
			p.Batch = append(p.Batch, name)
		}
	}
	p.Stages = stages
	for _, v := range criticalPath(sub, lv) {
		p.CriticalPath = append(p.CriticalPath, kept[v].Name)
	}
	out.Nodes = kept
}
