package config

import (
	"path/filepath"
	"slices"
	"testing"
)

// The sales example is what the demo and other packages' tests run; it must
// always load, and its output keys must all be tauro keys.
func TestLoad_SalesExampleLoadsInEveryEnvironment(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "examples", "sales")
	for _, tt := range []struct{ env, used string }{
		{"base", "base"},
		{"dev", "dev"},
		{"prod", "base"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			p := mustLoad(t, dir, tt.env, lookupFrom(nil))
			if p.EnvUsed != tt.used {
				t.Errorf("EnvUsed = %q, want %q", p.EnvUsed, tt.used)
			}
			if !slices.Equal(p.Pipelines.Keys, []string{"daily_sales", "customer_insights", "order_value_model"}) {
				t.Errorf("pipelines %v", p.Pipelines.Keys)
			}
			if !slices.Equal(p.Experiments.Keys, []string{"tune_order_model"}) {
				t.Errorf("experiments %v", p.Experiments.Keys)
			}
			if got := at(t, p.Inputs, "raw_orders", "filepath"); got != "data/orders.csv" {
				t.Errorf("raw_orders.filepath = %v, want data/orders.csv", got)
			}
			for _, k := range p.Outputs.Keys {
				key, err := ParseOutputKey(k)
				if err != nil {
					t.Errorf("output %q: %v", k, err)
					continue
				}
				if got, want := OutputPath("output", "local", p.Env, key), filepath.Join("output", p.Env, key.Schema, key.SubFolder, key.Table); got != want {
					t.Errorf("OutputPath(%q) = %q, want %q", k, got, want)
				}
			}
			kinds := map[string]int{}
			for _, name := range p.Nodes.Keys {
				node := at(t, p.Nodes, name).(*Map)
				for _, kind := range []string{"sql", "module"} {
					if _, ok := node.Get(kind); ok {
						kinds[kind]++
					}
				}
			}
			if kinds["sql"] == 0 || kinds["module"] == 0 {
				t.Errorf("node kinds %v, want both SQL and Python nodes", kinds)
			}
		})
	}
}
