package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/engine/store/storetest"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// passwordFile is the test database's, for Reopen and CountRows, which
// get no testing.TB.
var passwordFile string

// factory gives each test of the behaviour suite its own schema.
var factory = storetest.Factory{
	New: func(t testing.TB, c storetest.Config) (store.Store, string) {
		t.Helper()
		url, pw := pgtest.Schema(t)
		passwordFile = pw
		s, err := postgres.Open(context.Background(), postgres.Config{URL: url, PasswordFile: pw}, options(c)...)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s, url
	},
	Reopen: func(ctx context.Context, url string, c storetest.Config) (store.Store, error) {
		return postgres.Open(ctx, postgres.Config{URL: url, PasswordFile: passwordFile}, options(c)...)
	},
	CountRows: func(url, table string, runIDs []string) (int, error) {
		ctx := context.Background()
		conn, err := pgtest.Connect(ctx, url, passwordFile)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE run_id = ANY($1)`, runIDs).Scan(&n)
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
