// Package postgres is the engine's store on PostgreSQL, for several execd
// replicas sharing one record: the SQL is package sqlstore's, run here in
// transactions that lock the run (or experiment) row they change, so
// replicas writing at once still give each run gapless sequences. Every
// write names the runs it appended to in a NOTIFY; each replica LISTENs
// and wakes its watchers, which read the events from the table (the
// notification carries ids only: the event table is the truth). A
// listener that lost its connection wakes every watcher once it is back,
// so nothing committed meanwhile is missed.
//
// The schema is brought up to date at Open by versioned migrations
// (migrations/), one replica at a time under an advisory lock.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config says which database to use and how to reach it.
type Config struct {
	// URL names the database: postgres://user@host:port/dbname?sslmode=...
	// It may not hold the password, which would show in process lists and
	// logs: that comes from PasswordFile or the PGPASSWORD variable.
	URL string
	// PasswordFile holds the password (its first line).
	PasswordFile string
	// Replica names this process in its notifications, so it does not
	// wake its own watchers twice. Empty means a random name.
	Replica string
	// Logger reports the listener's connection losses; nil means
	// slog.Default.
	Logger *slog.Logger
}

// IsURL reports whether s names a PostgreSQL database.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// ConnConfig checks cfg and returns the connection settings it gives,
// with the password in place. Errors never hold the password.
func ConnConfig(cfg Config) (*pgx.ConnConfig, error) {
	if !IsURL(cfg.URL) {
		return nil, fmt.Errorf("%w: the store URL must start with postgres:// (postgres://USER@HOST:PORT/DBNAME)", store.ErrInvalidArgument)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: the store URL cannot be parsed; check its form (postgres://USER@HOST:PORT/DBNAME)", store.ErrInvalidArgument)
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") {
		return nil, fmt.Errorf("%w: the store URL holds a password; give it in --store-password-file or the PGPASSWORD variable instead, so it shows in no process list or log", store.ErrInvalidArgument)
	}
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: the store URL: %v", store.ErrInvalidArgument, redact(err, ""))
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%w: reading the store's password file: %v", store.ErrInvalidArgument, err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		cc.Password = strings.TrimRight(pw, "\r")
	}
	return cc, nil
}

// redact takes the password out of an error's text, should a driver ever
// put it there.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "****"))
}

// Open connects to the database, migrates it and returns the store.
func Open(ctx context.Context, cfg Config, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	cc, err := ConnConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Replica == "" {
		cfg.Replica = randomName()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connecting to PostgreSQL: %w", redact(err, cc.Password))
	}
	if err := migrate(pctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrating the PostgreSQL schema: %w", redact(err, cc.Password))
	}
	ch, err := channelOf(pctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", redact(err, cc.Password))
	}
	b := &backend{db: db, conn: cc, replica: cfg.Replica, channel: ch, log: cfg.Logger, stop: make(chan struct{})}
	s := sqlstore.New(b, opts...)
	b.wg.Add(1)
	first := make(chan struct{})
	go b.listen(s, first)
	// Watchers come once Open returns: the listener's first LISTEN, and the
	// wake-up of every watcher that follows it, come before, so that a
	// watcher is woken only by what is committed after it asked.
	select {
	case <-first:
	case <-pctx.Done():
	}
	return s, nil
}

// migrate applies the migrations the database has not seen, holding an
// advisory lock, so replicas starting together migrate one at a time.
func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 120))
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithTableName("execd_schema_version"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	// A fresh database has no version table yet (an error here); Up
	// makes it.
	if current, err := p.GetDBVersion(ctx); err == nil && current > latest(p) {
		return fmt.Errorf("the database has schema version %d but this execd knows only up to %d; use a newer execd", current, latest(p))
	}
	_, err = p.Up(ctx)
	return err
}

func latest(p *goose.Provider) int64 {
	var v int64
	for _, s := range p.ListSources() {
		v = max(v, s.Version)
	}
	return v
}

// backend runs the store's transactions on PostgreSQL.
type backend struct {
	db      *sql.DB
	conn    *pgx.ConnConfig
	replica string
	channel string // see channelOf
	log     *slog.Logger

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// retries bounds how often a write the database aborted to break a
// deadlock or a serialization conflict is run again.
const retries = 5

// Write runs fn in a READ COMMITTED transaction; the rows it changes are
// locked by the SELECT ... FOR UPDATE that reads them first. A transaction
// the database aborted as a deadlock victim is run again.
func (b *backend) Write(ctx context.Context, fn func(context.Context, sqlstore.Querier) error, committed func()) error {
	var err error
	for try := 0; try < retries; try++ {
		var tx *sql.Tx
		if tx, err = b.db.BeginTx(ctx, nil); err != nil {
			return fmt.Errorf("store: beginning a write: %w", redact(err, b.conn.Password))
		}
		wctx := context.WithoutCancel(ctx)
		if err = fn(wctx, querier{tx}); err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
		if err == nil {
			committed()
			return nil
		}
		if !retryable(err) {
			return err
		}
	}
	return err
}

// retryable reports a deadlock or serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Read runs fn in a REPEATABLE READ, read-only transaction: one snapshot
// for all its queries.
func (b *backend) Read(ctx context.Context, fn func(sqlstore.Querier) error) error {
	tx, err := b.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("store: beginning a read: %w", redact(err, b.conn.Password))
	}
	defer tx.Rollback()
	return fn(querier{tx})
}

// RowLock locks the row a write reads before changing it.
func (b *backend) RowLock() string { return " FOR UPDATE" }

// admissionLock is the advisory lock admissions take, held until their
// transaction ends.
const admissionLock = 0x7461757265786563 // "tauroexec"

// Exclusive takes the admission lock.
func (b *backend) Exclusive(ctx context.Context, q sqlstore.Querier) error {
	_, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(admissionLock))
	return err
}

// Close stops the listener and closes the pool.
func (b *backend) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	b.wg.Wait()
	return b.db.Close()
}

// querier runs the store's ?-placeholder queries with PostgreSQL's $n.
type querier struct{ tx *sql.Tx }

func (q querier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.tx.ExecContext(ctx, rebind(query), args...)
}

func (q querier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, rebind(query), args...)
}

func (q querier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return q.tx.QueryRowContext(ctx, rebind(query), args...)
}

var rebound sync.Map // query -> its $n form

// rebind numbers the ? placeholders of query ($1, $2...). The store's
// queries hold no ? inside a literal.
func rebind(query string) string {
	if v, ok := rebound.Load(query); ok {
		return v.(string)
	}
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&sb, "$%d", n)
			continue
		}
		sb.WriteRune(r)
	}
	out := sb.String()
	rebound.Store(query, out)
	return out
}
