package architecture

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// oneHome is a thing written in one file only, and a telltale of the code
// that writes it: a second file matching the telltale is a second copy,
// which drifts from the first (two copies of the search dimension
// conversion dropped a bad category the third reported).
type oneHome struct {
	what     string
	telltale *regexp.Regexp
	home     string
}

var oneHomes = []oneHome{
	{"a search dimension in the contract's terms, both ways",
		regexp.MustCompile(`execv1\.(DimensionKind|Prior)[_(]|SearchDimension\{`), "internal/contract/contract.go"},
	{"configuration values as plain values",
		regexp.MustCompile(`map\[string\]any, (len\(\w+\.Keys\)|\w+\.Len\(\))\)`), "internal/engine/config/plain.go"},
	{"a run's date written as YYYY-MM-DD",
		regexp.MustCompile(`Format\(time\.DateOnly\)|"2006-01-02"`), "internal/engine/plan/dates.go"},
	{"the input and output specs a backend reads",
		regexp.MustCompile(`type (Input|Output)Spec struct`), "internal/engine/plan/spec.go"},
	{"the streaming formats execd reads and writes",
		regexp.MustCompile(`"(delta_stream|file_stream|kinesis|socket|rate|console|memory)"`), "internal/engine/plan/streamformats.go"},
}

func TestOneHome_EachConversionIsWrittenOnce(t *testing.T) {
	root := repoRoot(t)
	found := map[string][]string{}
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			rel = filepath.ToSlash(rel)
			for _, h := range oneHomes {
				if h.telltale.Match(src) {
					found[h.what] = append(found[h.what], rel)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range oneHomes {
		if files := found[h.what]; !slices.Equal(files, []string{h.home}) {
			t.Errorf("%s: written in %v, want only in %s (use it from there)", h.what, files, h.home)
		}
	}
}
