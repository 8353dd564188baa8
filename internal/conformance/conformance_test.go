package conformance

import (
	"bytes"
	"os"
	"testing"
)

func TestCases_LoadWithEverySectionTheTestsRead(t *testing.T) {
	all, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dependency_normalization", "pipeline_node_names", "ordering", "required_params",
		"pipeline_config", "environment_names", "environment_merge", "interpolation", "output_keys", "output_paths",
		"streaming_trigger_intervals", "hybrid_formats"} {
		if _, ok := all[name]; !ok {
			t.Errorf("section %q is missing from %s", name, FileName)
		}
	}
}

func TestSection_NamesWhatIsWrongInsteadOfPanicking(t *testing.T) {
	if _, err := Section(map[string]any{}, "ordering"); err == nil {
		t.Error("a missing section gave no error")
	}
	if _, err := Section(map[string]any{"ordering": []any{"not a mapping"}}, "ordering"); err == nil {
		t.Error("a case that is not a mapping gave no error")
	}
	if _, err := Section(nil, "ordering"); err == nil {
		t.Error("no cases at all gave no error")
	}
}

// The steering copy may grow; when it sits beside the repository (the
// workplace's layout) the project's copy must be current. A clone on its
// own has no such copy and skips this.
func TestCases_MatchTheSharedCopyWhenPresent(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	p := SharedCopy(wd)
	if p == "" {
		t.Skip("no shared/conformance beside the repository")
	}
	shared, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, cases) {
		t.Fatalf("internal/conformance/testdata/%s differs from %s; copy the shared cases in", FileName, p)
	}
}
