// Package pgtest starts a throwaway PostgreSQL cluster for tests: Debian's
// initdb and pg_ctl on a temp folder and a free loopback port, with a
// random password. `make test` runs one for the whole test run (command
// testpg) and hands it to every test binary as TAURO_POSTGRES_URL and
// TAURO_POSTGRES_PASSWORD_FILE; Factory gives each test its own schema in
// it. initdb refuses to run as root, so as root both run as the postgres
// user the package creates.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running test cluster.
type Cluster struct {
	dir  string
	bin  string
	as   *user.User // nil: the current user
	port int
	// URL names the test database; the password is in PasswordFile.
	URL          string
	PasswordFile string
}

// Database is the database Start creates.
const Database = "execd_test"

// Bin finds the folder of PostgreSQL's server programs: the newest
// /usr/lib/postgresql/N/bin (Debian), else initdb on the PATH.
func Bin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if len(dirs) > 0 {
		return filepath.Dir(dirs[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL's server is not installed: apt-get install postgresql (make test installs it)")
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// Start initialises a cluster in a new temp folder and starts it. The
// folder is the system's temp folder's, which the postgres user can reach.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "execd-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if c.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("initdb refuses to run as root and there is no postgres user to run it as: %w", err)
		}
	}
	for _, d := range []string{dir, c.sockets()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if err := c.own(d); err != nil {
			return nil, err
		}
	}
	password := random()
	c.PasswordFile = filepath.Join(dir, "password")
	if err := os.WriteFile(c.PasswordFile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := c.own(c.PasswordFile); err != nil {
		return nil, err
	}
	if err := c.run(ctx, "initdb", "-D", c.data(), "-U", "tauro", "-E", "UTF8", "--no-sync",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+c.PasswordFile); err != nil {
		return nil, err
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	// fsync off: a test cluster is thrown away, and two cores are better
	// spent on the tests.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
		c.port, c.sockets())
	if err := c.run(ctx, "pg_ctl", "-D", c.data(), "-l", c.LogPath(), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, c.LogPath())
	}
	c.URL = fmt.Sprintf("postgres://tauro@127.0.0.1:%d/%s?sslmode=disable", c.port, Database)
	if err := c.createDatabase(ctx, password); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	return c, nil
}

// LogPath is the server's log.
func (c *Cluster) LogPath() string { return filepath.Join(c.dir, "postgres.log") }

func (c *Cluster) data() string    { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockets() string { return filepath.Join(c.dir, "sock") }

func (c *Cluster) createDatabase(ctx context.Context, password string) error {
	cc, err := pgx.ParseConfig(fmt.Sprintf("postgres://tauro@127.0.0.1:%d/postgres?sslmode=disable", c.port))
	if err != nil {
		return err
	}
	cc.Password = password
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+Database)
	return err
}

// Stop stops the server (fast: open connections are ended) and removes
// its folder.
func (c *Cluster) Stop(ctx context.Context) error {
	err := c.run(ctx, "pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
	if err == nil {
		err = os.RemoveAll(c.dir)
	}
	return err
}

// run runs one of PostgreSQL's programs, as the postgres user when this
// process is root.
func (c *Cluster) run(ctx context.Context, program string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, program), args...)
	if c.as != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.as.Username, "--", filepath.Join(c.bin, program)}, args...)...)
	}
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", program, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// own hands path to the user the server runs as.
func (c *Cluster) own(path string) error {
	if c.as == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.as.Uid)
	gid, _ := strconv.Atoi(c.as.Gid)
	return os.Chown(path, uid, gid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func random() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
