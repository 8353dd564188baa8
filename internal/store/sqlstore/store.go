// Package sqlstore is the engine's store written once in SQL, over
// database/sql, for every database execd keeps its record in. A Backend
// says how a database runs transactions (SQLite's one writer, PostgreSQL's
// row locks) and spells placeholders; everything else (the rows, the
// queries, the rules of package run applied to them) is here, so the
// stores differ only where their databases do.
//
// Events of a run are applied by package run's rules in the transaction
// that stores them; once it commits, they are handed to the store's
// watchers (store.Hub), and a Backend whose database other replicas write
// to tells their watchers too.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Querier runs the store's queries, written with ? placeholders, in one
// transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Backend is what a database gives the store.
type Backend interface {
	// Write runs fn in a write transaction. When it has committed,
	// committed runs before any later write to the same rows can commit
	// (so watchers receive a run's events in order where the database
	// allows it). ctx bounds only the wait to begin: once fn runs, the
	// transaction runs to its end, because a write cut between its commit
	// and committed could leave a watcher waiting for an event that is
	// stored but was never announced.
	Write(ctx context.Context, fn func(ctx context.Context, q Querier) error, committed func()) error
	// Read runs fn in a read-only transaction that sees one snapshot.
	Read(ctx context.Context, fn func(q Querier) error) error
	// RowLock ends a SELECT of the row a write is about to change: the
	// row lock that orders concurrent writers ("" where there is only one
	// writer).
	RowLock() string
	// Exclusive takes, in a write transaction, the lock that lets one
	// transaction at a time decide which runs to admit (nothing where
	// there is only one writer).
	Exclusive(ctx context.Context, q Querier) error
	Close() error
}

// Notifier is a Backend whose database other processes write to too: it
// tells them, inside the transaction, which runs and experiments it
// appended to.
type Notifier interface {
	Notify(ctx context.Context, q Querier, runs, experiments []string) error
}

// Option configures a Store.
type Option func(*options)

type options struct {
	limits      store.Limits
	now         func() time.Time
	watchBuffer int
}

// WithLimits replaces store.DefaultLimits. Zero fields keep their default.
func WithLimits(l store.Limits) Option {
	return func(o *options) { o.limits = l.Merge() }
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

// Store is the engine's store on one database. It is safe for concurrent
// use.
type Store struct {
	b    Backend
	opt  options
	lock string // b.RowLock()

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	hub       store.Hub
	exps      expSignals
}

var _ store.Store = (*Store)(nil)

// New returns the store over b, whose schema is up to date.
func New(b Backend, opts ...Option) *Store {
	o := options{limits: store.DefaultLimits, now: time.Now, watchBuffer: 256}
	for _, f := range opts {
		f(&o)
	}
	return &Store{b: b, opt: o, lock: b.RowLock(), done: make(chan struct{})}
}

// Close ends every watcher with store.ErrClosed, waits for the write in
// progress and closes the database. Later calls return store.ErrClosed.
func (s *Store) Close() error {
	err := store.ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.b.Close()
	})
	return err
}

// Done is closed when the store closes.
func (s *Store) Done() <-chan struct{} { return s.done }

// closed reports whether Close has begun.
func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Poke tells the watchers of run id that events were committed elsewhere:
// they read them from the database.
func (s *Store) Poke(runID string) { s.hub.Poke(runID) }

// PokeAll tells every watcher, of runs and experiments, to read the
// database: for a store that may have missed announcements.
func (s *Store) PokeAll() {
	s.hub.PokeAll()
	s.signalAll()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.queryRow(ctx, `SELECT 1`, nil, &one)
}

// PokeExperiment wakes the watchers of experiment id.
func (s *Store) PokeExperiment(id string) { s.signal(id) }

// read runs fn in a read transaction, so that the several queries that
// assemble one answer see one snapshot.
func (s *Store) read(ctx context.Context, fn func(Querier) error) error {
	if s.closed() {
		return store.ErrClosed
	}
	err := s.b.Read(ctx, fn)
	if err != nil && s.closed() && !errors.Is(err, store.ErrNotFound) {
		return store.ErrClosed
	}
	return err
}

// ids runs a query whose rows are ids, in a read transaction.
func (s *Store) ids(ctx context.Context, query string, args ...any) ([]string, error) {
	var ids []string
	err := s.read(ctx, func(q Querier) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		return eachRow(rows, func() error {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
	})
	return ids, err
}

// queryRow reads one row, in a read transaction of its own.
func (s *Store) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	return s.read(ctx, func(q Querier) error { return q.QueryRowContext(ctx, query, args...).Scan(dest...) })
}
