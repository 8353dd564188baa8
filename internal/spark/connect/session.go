// Package connect runs the Spark side of a pipeline run through Spark
// Connect: it registers a run's inputs as views, runs SQL nodes with the
// run's dates bound as named parameters, hands each node's result to its
// dependents as a view and writes outputs.
//
// # Views
//
// A Session is one Spark Connect session, one per run. Names that node SQL
// refers to are session temporary views: every input under its key, every
// SQL node's result under the node's name and under each of its output keys.
// Each SQL node's result also lives in a global temporary view,
// global_temp.tauro_<run>_<node> (see Session.ResultView), because global
// temporary views are visible to every session of the server: that is how a
// Python worker, which has its own session, reads a node's result and how
// its result comes back (Session.Alias). No rows cross to Go. Close drops
// the run's global views and releases the session, which drops the rest.
//
// # Errors
//
// Every error from a Spark call is an *Error, which says through Retryable
// whether another attempt may succeed (analysis and parse errors: no; a lost
// connection: yes). An operation whose context ends is interrupted on the
// server and returns the context's error.
package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/spark-connect-go/spark/sql"
	"google.golang.org/grpc"

	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// Config configures a Session.
type Config struct {
	// RunID names the run's global views; empty picks a random one.
	RunID string
	// Conf is Spark SQL configuration set on the session, such as
	// spark.sql.shuffle.partitions. Keys Spark does not let a session
	// change (spark.executor.memory and other cluster settings) are
	// skipped and listed by Session.Skipped.
	Conf   map[string]string
	Logger *slog.Logger
	// Journal, when set, makes the steps that must run once (output
	// writes) reattachable and records them, so that another process can
	// take them up with the session (Reopen). See reattach.go.
	Journal Journal
}

// Session is one Spark Connect session. Its methods are safe for concurrent
// use: the nodes of a run share it.
type Session struct {
	remote  remote
	log     *slog.Logger
	journal Journal
	conn    *grpc.ClientConn
	spark   sql.SparkSession
	prefix  string

	mu        sync.Mutex
	sid       string
	serverSID string
	adopted   bool // taken up from another process (Reopen)
	lost      bool
	closing   bool
	views     map[string]bool // names node SQL may read, lower-cased
	inputs    map[string]bool // the views among them that are inputs
	globals   []string        // global views to drop at Close
	skipped   []string
	watchers  sync.WaitGroup
	closed    chan struct{}
	// releasing is closed when Close begins: it releases the session's
	// operations itself, so nothing waits for one of them to end.
	releasing chan struct{}
	closeOnce sync.Once
}

// ErrSessionLost is returned, wrapped in a retryable *Error, once the server
// the session lived on has restarted: its views are gone with it, so the
// run must open a new session and register its inputs again.
var ErrSessionLost = errors.New("the Spark Connect session is gone (the server restarted)")

// ErrClosed is returned by a Session after Close.
var ErrClosed = errors.New("the Spark session is closed")

// Connect opens a session on the Spark Connect server at remote
// (sc://host:port[/;token=...;key=value]) and applies cfg.Conf to it. A
// build whose compiled-in protocol lacks a field the session reads by name
// (see reflectedFields) is refused with a permanent error.
func Connect(ctx context.Context, remoteURL string, cfg Config) (*Session, error) {
	r, err := parseRemote(remoteURL)
	if err != nil {
		return nil, &Error{Op: "connect", Message: err.Error(), Err: err}
	}
	if err := checkProtocol(); err != nil {
		return nil, &Error{Op: "connect", Message: err.Error(), Err: err}
	}
	s, err := newSession(r, cfg)
	if err != nil {
		return nil, err
	}
	// The session's id is chosen here: its first request, which sets its
	// configuration, opens it on the server under that id, and
	// spark-connect-go's requests are sent under it too (rewrite).
	s.sid = newUUID()
	if err := s.build(ctx, "connect to "+sparkurl.Redact(remoteURL)); err != nil {
		return nil, err
	}
	conf := maps.Clone(sessionDefaults)
	maps.Copy(conf, cfg.Conf)
	if err := s.configure(ctx, "connect to "+sparkurl.Redact(remoteURL), conf); err != nil {
		_ = s.conn.Close()
		return nil, err
	}
	return s, nil
}

// configure sets conf on the session in one request. A key Spark does not
// let a session change (a cluster setting) fails that request; the keys
// are then set one at a time, and those refused are skipped (Skipped).
func (s *Session) configure(ctx context.Context, op string, conf map[string]string) error {
	err := s.unary(ctx, configSetRequest(s.sessionID(), s.remote.user, conf))
	if err == nil {
		return nil
	}
	e := s.fail(ctx, op, err)
	var se *Error
	if !errors.As(e, &se) || !unmodifiable(se) {
		return e
	}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		err := s.unary(ctx, configSetRequest(s.sessionID(), s.remote.user, map[string]string{k: conf[k]}))
		if err == nil {
			continue
		}
		e := s.fail(ctx, "set "+k, err)
		if errors.As(e, &se) && unmodifiable(se) {
			s.skipped = append(s.skipped, k)
			s.log.Warn("Spark setting cannot be changed per session; skipped", "key", k, "reason", se.Message)
			continue
		}
		return e
	}
	return nil
}

// newSession dials r for a session of cfg's run.
func newSession(r remote, cfg Config) (*Session, error) {
	runID := cfg.RunID
	if runID == "" {
		runID = strings.ReplaceAll(newUUID(), "-", "")[:12]
	}
	s := &Session{
		remote:    r,
		log:       cfg.Logger,
		journal:   cfg.Journal,
		prefix:    "tauro_" + sanitize(runID),
		views:     map[string]bool{},
		inputs:    map[string]bool{},
		closed:    make(chan struct{}),
		releasing: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.conn, err = s.dial(r); err != nil {
		return nil, &Error{Op: "connect", Message: err.Error(), Err: err, retryable: true}
	}
	return s, nil
}

// build makes the spark-connect-go client on the session's connection and
// sends the first request, which creates the server-side session (or, for
// a session taken up, checks that the server still holds it) and tells the
// interceptors its ids.
func (s *Session) build(ctx context.Context, op string) error {
	var err error
	s.spark, err = sql.NewSessionBuilder().WithChannelBuilder(channel{conn: s.conn, user: s.remote.user}).Build(ctx)
	if err != nil {
		_ = s.conn.Close()
		return s.fail(ctx, op, err)
	}
	return nil
}

// probe asks the server for a setting: it fails when the server, or the
// session on it, is not there.
func (s *Session) probe(ctx context.Context, op string) error {
	if _, err := s.spark.Config().GetWithDefault(ctx, "spark.app.name", ""); err != nil {
		_ = s.conn.Close()
		return s.fail(ctx, op, err)
	}
	return nil
}

// sessionDefaults are set on every session; Config.Conf overrides them.
var sessionDefaults = map[string]string{
	// Spark 4.1+ binds :name and ? markers in its SQL parser, and a parser
	// that an extension injects (Delta Lake's, Iceberg's) drops them
	// (delta-io/delta#7640): every parameterized node would fail with
	// UNBOUND_SQL_PARAMETER. The analyzer's binding, as in Spark 4.0, works
	// with any parser and covers markers wherever a constant may stand.
	"spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
}

// unmodifiable reports a configuration key that a session may not set.
func unmodifiable(e *Error) bool {
	return strings.HasPrefix(e.Class, "CANNOT_MODIFY_CONFIG") || strings.HasPrefix(e.Class, "CANNOT_MODIFY_STATIC_CONFIG") ||
		strings.Contains(e.Message, "CANNOT_MODIFY")
}

// Skipped lists the Conf keys Spark refused to set per session.
func (s *Session) Skipped() []string { return slices.Clone(s.skipped) }

// ID is the session id the server knows this session by.
func (s *Session) ID() string { return s.sessionID() }

// ResultView is the global view that holds node's result once RunSQL has
// run it: global_temp.tauro_<run>_<node>.
func (s *Session) ResultView(node string) string {
	return "global_temp." + quote(s.prefix+"_"+sanitize(node))
}

// Close drops the run's global views, interrupts whatever the session still
// runs, releases the session on the server and closes the connection. It is
// safe to call more than once.
func (s *Session) Close(ctx context.Context) error {
	var errs []error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		close(s.releasing)
		globals := slices.Clone(s.globals)
		lost := s.lost
		s.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if !lost {
			if err := s.interrupt(ctx, ""); err != nil {
				errs = append(errs, fmt.Errorf("interrupt: %w", err))
			}
			errs = append(errs, s.dropGlobals(ctx, globals)...)
			if err := s.releaseSession(ctx); err != nil {
				errs = append(errs, fmt.Errorf("release session: %w", err))
			}
		}
		close(s.closed)
		s.watchers.Wait()
		if err := s.conn.Close(); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

// dropConcurrency is how many global views Close drops at once: a run of
// thousands of nodes leaves thousands, one request each.
const dropConcurrency = 8

// dropGlobals drops views, several at a time, until ctx ends; what is left
// then is reported in one error (the server drops global views only when
// it stops).
func (s *Session) dropGlobals(ctx context.Context, views []string) []error {
	var (
		mu   sync.Mutex
		errs []error
		left int
		wg   sync.WaitGroup
	)
	next := make(chan string)
	for range min(dropConcurrency, len(views)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range next {
				if _, err := s.spark.Sql(ctx, "DROP VIEW IF EXISTS "+v); err != nil && ctx.Err() == nil {
					mu.Lock()
					errs = append(errs, s.fail(ctx, "drop view "+v, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i, v := range views {
		if ctx.Err() != nil {
			left = len(views) - i
			break
		}
		next <- v
	}
	close(next)
	wg.Wait()
	if left > 0 || ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("closing the session: %d of %d global views not dropped in time: %w", max(left, 1), len(views), ctx.Err()))
	}
	return errs
}

// track registers a goroutine that Close waits for; false once the
// session is closing.
func (s *Session) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.watchers.Add(1)
	return true
}

// Owner is the session's id on the server and the user it was opened as:
// what ReleaseAbandoned needs to end it from another process.
func (s *Session) Owner() (sessionID, user string) {
	return s.sessionID(), s.remote.user
}

func (s *Session) sessionID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sid
}

func (s *Session) noteSession(id string) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sid == "" {
		s.sid = id
	}
}

// noteServerSession notices a restarted server: the server-side session id
// it reports changes, though the client's session id stays the same.
func (s *Session) noteServerSession(id string) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.serverSID == "":
		s.serverSID = id
	case s.serverSID != id && !s.lost:
		s.lost = true
		s.log.Warn("Spark Connect server-side session changed; the run's views are gone", "session", s.sid)
	}
}

// check returns an error when the session can no longer be used.
func (s *Session) check(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return &Error{Op: op, Message: ErrClosed.Error(), Err: ErrClosed}
	case s.lost:
		return &Error{Op: op, Message: ErrSessionLost.Error(), Err: ErrSessionLost, retryable: true}
	}
	return nil
}

func (s *Session) addView(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.views[strings.ToLower(name)] = true
}

func (s *Session) addInput(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.views[strings.ToLower(name)] = true
	s.inputs[strings.ToLower(name)] = true
}

func (s *Session) isInput(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inputs[strings.ToLower(name)]
}

func (s *Session) hasView(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.views[strings.ToLower(name)]
}

func (s *Session) addGlobal(view string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.globals, view) {
		s.globals = append(s.globals, view)
	}
}

// quote makes name one SQL identifier, whatever it contains.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// sanitize keeps a name readable in a view name without quoting.
func sanitize(name string) string { return unsafeChars.ReplaceAllString(name, "_") }

// ReleaseAbandoned ends a session another process opened and can no longer
// close, such as a Python worker that died mid-node: the server would
// otherwise run the session's operations to their end. It interrupts them
// and releases the session. user is the user id the session was opened
// with; empty means the remote's.
func ReleaseAbandoned(ctx context.Context, remoteURL, sessionID, user string) error {
	s, err := abandoned(remoteURL, sessionID, user)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	return errors.Join(s.interrupt(ctx, ""), s.releaseUntilDone(ctx))
}

// releaseUntilDone releases the session, asking again while the server
// refuses because an operation it was just told to interrupt has not
// left its started state yet (Spark's STATE_CONSISTENCY error): a few
// tries, a quarter of a second apart.
func (s *Session) releaseUntilDone(ctx context.Context) error {
	var err error
	for try := 0; try < 8; try++ {
		if err = s.releaseSession(ctx); err == nil || !strings.Contains(err.Error(), "STATE_CONSISTENCY") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// StopAbandoned ends a streaming query that another process started in its
// session and can no longer stop, such as an execd that was killed: it
// stops the query, which returns once Spark has stopped it (a micro-batch
// under way is interrupted; the checkpoint keeps what was committed), then
// releases the session as ReleaseAbandoned does. Releasing a session stops
// its queries too, but without waiting for them: the stop makes sure the
// query starts no batch once StopAbandoned has returned. A query that is
// no longer there is no error; a session that cannot be released is.
func StopAbandoned(ctx context.Context, remoteURL, sessionID, user string, q QueryID) error {
	s, err := abandoned(remoteURL, sessionID, user)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	_ = s.StopQuery(ctx, q)
	return errors.Join(s.interrupt(ctx, ""), s.releaseUntilDone(ctx))
}

// abandoned is a handle on another process's session.
func abandoned(remoteURL, sessionID, user string) (*Session, error) {
	r, err := parseRemote(remoteURL)
	if err != nil {
		return nil, err
	}
	if user != "" {
		r.user = user
	}
	s := &Session{remote: r, sid: sessionID, log: slog.New(slog.DiscardHandler), closed: make(chan struct{}), releasing: make(chan struct{})}
	if s.conn, err = s.dial(r); err != nil {
		return nil, err
	}
	return s, nil
}
