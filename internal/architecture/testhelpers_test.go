package architecture

import (
	"strings"
	"testing"
)

// testHelpers are the packages that exist for tests and for the commands
// `make test` runs beside them (testbroker, testpg, testmlflow): fake
// nothing, but start throwaway servers, hold fixtures or drive an execd.
// Nothing execd or its clients are built from may depend on them.
var testHelpers = []string{
	"internal/streaming/kafkatest",
	"internal/store/postgres/pgtest",
	"internal/mlops/mlflowtest",
	"internal/spark/server/sparktest",
	"internal/engine/store/storetest",
	"internal/execdtest",
	"internal/testserve",
	"internal/testcerts",
}

// products are what users build and run.
var products = []string{"./cmd/execd", "./client/...", "./examples/..."}

func TestTestHelpers_NoProductDependsOnOne(t *testing.T) {
	root := repoRoot(t)
	helper := func(pkg string) bool {
		rel, ours := strings.CutPrefix(pkg, module+"/")
		if !ours {
			return false
		}
		for _, h := range testHelpers {
			if rel == h || strings.HasPrefix(rel, h+"/") {
				return true
			}
		}
		return false
	}
	for _, line := range goList(t, root, append([]string{"-f", "{{.ImportPath}}:{{join .Deps \",\"}}"}, products...)...) {
		pkg, deps, _ := strings.Cut(line, ":")
		for _, dep := range strings.Split(deps, ",") {
			if helper(dep) {
				t.Errorf("%s depends on %s, a test helper", pkg, dep)
			}
		}
	}
}

// Every listed helper exists, so a rename cannot turn the rule off.
func TestTestHelpers_ListedOnesExist(t *testing.T) {
	root := repoRoot(t)
	for _, h := range testHelpers {
		if out := goList(t, root, "./"+h); len(out) == 0 {
			t.Errorf("%s is listed as a test helper but is not a package", h)
		}
	}
}
