package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// fuzzTargets are the files of validProject that FuzzLoad replaces.
var fuzzTargets = []string{
	"settings_yml.json",
	"config/global_settings.yaml",
	"config/pipelines.yaml",
	"config/nodes.yaml",
	"config/input.yaml",
	"config/output.yaml",
}

// fuzzSeeds are files worth starting from: valid ones, and ones that have
// hurt YAML loaders before (aliases, merges, depth, odd scalars).
var fuzzSeeds = []string{
	"",
	"a: ${b}\nb: ${a}\n",
	"input_path: /in\nout: ${input_path}/${HOME}/${missing}\nn: 1\nf: 1.5\nt: true\n",
	"base: &b {format: csv}\nsrc:\n  <<: *b\n  filepath: x\n",
	"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n",
	"a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
	"? [a, b]\n: c\n",
	"a: 1\na: 2\n",
	"- a\n- b\n",
	"a: !!binary aGVsbG8=\nb: 0x1F\nc: 1e400\nd: 99999999999999999999\ne: .nan\n",
	"a:\n  b: 1\n c: 2\n",
	"{\"base_path\": \"..\", \"env_config\": {\"base\": {\"nodes_config_path\": \"/etc/passwd\"}}}",
	"{\"base_path\": \".\", \"env_config\": {\"dev\": 5, \"base\": {\"nodes_config_path\": [\"x\"]}}}",
	"gold.sales.daily: {format: parquet, partition: [date], options: {path: '${output_path}'}}\n",
	"\xff\xfe\x00a: b\n",
	"a: \"${${${${}}}}\"\n",
}

func FuzzLoad(f *testing.F) {
	for i := range fuzzTargets {
		f.Add([]byte(validProject()[fuzzTargets[i]]), uint8(i), "dev")
	}
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(i), "Sandbox_X")
	}
	// One project folder per worker process, rewritten for every input: a
	// worker runs inputs one at a time, and a fresh folder per input would
	// make file-system setup, not Load, the cost being measured.
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, target uint8, env string) {
		files := validProject()
		files[fuzzTargets[int(target)%len(fuzzTargets)]] = string(data)
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, err := load(dir, env, lookupFrom(map[string]string{"HOME": "/home/x"}))
		if err != nil {
			if _, ok := problem.From(err); !ok {
				t.Fatalf("error is not a problem list: %v", err)
			}
			return
		}
		for _, m := range []*Map{p.Global, p.Pipelines, p.Nodes, p.Inputs, p.Outputs} {
			if m == nil {
				t.Fatalf("loaded project has a nil tree: %+v", p)
			}
		}
		if strings.ContainsAny(p.Env, "/\\.") {
			t.Fatalf("env %q could climb out of an output path", p.Env)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, s := range validProject() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		if err := checkTree(v, 0); err != nil {
			t.Fatal(err)
		}
	})
}

// checkTree holds Parse to its contract: only the documented value types,
// Keys and Values in step, and depth bounded.
func checkTree(v any, depth int) error {
	if depth > maxDepth+1 {
		return fmt.Errorf("tree deeper than %d", maxDepth)
	}
	switch v := v.(type) {
	case nil, bool, int64, float64, string:
		return nil
	case []any:
		for _, x := range v {
			if err := checkTree(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	case *Map:
		if len(v.Keys) != len(v.Values) {
			return fmt.Errorf("map has %d keys but %d values", len(v.Keys), len(v.Values))
		}
		for _, k := range v.Keys {
			x, ok := v.Values[k]
			if !ok {
				return fmt.Errorf("key %q has no value", k)
			}
			if err := checkTree(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unexpected value type %T", v)
}
