// Package storetest is the behaviour every store of the engine must have:
// events, sequences, idempotency, repair, the queue, the journal,
// experiments and retention. A store's own tests call Run with a Factory
// that opens it, so every store passes the same suite.
package storetest

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Config is what a test asks of the store it opens.
type Config struct {
	// Now stamps create and event times; nil means the real clock.
	Now func() time.Time
	// Limits with zero fields meaning store.DefaultLimits.
	Limits store.Limits
	// WatchBuffer is how many live events a watcher may fall behind; 0
	// means the store's default.
	WatchBuffer int
}

// Option sets a field of Config.
type Option func(*Config)

// WithClock sets Config.Now.
func WithClock(now func() time.Time) Option { return func(c *Config) { c.Now = now } }

// WithLimits sets Config.Limits.
func WithLimits(l store.Limits) Option { return func(c *Config) { c.Limits = l } }

// WithWatchBuffer sets Config.WatchBuffer.
func WithWatchBuffer(n int) Option { return func(c *Config) { c.WatchBuffer = n } }

// Factory opens the store under test.
type Factory struct {
	// New opens a new, empty store and returns it with a key that names
	// its database for Reopen.
	New func(t testing.TB, c Config) (store.Store, string)
	// Reopen opens the database key names again, as a restarted execd
	// does (the store it was opened with may still be open).
	Reopen func(ctx context.Context, key string, c Config) (store.Store, error)
	// CountRows counts the rows of table (nodes, attempts, events,
	// repair_requests, run_journal) that belong to the runs.
	CountRows func(key, table string, runIDs []string) (int, error)
}

func (f Factory) open(t testing.TB, opts ...Option) (store.Store, string) {
	t.Helper()
	var c Config
	for _, o := range opts {
		o(&c)
	}
	s, key := f.New(t, c)
	t.Cleanup(func() { s.Close() })
	return s, key
}

func (f Factory) reopen(ctx context.Context, key string, opts ...Option) (store.Store, error) {
	var c Config
	for _, o := range opts {
		o(&c)
	}
	return f.Reopen(ctx, key, c)
}

// Run runs every behaviour test against the store f opens.
func Run(t *testing.T, f Factory) {
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.name, "test"), func(t *testing.T) { c.fn(t, f) })
	}
}

// SelfCheck fails when a behaviour test of this package is missing from
// the list Run runs (a test written and never run passes for ever).
func SelfCheck(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range cases {
		listed[c.name] = true
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "test") || len(fn.Type.Params.List) != 2 {
				continue
			}
			if !listed[fn.Name.Name] {
				t.Errorf("%s (%s) is not in the list of cases that Run runs", fn.Name.Name, e.Name())
			}
		}
	}
}
