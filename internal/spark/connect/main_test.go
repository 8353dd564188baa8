package connect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

func TestMain(m *testing.M) { os.Exit(sparktest.Main(m)) }

// connect opens a session on the test server, closed with the test.
func connect(t *testing.T, conf map[string]string) *Session {
	t.Helper()
	remote := sparktest.Remote(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Connect(ctx, remote, Config{RunID: strings.ReplaceAll(t.Name(), "/", "_"), Conf: conf})
	if err != nil {
		t.Fatalf("Connect(%s): %v", remote, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rows runs query and returns its rows as strings, for comparisons.
func rows(t *testing.T, s *Session, query string) [][]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	df, err := s.spark.Sql(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	rs, err := df.Collect(ctx)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out := make([][]any, len(rs))
	for i, r := range rs {
		out[i] = r.Values()
	}
	return out
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func salesInput(t *testing.T) InputSpec {
	return InputSpec{
		Key:     "sales",
		Format:  "csv",
		Path:    testdata(t, "sales.csv"),
		Options: map[string]string{"header": "true"},
		Schema:  "order_id INT, order_date DATE, region STRING, product STRING, quantity INT, unit_price DOUBLE",
	}
}
