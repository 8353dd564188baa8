package architecture

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/tauro-exec/tauro-exec"

// rule forbids the packages matching from (and what they import, directly
// or not) from depending on any package with one of the forbidden
// prefixes.
type rule struct {
	from      string
	forbidden []string
	why       string
}

var backends = []string{
	module + "/internal/spark",
	module + "/internal/pyworker",
	module + "/internal/streaming",
	module + "/internal/store",
}

// sqlDrivers are what a store is built on; the engine knows none of them.
var sqlDrivers = []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx"}

var rules = []rule{
	{
		from: "./internal/engine/...",
		forbidden: append([]string{
			module + "/gen",
			module + "/internal/service",
			module + "/cmd",
			"google.golang.org/grpc",
			"github.com/apache/spark-connect-go",
			module + "/internal/telemetry",
			"github.com/prometheus",
			"go.opentelemetry.io",
		}, append(backends, sqlDrivers...)...),
		why: "the engine core is config, plan, schedule, retry, breaker, run records and the interfaces of its store; backends (the stores among them) implement its interfaces, never the other way round; metrics and traces follow it through observe.Observer",
	},
	{
		from:      "./internal/service/...",
		forbidden: append([]string{module + "/cmd", module + "/internal/telemetry"}, backends...),
		why:       "the gRPC service calls the engine only; cmd/execd wires the backends and hands the server telemetry's options",
	},
	{
		from:      "./internal/spark/...",
		forbidden: []string{module + "/internal/service", module + "/cmd", module + "/internal/pyworker", module + "/internal/telemetry", module + "/internal/store"},
		why:       "a backend implements the engine's interfaces and knows neither the transport, nor another backend, nor telemetry (cmd/execd hands its counters over)",
	},
	{
		from:      "./internal/streaming/...",
		forbidden: []string{module + "/internal/service", module + "/cmd", module + "/internal/pyworker", module + "/internal/telemetry", module + "/internal/store"},
		why:       "a backend implements the engine's interfaces and knows neither the transport, nor another backend, nor telemetry (cmd/execd hands its counters over)",
	},
	{
		from:      "./internal/store/...",
		forbidden: []string{module + "/internal/service", module + "/cmd", module + "/gen", module + "/internal/spark", module + "/internal/pyworker", module + "/internal/streaming", module + "/internal/telemetry"},
		why:       "a store implements the engine's store interfaces and knows neither the transport, nor another backend, nor telemetry",
	},
	{
		from: "./internal/webui/...",
		forbidden: append([]string{
			module + "/gen",
			module + "/internal/engine",
			module + "/internal/service",
			module + "/cmd",
			"google.golang.org/grpc",
		}, backends...),
		why: "the web view is a bundle of static files; the browser reads runs through the public API like any other client",
	},
	{
		from:      "./internal/pyworker/...",
		forbidden: []string{module + "/internal/service", module + "/cmd", module + "/internal/spark", module + "/internal/telemetry", module + "/internal/store"},
		why:       "a backend implements the engine's interfaces and knows neither the transport, nor another backend, nor telemetry (cmd/execd hands its counters over)",
	},
	{
		from:      "./internal/telemetry/...",
		forbidden: append([]string{module + "/internal/service", module + "/cmd", module + "/gen"}, backends...),
		why:       "telemetry implements the engine's observe.Observer and reads backends only through functions cmd/execd hands it",
	},
	{
		from:      "./client/...",
		forbidden: append([]string{module + "/internal", module + "/cmd", "github.com/apache/spark-connect-go", "github.com/prometheus", "go.opentelemetry.io"}, sqlDrivers...),
		why:       "the Go client is imported by other services: it knows the generated contract (gen/) and gRPC only, not execd's insides",
	},
	{
		from:      "./examples/...",
		forbidden: []string{module + "/internal", module + "/cmd"},
		why:       "the examples call execd the way another team's service would: through the client",
	},
}

func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func goList(t *testing.T, root string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return strings.Fields(string(out))
}

func TestLayers_NoPackageImportsALayerItMustNotKnow(t *testing.T) {
	root := repoRoot(t)
	for _, r := range append(rules, sharedRules...) {
		pkgs := goList(t, root, r.from)
		if len(pkgs) == 0 {
			t.Errorf("%s matches no package; fix the rule", r.from)
		}
		for _, pkg := range pkgs {
			for _, dep := range goList(t, root, "-deps", pkg) {
				for _, bad := range r.forbidden {
					if dep == bad || strings.HasPrefix(dep, bad+"/") {
						t.Errorf("%s depends on %s: %s", pkg, dep, r.why)
					}
				}
			}
		}
	}
}

// A rule that forbids nothing real would pass forever; check that the
// forbidden prefixes name packages that exist.
func TestLayers_RulesNameRealPackages(t *testing.T) {
	root := repoRoot(t)
	all := goList(t, root, "-deps", "./...")
	for _, want := range []string{module + "/gen", module + "/internal/spark", module + "/internal/pyworker", "google.golang.org/grpc",
		module + "/internal/telemetry", "github.com/prometheus", "go.opentelemetry.io", module + "/internal/store", "modernc.org/sqlite"} {
		found := false
		for _, p := range all {
			if p == want || strings.HasPrefix(p, want+"/") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no package under %s: the layer rules are out of date", want)
		}
	}
}
