package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The variables that name the test run's cluster.
const (
	EnvURL          = "TAURO_POSTGRES_URL"
	EnvPasswordFile = "TAURO_POSTGRES_PASSWORD_FILE"
	// EnvRequire set to 1 (as `make test` does) makes a missing cluster
	// a failure instead of a reason to start one.
	EnvRequire = "TAURO_REQUIRE_POSTGRES"
)

// shared is the cluster a test binary started itself, when the test run
// named none.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Main runs a test binary's tests and stops the cluster they started, if
// any. Call it from TestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stopping PostgreSQL:", err)
		}
	}
	return code
}

// base returns the test run's database and password file: the one `make
// test` names, or one started for this test binary the first time a test
// asks (a developer running go test by hand).
func base(t testing.TB) (dbURL, passwordFile string) {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u, os.Getenv(EnvPasswordFile)
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s is not set but %s=1: make test starts the cluster", EnvURL, EnvRequire)
	}
	shared.once.Do(func() { shared.c, shared.err = Start(context.Background()) })
	if shared.err != nil {
		t.Fatalf("starting a PostgreSQL cluster for the tests: %v", shared.err)
	}
	return shared.c.URL, shared.c.PasswordFile
}

// Schema makes a new, empty schema in the test run's database and returns
// a URL whose connections use it, with the password file; the schema is
// dropped when the test ends.
func Schema(t testing.TB) (dbURL, passwordFile string) {
	t.Helper()
	base, pwFile := base(t)
	name := "t_" + random()[:16]
	exec := func(sql string) error {
		ctx := context.Background()
		conn, err := connect(ctx, base, pwFile)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("creating schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Logf("dropping schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), pwFile
}

// Connect opens a connection to the database url names (a Schema's, with
// its password file), as the tests' own client, to look at tables.
func Connect(ctx context.Context, dbURL, passwordFile string) (*pgx.Conn, error) {
	return connect(ctx, dbURL, passwordFile)
}

func connect(ctx context.Context, dbURL, passwordFile string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(passwordFile); err == nil {
		cc.Password = strings.TrimSpace(string(b))
	}
	return pgx.ConnectConfig(ctx, cc)
}
