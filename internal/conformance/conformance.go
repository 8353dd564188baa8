// Package conformance loads ../shared/conformance/tauro_cases.yaml, the
// behaviour cases that tauro-exec's config handling must reproduce, for tests.
package conformance

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// FileName is the cases file's name inside shared/conformance.
const FileName = "tauro_cases.yaml"

// Path finds the cases file: $TAURO_CONFORMANCE if set, else
// shared/conformance beside the repository (the layout of the workplace and
// of CI), searched upwards from the working directory.
func Path() (string, error) {
	if p := os.Getenv("TAURO_CONFORMANCE"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		for _, candidate := range []string{
			filepath.Join(dir, "shared", "conformance", FileName),
			filepath.Join(dir, "..", "shared", "conformance", FileName),
		} {
			if _, err := os.Stat(candidate); err == nil {
				return filepath.Clean(candidate), nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above the working directory; set TAURO_CONFORMANCE", FileName)
		}
		dir = parent
	}
}

// Load returns the cases file decoded into plain Go values: map[string]any,
// []any, string, int, float64, bool and nil. Section order within the file is
// not kept; the order of cases within a section is.
func Load() (map[string]any, error) {
	p, err := Path()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return out, nil
}

// Section returns one section's cases as a list of mappings.
func Section(all map[string]any, name string) ([]map[string]any, error) {
	raw, ok := all[name].([]any)
	if !ok {
		return nil, fmt.Errorf("section %q missing or not a list", name)
	}
	out := make([]map[string]any, 0, len(raw))
	for i, c := range raw {
		m, ok := c.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("section %q case %d is not a mapping", name, i)
		}
		out = append(out, m)
	}
	return out, nil
}
