package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
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

// Main runs a test binary's tests against the test run's cluster, or
// against one it starts and stops itself when none is named (a developer
// running go test by hand). Call it from TestMain.
func Main(m interface{ Run() int }) int {
	if os.Getenv(EnvURL) != "" {
		return m.Run()
	}
	if os.Getenv(EnvRequire) == "1" {
		fmt.Fprintf(os.Stderr, "%s is not set but %s=1: make test starts the cluster\n", EnvURL, EnvRequire)
		return 1
	}
	c, err := Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting a PostgreSQL cluster for the tests:", err)
		return 1
	}
	defer c.Stop(context.Background())
	os.Setenv(EnvURL, c.URL)
	os.Setenv(EnvPasswordFile, c.PasswordFile)
	return m.Run()
}

// Schema makes a new, empty schema in the test run's database and returns
// a URL whose connections use it, with the password file; the schema is
// dropped when the test ends.
func Schema(t testing.TB) (dbURL, passwordFile string) {
	t.Helper()
	base, pwFile := os.Getenv(EnvURL), os.Getenv(EnvPasswordFile)
	if base == "" {
		t.Fatalf("%s is not set: call pgtest.Main from TestMain", EnvURL)
	}
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

// Connect opens a connection to the database url names, as the tests'
// own client (to look at tables, or to break things).
func Connect(ctx context.Context, dbURL string) (*pgx.Conn, error) {
	return connect(ctx, dbURL, os.Getenv(EnvPasswordFile))
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
