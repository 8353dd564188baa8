// Package conformance gives tests the behaviour cases that tauro-exec's
// config handling must reproduce (testdata/tauro_cases.yaml). The cases are
// the project's own test data, compiled into the test binaries, so a test
// never depends on a file outside the repository.
package conformance

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// FileName is the cases file's name.
const FileName = "tauro_cases.yaml"

//go:embed testdata/tauro_cases.yaml
var cases []byte

// Bytes returns the cases file as written; an empty file is an error, so a
// test that loads nothing fails instead of passing vacuously.
func Bytes() ([]byte, error) {
	if len(cases) == 0 {
		return nil, errors.New("conformance: " + FileName + " is empty")
	}
	return cases, nil
}

// Load returns the cases file decoded into plain Go values: map[string]any,
// []any, string, int, float64, bool and nil. Section order within the file is
// not kept; the order of cases within a section is.
func Load() (map[string]any, error) {
	b, err := Bytes()
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("conformance: %s: %w", FileName, err)
	}
	if out == nil {
		return nil, fmt.Errorf("conformance: %s holds no sections", FileName)
	}
	return out, nil
}

// Section returns one section's cases as a list of mappings.
func Section(all map[string]any, name string) ([]map[string]any, error) {
	raw, ok := all[name].([]any)
	if !ok {
		return nil, fmt.Errorf("conformance: section %q missing or not a list", name)
	}
	out := make([]map[string]any, 0, len(raw))
	for i, c := range raw {
		m, ok := c.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("conformance: section %q case %d is not a mapping", name, i)
		}
		out = append(out, m)
	}
	return out, nil
}

// SharedCopy finds the steering copy of the cases, shared/conformance beside
// the repository, searched upwards from dir; "" when there is none, which is
// the normal case for a clone on its own.
func SharedCopy(dir string) string {
	for {
		p := filepath.Join(dir, "shared", "conformance", FileName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
