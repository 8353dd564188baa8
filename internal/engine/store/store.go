// Package store keeps runs, their nodes' attempts and each run's append-only
// event log in an embedded SQLite database, and streams committed events to
// watchers.
//
// # Writes
//
// SQLite has one writer, so the store has one: every write takes a
// one-slot semaphore, runs in a BEGIN IMMEDIATE transaction on a single
// connection, and publishes the events it committed before it lets the next
// write in. That gives each run gapless sequences (1, 2, 3...) and makes
// publication order equal commit order, which is what lets watchers detect a
// missed event by its sequence alone. Reads use a separate pool of
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
// # The record's state machine
//
// Append applies each event to the run, node and attempt rows. The rules
// are strict on purpose: an event that does not fit the record is refused
// with ErrInvalidEvent (or ErrRunEnded) instead of being stored, because a
// stored event can never be taken back and a watcher may already be
// replaying it.
//
//   - Run: PENDING → [QUEUED →] RUNNING → SUCCEEDED | FAILED | CANCELLED |
//     INTERRUPTED; a QUEUED run may also end CANCELLED without starting.
//     A run cannot end while one of its nodes is RUNNING, STREAMING or
//     RETRYING, and
//     nothing may be appended after its terminal event, except through
//     PrepareRepair, which moves it back to PENDING.
//   - Node: PENDING → RUNNING (opens attempt n+1) → RETRYING (closes the
//     attempt as FAILED with the event's error) → RUNNING (attempt n+2) ...
//     → a terminal state (closes the open attempt with that state and
//     error). A RUNNING node whose streaming query has started becomes
//     STREAMING (same attempt) and ends like a RUNNING one. A PENDING or
//     RETRYING node may go straight to FAILED, CANCELLED, SKIPPED or
//     TIMED_OUT; only a RUNNING or STREAMING node may succeed.
//     Attempt numbers never restart, not even after a repair, so no attempt
//     row is ever overwritten.
//   - An event's Attempt 0 means the node's current attempt (for RUNNING,
//     the next one); the store fills the number in.
//   - Metrics go on an attempt that exists; messages need no attempt.
//   - Event times are the store's clock at commit, so record times and log
//     times always agree; Sequence, Time and RunID given by the caller are
//     replaced.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors callers tell apart with errors.Is. Each is wrapped with the detail
// (which run, node or field).
var (
	// ErrNotFound: no run has the id.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists: CreateRun got an id that is taken by another request.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrInvalidArgument: a malformed id, node name, page size, sequence or
	// parameter set. Nothing was written.
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrBadPageToken: the page token was not produced by ListRuns for the
	// same filter.
	ErrBadPageToken = errors.New("store: bad page token")
	// ErrInvalidEvent: an event does not fit the run's record (see the
	// package documentation). It points at a bug in the caller, not in the
	// user's request. Nothing of the batch was written.
	ErrInvalidEvent = errors.New("store: invalid event")
	// ErrRunEnded: the run has had its terminal event; only PrepareRepair
	// may write to it now.
	ErrRunEnded = errors.New("store: run has ended")
	// ErrNotRepairable: PrepareRepair on a run that is not FAILED,
	// CANCELLED or INTERRUPTED.
	ErrNotRepairable = errors.New("store: run cannot be repaired")
	// ErrTooManyEvents: the run holds Limits.MaxEventsPerRun events and the
	// batch had a message or metric.
	ErrTooManyEvents = errors.New("store: too many events for one run")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
)

// Limits bound what one request can make the store keep, so no request can
// grow the database without bound or store something that cannot be read
// back.
type Limits struct {
	// MaxEventsPerRun caps node messages and metrics. State changes are
	// always accepted, so a run that reached the cap can still end and be
	// repaired.
	MaxEventsPerRun int64
	// MaxTextBytes caps each free-text field (run message, node message,
	// error message and traceback). Longer text is cut on a UTF-8 boundary
	// and marked, rather than refused: the error of a failed node matters
	// more than the tail of its traceback.
	MaxTextBytes int
	// MaxParamsBytes caps a run's parameters encoded as JSON.
	MaxParamsBytes int
	// MaxNodes caps the nodes of one run.
	MaxNodes int
}

// DefaultLimits are generous for real pipelines: a streaming run reporting
// progress every ten seconds reaches MaxEventsPerRun after four months.
var DefaultLimits = Limits{
	MaxEventsPerRun: 1_000_000,
	MaxTextBytes:    64 << 10,
	MaxParamsBytes:  1 << 20,
	MaxNodes:        10_000,
}

// Option configures a Store.
type Option func(*options)

type options struct {
	limits      Limits
	now         func() time.Time
	watchBuffer int
}

// WithLimits replaces DefaultLimits. Zero fields keep their default.
func WithLimits(l Limits) Option {
	return func(o *options) {
		if l.MaxEventsPerRun > 0 {
			o.limits.MaxEventsPerRun = l.MaxEventsPerRun
		}
		if l.MaxTextBytes > 0 {
			o.limits.MaxTextBytes = l.MaxTextBytes
		}
		if l.MaxParamsBytes > 0 {
			o.limits.MaxParamsBytes = l.MaxParamsBytes
		}
		if l.MaxNodes > 0 {
			o.limits.MaxNodes = l.MaxNodes
		}
	}
}

// WithClock sets the clock that stamps create and event times, so tests
// can order runs without sleeping.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithWatchBuffer sets how many live events a watcher may fall behind
// before it stops receiving them and reads the database instead. Small
// values exercise that path in tests.
func WithWatchBuffer(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.watchBuffer = n
		}
	}
}

// Store is the durable record of runs. It is safe for concurrent use.
type Store struct {
	writer *sql.DB // one connection: SQLite has one writer
	reader *sql.DB
	opt    options

	wconn *writerConn // the writer's connection, held for the store's life

	// sem is the writer's one slot; holding it means owning wconn and the
	// right to publish.
	sem       chan struct{}
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	hub       hub
	exps      expSignals
}

// FileName is the database's name inside the directory given to Open.
const FileName = "execd.db"

// Open opens (creating if needed) dir/execd.db and brings its schema up to
// date.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	o := options{limits: DefaultLimits, now: time.Now, watchBuffer: 256}
	for _, f := range opts {
		f(&o)
	}
	// The driver splits its DSN at the first '?', so a path holding one
	// would open the wrong file.
	if dir == "" || strings.ContainsAny(dir, "?#") {
		return nil, fmt.Errorf("%w: store directory %q must be non-empty and contain no '?' or '#'", ErrInvalidArgument, dir)
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

	s := &Store{
		writer: writer,
		opt:    o,
		sem:    make(chan struct{}, 1),
		done:   make(chan struct{}),
		hub:    hub{subs: map[string]map[*subscriber]struct{}{}},
	}
	if err := s.prepare(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	conn, err := writer.Conn(ctx)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s.wconn = &writerConn{conn: conn, stmts: map[string]*sql.Stmt{}}

	reader, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		s.wconn.close()
		writer.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	s.reader = reader
	return s, nil
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
func (s *Store) prepare(ctx context.Context) error {
	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not WAL; is the directory on a network file system?", mode)
	}
	return migrate(ctx, s.writer)
}

// Close waits for the write in progress, ends every watcher with ErrClosed
// and closes the database. Later calls return ErrClosed.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		// Taking the writer slot for good waits out the write in progress
		// and keeps later ones out.
		s.sem <- struct{}{}
		err = errors.Join(s.reader.Close(), s.wconn.close(), s.writer.Close())
	})
	return err
}

// closed reports whether Close has begun.
func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
