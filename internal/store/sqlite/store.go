// Package sqlite is the engine's embedded store: runs, their nodes'
// attempts, each run's event log, the queue, the journal and experiments
// in one SQLite file, the default when execd is given no --store.
//
// # Writes
//
// SQLite has one writer, so the store has one: every write takes a
// one-slot semaphore, runs in a BEGIN IMMEDIATE transaction on a single
// connection, and publishes the events it committed before it lets the next
// write in. That gives each run gapless sequences (1, 2, 3...) and makes
// publication order equal commit order. Reads use a separate pool of
// connections; WAL lets them run while a write is in progress.
//
// Once a write has the semaphore it runs to its end even if the caller's
// context is cancelled: the context only bounds the wait for the writer. A
// write that could be cut between COMMIT and publication could leave a
// watcher waiting for an event that is stored but was never announced.
//
// # Durability
//
// The database runs in WAL mode with synchronous=NORMAL: a committed
// transaction survives the process being killed at any point (the kernel
// holds the WAL pages), though not necessarily a power cut in the instant
// after commit. That is the guarantee execd needs: a daemon killed mid-run
// keeps every event it reported.
//
// The rules events follow are package run's, the SQL package sqlstore's;
// package store says what every store promises.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database's name inside the directory given to Open.
const FileName = "execd.db"

// Open opens (creating if needed) dir/execd.db and brings its schema up to
// date.
func Open(ctx context.Context, dir string, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	// The driver splits its DSN at the first '?', so a path holding one
	// would open the wrong file.
	if dir == "" || strings.ContainsAny(dir, "?#") {
		return nil, fmt.Errorf("%w: store directory %q must be non-empty and contain no '?' or '#'", store.ErrInvalidArgument, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	if err := private(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	// busy_timeout covers another process (an operator's sqlite3 shell, a
	// backup) holding a lock for a moment.
	const common = "_busy_timeout=10000&_foreign_keys=1"
	writer, err := sql.Open("sqlite", path+"?"+common+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	if err := prepare(ctx, writer); err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	conn, err := writer.Conn(ctx)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	b := &backend{writer: writer, wconn: &writerConn{conn: conn, stmts: map[string]*sql.Stmt{}}, sem: make(chan struct{}, 1), done: make(chan struct{})}

	reader, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		b.wconn.close()
		writer.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	b.reader = reader
	return sqlstore.New(b, opts...), nil
}

// backend is SQLite's way of running the store's transactions.
type backend struct {
	writer *sql.DB // one connection: SQLite has one writer
	reader *sql.DB
	wconn  *writerConn // the writer's connection, held for the store's life
	// sem is the writer's one slot; holding it means owning wconn and the
	// right to publish.
	sem  chan struct{}
	done chan struct{} // closed by Close
}

// Write runs fn in a BEGIN IMMEDIATE transaction on the one writer
// connection and calls committed before it lets the next write in, so
// publication order is commit order.
func (b *backend) Write(ctx context.Context, fn func(context.Context, sqlstore.Querier) error, committed func()) error {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return store.ErrClosed
	}
	defer func() { <-b.sem }()
	if b.wconn == nil {
		return store.ErrClosed
	}
	wctx := context.WithoutCancel(ctx)
	if err := b.wconn.begin(wctx); err != nil {
		return fmt.Errorf("store: beginning a write: %w", err)
	}
	if err := fn(wctx, b.wconn); err != nil {
		if rerr := b.wconn.rollback(wctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	if err := b.wconn.commit(wctx); err != nil {
		return fmt.Errorf("store: committing: %w", err)
	}
	committed()
	return nil
}

// Read runs fn in a read-only transaction on the reader pool; WAL gives it
// one snapshot while the writer goes on.
func (b *backend) Read(ctx context.Context, fn func(sqlstore.Querier) error) error {
	tx, err := b.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: beginning a read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// RowLock is empty: the one writer holds the whole database.
func (b *backend) RowLock() string { return "" }

// Exclusive needs nothing: the one writer is exclusive already.
func (b *backend) Exclusive(context.Context, sqlstore.Querier) error { return nil }

// Close waits for the write in progress, keeps later ones out and closes
// the database.
func (b *backend) Close() error {
	close(b.done)
	b.sem <- struct{}{}
	err := errors.Join(b.reader.Close(), b.wconn.close(), b.writer.Close())
	b.wconn = nil
	return err
}

// private makes the database readable by its owner only, before SQLite
// opens it: SQLite gives the -wal and -shm files the database file's mode,
// and runs hold pipeline parameters and error messages. Files an older
// execd made are narrowed too.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// prepare checks that the database really is in WAL mode (some file systems
// refuse it, and without it readers would block the writer) and migrates it.
func prepare(ctx context.Context, writer *sql.DB) error {
	var mode string
	if err := writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not WAL; is the directory on a network file system?", mode)
	}
	return migrate(ctx, writer)
}
