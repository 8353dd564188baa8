package plan

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
)

// wideProject is a pipeline of n nodes shaped like a warehouse: the first
// tenth read sources from the input config; every other node reads one to
// three outputs of earlier nodes (automatic dependencies) and names one or
// two more upstream nodes explicitly, mostly from the recent past, sometimes
// from far back. Every node writes one output key.
func wideProject(n int) *config.Project {
	rng := rand.New(rand.NewPCG(1, 2))
	p := &config.Project{Global: config.NewMap(), Pipelines: config.NewMap(), Nodes: config.NewMap(),
		Inputs: config.NewMap(), Outputs: config.NewMap()}
	p.Global.Set("start_date", "2025-01-01")
	p.Global.Set("end_date", "2025-01-31")
	pick := func(i int) int {
		if rng.IntN(4) == 0 {
			return rng.IntN(i)
		}
		return max(0, i-1-rng.IntN(min(i, 50)))
	}
	list := make([]any, n)
	for i := range n {
		name := fmt.Sprintf("node_%05d", i)
		list[i] = name
		m := config.NewMap()
		m.Set("function", fmt.Sprintf("pipelines.layer%d.step_%d", i%7, i))
		out := fmt.Sprintf("gold.layer%d.t%05d", i%7, i)
		m.Set("output", []any{out})
		o := config.NewMap()
		o.Set("format", "delta")
		o.Set("write_mode", "overwrite")
		p.Outputs.Set(out, o)
		if i < n/10 {
			src := fmt.Sprintf("src_%05d", i)
			m.Set("input", []any{src})
			in := config.NewMap()
			in.Set("format", "parquet")
			in.Set("filepath", "/data/"+src)
			p.Inputs.Set(src, in)
		} else {
			var inputs, deps []any
			for range 1 + rng.IntN(3) {
				j := pick(i)
				inputs = append(inputs, fmt.Sprintf("gold.layer%d.t%05d", j%7, j))
			}
			for range 1 + rng.IntN(2) {
				deps = append(deps, fmt.Sprintf("node_%05d", pick(i)))
			}
			m.Set("input", inputs)
			m.Set("dependencies", deps)
		}
		p.Nodes.Set(name, m)
	}
	pipe := config.NewMap()
	pipe.Set("type", "batch")
	pipe.Set("nodes", list)
	p.Pipelines.Set("warehouse", pipe)
	return p
}

func BenchmarkResolve10kNodes(b *testing.B) {
	p := wideProject(10_000)
	if _, err := Resolve(p, Request{Pipeline: "warehouse"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(p, Request{Pipeline: "warehouse"}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestResolve_WideProjectIsValid(t *testing.T) {
	pl := mustResolve(t, wideProject(2_000), Request{Pipeline: "warehouse"})
	if len(pl.Plan.Order) != 2_000 || len(pl.Plan.Stages) < 2 {
		t.Fatalf("order %d stages %d", len(pl.Plan.Order), len(pl.Plan.Stages))
	}
}
