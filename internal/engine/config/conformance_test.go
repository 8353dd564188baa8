package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/conformance"
)

// cases returns one section of the shared conformance file.
func cases(t *testing.T, section string) []map[string]any {
	t.Helper()
	all, err := conformance.Load()
	if err != nil {
		t.Fatalf("loading conformance cases: %v", err)
	}
	cs, err := conformance.Section(all, section)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 {
		t.Fatalf("section %q has no cases", section)
	}
	return cs
}

// caseName is a readable subtest name for a case.
func caseName(c map[string]any) string {
	keys := slices.Sorted(maps.Keys(c))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, c[k]))
	}
	return strings.Join(parts, ",")
}

// checkOutcome compares a call's result with a case's `out` or `error`.
func checkOutcome(t *testing.T, c map[string]any, got any, err error, want func() any) {
	t.Helper()
	if wantErr, ok := c["error"].(string); ok {
		if err == nil {
			t.Fatalf("got %v, want an error containing %q", got, wantErr)
		}
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(wantErr)) {
			t.Fatalf("error %q does not contain %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if w := want(); fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("got %v, want %v", got, w)
	}
}

// toMap turns a plain decoded mapping into a *Map (sorted keys: the cases
// file does not keep mapping order).
func toMap(v any) *Map {
	m := NewMap()
	src, _ := v.(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(src)) {
		val := src[k]
		if sub, ok := val.(map[string]any); ok {
			m.Set(k, toMap(sub))
		} else {
			m.Set(k, val)
		}
	}
	return m
}

func toStrings(v any) map[string]string {
	out := map[string]string{}
	for k, val := range v.(map[string]any) {
		out[k] = fmt.Sprint(val)
	}
	return out
}

func TestConformance_EnvironmentNamesNormalise(t *testing.T) {
	for _, c := range cases(t, "environment_names") {
		t.Run(caseName(c), func(t *testing.T) {
			got, err := NormalizeEnv(c["in"].(string))
			checkOutcome(t, c, got, err, func() any { return c["out"] })
		})
	}
}

func TestConformance_EnvironmentMergeOverridesBaseAndFallsBack(t *testing.T) {
	for _, c := range cases(t, "environment_merge") {
		t.Run(caseName(c), func(t *testing.T) {
			envConfig := NewMap()
			requested := "dev"
			if avail, ok := c["available"].([]any); ok {
				// Only which envs exist matters here; give each a distinct path.
				requested = c["requested"].(string)
				for _, name := range avail {
					entry := NewMap()
					entry.Set("nodes_config_path", fmt.Sprintf("config/%v/nodes.yaml", name))
					envConfig.Set(name.(string), entry)
				}
			} else {
				envConfig.Set("base", toMap(c["base"]))
				envConfig.Set(requested, toMap(c["env"]))
			}
			paths, used, err := MergeEnvPaths(envConfig, requested)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if wantUsed, ok := c["uses"].(string); ok {
				if used != wantUsed {
					t.Fatalf("used env %q, want %q", used, wantUsed)
				}
				if want := "config/" + wantUsed + "/nodes.yaml"; paths["nodes_config_path"] != want {
					t.Fatalf("nodes_config_path = %q, want %q", paths["nodes_config_path"], want)
				}
			}
			if out, ok := c["out"]; ok {
				if want := toStrings(out); !maps.Equal(paths, want) {
					t.Fatalf("paths = %v, want %v", paths, want)
				}
			}
		})
	}
}

func TestConformance_InterpolationPrefersEnvThenGlobalSettings(t *testing.T) {
	for _, c := range cases(t, "interpolation") {
		t.Run(caseName(c), func(t *testing.T) {
			env := map[string]string{}
			if e, ok := c["env"]; ok {
				env = toStrings(e)
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			got, err := Interpolate(c["in"].(string), lookup, toStrings(c["vars"]))
			checkOutcome(t, c, got, err, func() any { return c["out"] })
		})
	}
}

func TestConformance_OutputKeysHaveThreeSafeParts(t *testing.T) {
	for _, c := range cases(t, "output_keys") {
		t.Run(caseName(c), func(t *testing.T) {
			got, err := ParseOutputKey(c["in"].(string))
			checkOutcome(t, c, got, err, func() any {
				out := c["out"].(map[string]any)
				return OutputKey{Schema: out["schema"].(string), SubFolder: out["sub_folder"].(string), Table: out["table_name"].(string)}
			})
		})
	}
}

func TestConformance_OutputPathsAddEnvOnlyInLocalAndDistributedModes(t *testing.T) {
	for _, c := range cases(t, "output_paths") {
		t.Run(caseName(c), func(t *testing.T) {
			key, err := ParseOutputKey(c["key"].(string))
			if err != nil {
				t.Fatal(err)
			}
			got := OutputPath(c["output_path"].(string), c["mode"].(string), c["env"].(string), key)
			if got != c["out"] {
				t.Fatalf("OutputPath = %q, want %q", got, c["out"])
			}
		})
	}
}
