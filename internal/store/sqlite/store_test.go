package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/engine/store/storetest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

// factory opens SQLite stores for the behaviour suite: each test its own
// directory.
var factory = storetest.Factory{
	New: func(t testing.TB, c storetest.Config) (store.Store, string) {
		t.Helper()
		dir := t.TempDir()
		s, err := sqlite.Open(context.Background(), dir, options(c)...)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s, dir
	},
	Reopen: func(ctx context.Context, dir string, c storetest.Config) (store.Store, error) {
		return sqlite.Open(ctx, dir, options(c)...)
	},
	CountRows: func(dir, table string, runIDs []string) (int, error) {
		db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName)+"?mode=ro")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		args := make([]any, len(runIDs))
		for i, id := range runIDs {
			args[i] = id
		}
		var n int
		err = db.QueryRow(`SELECT count(*) FROM `+table+` WHERE run_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(runIDs)), ",")+`)`, args...).Scan(&n)
		return n, err
	},
}

func options(c storetest.Config) []sqlstore.Option {
	var opts []sqlstore.Option
	if c.Now != nil {
		opts = append(opts, sqlstore.WithClock(c.Now))
	}
	if c.WatchBuffer > 0 {
		opts = append(opts, sqlstore.WithWatchBuffer(c.WatchBuffer))
	}
	return append(opts, sqlstore.WithLimits(c.Limits))
}

func TestStore_Behaviour(t *testing.T) { storetest.Run(t, factory) }

// open opens a store in a fresh directory and closes it when the test ends.
func open(t testing.TB, opts ...sqlstore.Option) (*sqlstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}
