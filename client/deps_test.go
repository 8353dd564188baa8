package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/execdtest"
)

// heavy are what execd itself is built on and a service calling it must
// not pull in.
var heavy = []string{
	"github.com/apache/spark-connect-go",
	"modernc.org/sqlite",
	"github.com/jackc/pgx",
	"database/sql",
	"github.com/prometheus",
	"go.opentelemetry.io/otel/sdk",
	"github.com/tauro-exec/tauro-exec/internal",
	"github.com/tauro-exec/tauro-exec/cmd",
}

func TestImport_AServiceUsingTheClientPullsInNeitherSparkNorStoresNorTelemetry(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./examples/goservice")
	cmd.Dir = execdtest.Root()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./examples/goservice: %v", err)
	}
	deps := strings.Fields(string(out))
	seen := map[string]bool{}
	for _, dep := range deps {
		seen[dep] = true
		for _, bad := range heavy {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("examples/goservice depends on %s", dep)
			}
		}
	}
	for _, want := range []string{"github.com/tauro-exec/tauro-exec/client", "google.golang.org/grpc"} {
		if !seen[want] {
			t.Errorf("%s is not among the dependencies: the test no longer reads the right program", want)
		}
	}
	t.Logf("%d packages, the standard library's included", len(deps))
}
