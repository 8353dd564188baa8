// Package backend runs a pipeline's nodes on Spark: it turns the tauro
// input and output configuration of each node into Spark Connect specs, opens one
// Spark Connect session per run, registers inputs as views, runs SQL nodes
// and writes their outputs. It is the engine's Backend for Spark.
package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Backend runs nodes on a Spark Connect server.
type Backend struct {
	remote func() string
	ready  func() error
	log    *slog.Logger
	// breaker opens after transport failures in a row across runs, so new
	// runs fail fast with UNAVAILABLE instead of each retrying into a dead
	// server. Errors in queries or data never count.
	breaker *breaker.Backend
	python  func(project string) pycall.Runner // nil: Python nodes are unsupported
	streams Streams                            // nil: streaming nodes are unsupported
	tracker AttemptTracker                     // nil: no MLflow runs for Python nodes
	profile bool                               // report each node attempt's phases (SetProfile)
	// durable: the server outlives execd, so runs keep a journal and a
	// restarted execd takes them up (see resume.go).
	durable bool
}

// BreakerPolicy guards the Spark backend: five transport failures in a row
// open it for fifteen seconds.
var BreakerPolicy = breaker.BackendPolicy{Threshold: 5, Cooldown: 15 * time.Second}

// New returns a backend for the server whose current sc:// address remote
// gives (an embedded server may move to another port when it restarts).
// ready reports whether the server is reachable now; execd wires it to the
// server's health.
func New(remote func() string, ready func() error, log *slog.Logger) *Backend {
	if log == nil {
		log = slog.Default()
	}
	return &Backend{remote: remote, ready: ready, log: log, breaker: breaker.NewBackend(BreakerPolicy, nil)}
}

// Ready implements engine.Backend.
func (b *Backend) Ready() error {
	if err := b.ready(); err != nil {
		return err
	}
	return b.breaker.Allow()
}

// BreakerOpen reports whether the Spark breaker refuses new work now.
func (b *Backend) BreakerOpen() bool { return b.breaker.Open() }

// observe feeds a node attempt's outcome to the backend breaker. Only a
// failure to reach Spark counts: a query or file error (a write that found
// another run's files, say) is no sign of a dead server.
func (b *Backend) observe(err error) {
	var se *sparkconnect.Error
	switch {
	case err == nil:
		b.breaker.Success()
	case errors.As(err, &se) && se.Unreachable():
		b.breaker.Failure(se.Message)
	}
}

// OpenRun opens the run's Spark session with the pipeline's spark_config.
func (b *Backend) OpenRun(ctx context.Context, rc engine.RunContext) (engine.RunExecutor, error) {
	r := newRunExec(b, rc)
	if _, err := r.session(ctx); err != nil {
		b.observe(err)
		return nil, err
	}
	return r, nil
}

func newRunExec(b *Backend, rc engine.RunContext) *runExec {
	r := &runExec{
		b:         b,
		rc:        rc,
		conf:      rc.Pipeline.SparkConfig,
		log:       b.log.With("run_id", rc.RunID),
		inputs:    map[string]*inputOnce{},
		byName:    map[string]*plan.Node{},
		readers:   map[string]int{},
		live:      map[string]run.LiveAttempt{},
		early:     map[string]*earlyCall{},
		consumers: map[string][]*plan.Node{},
	}
	if b.durable {
		r.journal = rc.Journal
	}
	r.unfinished = make(map[string]bool, len(rc.Pipeline.Nodes))
	for _, n := range rc.Pipeline.Nodes {
		r.byName[n.Name] = n
		r.unfinished[n.Name] = true
		for _, d := range n.Dependencies {
			r.readers[d]++
			r.consumers[d] = append(r.consumers[d], n)
		}
	}
	if !rc.Pipeline.Settings.ParallelSourceReads {
		r.reads = newReadGate(headSources(rc.Pipeline))
		r.readRank = readRanks(rc.Pipeline)
	}
	r.dependents = maps.Clone(r.readers)
	r.aliases = aliasesRead(rc.Pipeline.Nodes)
	r.pythonRead = readByPythonAlone(rc.Pipeline.Nodes)
	return r
}

// readByPythonAlone returns the config inputs that only batch Python nodes
// read: those need a global view alone (see Session.RegisterShared), one
// request rather than a session view and then a global one.
func readByPythonAlone(nodes []*plan.Node) map[string]bool {
	alone := map[string]bool{}
	for _, n := range nodes {
		python := n.Kind == plan.KindPython && n.Stream == nil
		for _, in := range n.InputSpecs {
			if in.Producer != "" {
				continue
			}
			if seen, ok := alone[in.Key]; !ok || seen {
				alone[in.Key] = python
			}
		}
	}
	return alone
}

// runExec is one run's use of Spark.
type runExec struct {
	b      *Backend
	rc     engine.RunContext
	conf   map[string]string
	log    *slog.Logger
	byName map[string]*plan.Node

	// reads lets the run's batch source reads through one at a time, in
	// readRank's order (gate.go); nil reads them at once.
	reads    *readGate
	readRank map[string]int

	mu     sync.Mutex
	sess   *sparkconnect.Session
	inputs map[string]*inputOnce
	// ran holds the nodes whose results this session has as views; gen
	// counts, per node, the results it has had (an attempt that fails
	// after its result was made and a retry make two).
	ran map[string]bool
	gen map[string]int
	// readers counts, per node, the dependents that have not succeeded
	// yet; a result with readers is cached until the count reaches zero.
	readers map[string]int
	// dependents counts, per node, the nodes that read its result.
	dependents map[string]int
	cached     map[string]string // node -> cached view
	// unfinished holds the nodes that have not succeeded in this
	// execution: once it is empty, nothing is left to read a cache (see
	// consumed). A run taken up after a restart never empties it (its
	// nodes that had succeeded do not run again), and releases as before.
	unfinished map[string]bool
	// journal is the run's, when the backend is durable; live holds the
	// attempts a killed execd left under way, for a run taken up.
	journal engine.Journal
	live    map[string]run.LiveAttempt
	// aliases are, per node, the session names its dependents' SQL reads
	// its result by (see aliasesRead).
	aliases map[string][]string
	// pythonRead holds the config inputs only batch Python nodes read.
	pythonRead map[string]bool
	// cleared holds, per streaming node this execution has cleared (see
	// clearStream), the sources its query starts from: a retry of the
	// node does not clear again and starts where the first attempt did.
	cleared map[string][]plan.StreamSource
	// consumers are, per node, the nodes that depend on it; early holds
	// the calls of their functions made before they run (see early.go),
	// earlyRunning those under way; closing stops new ones.
	consumers    map[string][]*plan.Node
	early        map[string]*earlyCall
	earlyRunning sync.WaitGroup
	closing      bool
}

// aliasesRead works out which session names each node's result needs: a
// dependent that runs SQL (a SQL node, or any streaming node, whose
// sources are session views) reads a dependency by its name and by its
// output keys, and an input that is another node's output by its key. A
// batch Python node reads its upstream results' global views, and a node
// no one reads needs no name at all: each name is a round trip to Spark.
func aliasesRead(nodes []*plan.Node) map[string][]string {
	byName := make(map[string]*plan.Node, len(nodes))
	for _, n := range nodes {
		byName[n.Name] = n
	}
	need := map[string][]string{}
	add := func(producer, name string) {
		if !slices.Contains(need[producer], name) {
			need[producer] = append(need[producer], name)
		}
	}
	for _, c := range nodes {
		if c.Kind == plan.KindPython && c.Stream == nil {
			continue
		}
		for _, d := range c.Dependencies {
			add(d, d)
			if dn := byName[d]; dn != nil {
				for _, o := range dn.OutputSpecs {
					add(d, o.Key)
				}
			}
		}
		for _, in := range c.InputSpecs {
			if in.Producer != "" {
				add(in.Producer, in.Key)
			}
		}
		if c.Stream != nil {
			for _, src := range c.Stream.Sources {
				if src.Producer != "" {
					add(src.Producer, src.Key)
				}
			}
		}
	}
	for k := range need {
		if need[k] == nil {
			need[k] = []string{}
		}
	}
	return need
}

// aliasesOf is what aliasesRead decided for node: never nil, so a session
// does not fall back to naming every output.
func (r *runExec) aliasesOf(node string) []string {
	if a := r.aliases[node]; a != nil {
		return a
	}
	return []string{}
}

// inputOnce registers one input view per session, whichever node needs it
// first.
type inputOnce struct {
	once sync.Once
	err  error
}

// session returns the run's session, opening a new one when the server
// restarted under the old (its views went with it; inputs are registered
// again on demand).
func (r *runExec) session(ctx context.Context) (*sparkconnect.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess != nil {
		return r.sess, nil
	}
	s, err := sparkconnect.Connect(ctx, r.b.remote(), sparkconnect.Config{RunID: r.rc.RunID, Conf: r.conf, Logger: r.log, Journal: r.journalOrNil()})
	if err != nil {
		return nil, err
	}
	if err := r.recordSession(ctx, s); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	if skipped := s.Skipped(); len(skipped) > 0 {
		r.log.Warn("spark_config keys a session cannot set were skipped", "keys", skipped)
	}
	r.useSession(s)
	return s, nil
}

// useSession makes s the run's session, with nothing of it known yet: no
// input registered, no result made or cached.
func (r *runExec) useSession(s *sparkconnect.Session) {
	r.sess = s
	r.inputs = map[string]*inputOnce{}
	r.ran = map[string]bool{}
	r.gen = map[string]int{}
	r.cached = map[string]string{}
}

// dropSession forgets a session the server lost, so the next attempt opens
// a fresh one.
func (r *runExec) dropSession(ctx context.Context, s *sparkconnect.Session) {
	r.mu.Lock()
	if r.sess == s {
		r.sess = nil
	}
	r.mu.Unlock()
	_ = s.Close(ctx)
}

// RunNode implements engine.RunExecutor.
func (r *runExec) RunNode(ctx context.Context, n *plan.Node, attempt int, emit func(run.Event)) error {
	switch {
	case n.Stream != nil:
	case n.Kind == plan.KindSQL:
	case n.Kind == plan.KindPython && r.b.pythonFor(r.rc.Pipeline.Project) != nil:
	default:
		return &retry.Failure{Err: run.Error{
			Type:    "UnsupportedNode",
			Message: fmt.Sprintf("node %q is a %s node; this execd runs SQL nodes only (Python nodes need the worker pool)", n.Name, n.Kind),
		}}
	}
	if err := r.b.breaker.Allow(); err != nil {
		return retry.Transient(err)
	}
	s, err := r.session(ctx)
	if err != nil {
		r.b.observe(err)
		return describe(err)
	}
	var prof *profile
	if r.b.profile {
		ctx, prof = startProfile(ctx)
	}
	switch {
	case n.Stream != nil:
		err = r.runStream(ctx, s, n, attempt, emit)
	case n.Kind == plan.KindPython:
		err = r.runPython(ctx, s, n, attempt, emit)
	default:
		err = r.runSQL(ctx, s, n, attempt, emit)
	}
	if _, ok := r.takenUp(n.Name, attempt); ok && gone(err) {
		err = fmt.Errorf("%w: %w", engine.ErrNotResumable, err)
	}
	r.b.observe(err)
	if errors.Is(err, sparkconnect.ErrSessionLost) {
		r.dropSession(context.WithoutCancel(ctx), s)
	}
	if err == nil {
		// Not the attempt's ctx: released even if the attempt is cancelled
		// now, and counted in the cleanup phase's time, not its requests
		// (which reader is the last varies from run to run).
		r.consumed(context.Background(), s, n)
		phase(ctx, "cleanup")
	}
	if prof != nil {
		prof.report(emit)
	}
	return describe(err)
}

// cacheable reports whether n's result is cached while dependents are
// still to read it: when it would otherwise be computed more than once, by
// its writes and its dependents together.
func (r *runExec) cacheable(n *plan.Node) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readers[n.Name] > 0 && len(n.OutputSpecs)+r.dependents[n.Name] > 1
}

// releaseTimeout bounds the release of a node's dependencies' caches: a
// release that does not end in time is left to the session's close.
const releaseTimeout = 30 * time.Second

// consumed records that n has read its dependencies' results: a cached
// result whose last reader this was is released before n ends. Not in
// the background: a dependent's write that started while the release was
// under way was seen to miss the caches built on the released result and
// compute everything again from the sources; a release takes 10-20 ms.
// One at a time: two releases at once can each plan again a cache built
// on both, the first with the second's cache still in it. Nor when n was
// the run's last node to succeed: no node is left to need the memory, and
// the session's close, after the run is recorded, drops the result views
// and their caches with them.
func (r *runExec) consumed(ctx context.Context, s *sparkconnect.Session, n *plan.Node) {
	release := r.toRelease(n)
	if len(release) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	for _, c := range release {
		uncache := s.Uncache
		if c.remade {
			uncache = s.UncacheAll
		}
		if err := uncache(ctx, c.view); err != nil && !errors.Is(err, sparkconnect.ErrClosed) {
			r.log.Warn("releasing a cached result", "view", c.view, "err", err)
		}
	}
}

// cachedResult is a cached result view to release. remade: the result was
// made more than once in this session (an attempt that failed after
// caching it, and a retry), so earlier plans of the view may be cached too.
type cachedResult struct {
	view   string
	remade bool
}

// toRelease records that n succeeded and read its dependencies' results,
// and returns the cached ones it was the last reader of: none when n was
// the run's last node to succeed (see consumed).
func (r *runExec) toRelease(n *plan.Node) []cachedResult {
	var release []cachedResult
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.unfinished, n.Name)
	for _, d := range n.Dependencies {
		r.readers[d]--
		if v, ok := r.cached[d]; ok && r.readers[d] <= 0 {
			release = append(release, cachedResult{v, r.gen[d] > 1})
			delete(r.cached, d)
		}
	}
	if len(r.unfinished) == 0 {
		return nil
	}
	return release
}

// describe names a Spark failure by Spark's error class, so a node's FAILED
// event says TABLE_OR_VIEW_NOT_FOUND rather than a Go type.
func describe(err error) error {
	var se *sparkconnect.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	typ := se.Class
	if typ == "" {
		typ = "SparkError"
	}
	return &retry.Failure{Err: run.Error{Type: typ, Message: se.Error(), Retryable: se.Retryable()}, Cause: err}
}

func (r *runExec) runSQL(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int, emit func(run.Event)) error {
	if err := r.upstream(ctx, s, n); err != nil {
		return err
	}
	names := make([]string, 0, len(n.InputSpecs))
	for _, in := range n.InputSpecs {
		if in.Producer == "" { // an upstream result is a view by now
			if err := r.registerSourceInput(ctx, s, n, in.Read); err != nil {
				return err
			}
		}
		names = append(names, in.Key)
	}
	phase(ctx, "inputs")
	shared := r.cacheable(n)
	spec := sparkconnect.NodeSpec{Name: n.Name, SQL: n.SQL, Inputs: names, Cache: shared, Aliases: r.aliasesOf(n.Name)}
	if r.hasDependents(n) {
		// Its dependents read the rows its drop and fail expectations keep.
		spec.Keep = plan.KeepCondition(n.Expectations)
	}
	res, err := s.RunSQL(ctx, spec, r.params())
	phase(ctx, "plan")
	if err != nil {
		return err
	}
	r.markRan(ctx, s, n.Name, shared, res.All) // what is cached
	r.callEarly(s, n.Name)
	return r.writeOutputs(ctx, s, n, res.All, attempt, emit)
}

// emitOutput reports a written output: its row count as a metric, an empty
// one as a warning.
func emitOutput(emit func(run.Event), o sparkconnect.OutputResult) {
	if o.Warning != "" {
		emit(run.Event{Kind: run.NodeMessage, Level: "warning", Message: o.Warning})
	}
	if o.Rows >= 0 {
		emit(run.Event{Kind: run.NodeMetric, MetricName: "rows_written." + o.Key, MetricValue: float64(o.Rows)})
	}
}

// upstream makes sure every result n reads is a view of this session. A
// result computed in this session already is; one computed earlier (a node
// kept by a repair, or one left out of the selection) is read back from
// what that node wrote, under its output keys and, for a dependency, its
// name too.
func (r *runExec) upstream(ctx context.Context, s *sparkconnect.Session, n *plan.Node) error {
	r.mu.Lock()
	ran := maps.Clone(r.ran)
	r.mu.Unlock()
	for _, d := range n.Dependencies {
		dn := r.byName[d]
		if dn == nil || ran[d] {
			continue
		}
		if err := r.readUpstream(ctx, s, n, d, dn.OutputSpecs); err != nil {
			return err
		}
	}
	// A dependency the selection left out is read back for the nodes that
	// read dependencies by name (SQL, streaming), when it writes outputs; a
	// dependency only waited for may write none.
	for _, u := range n.Outside {
		if n.Kind == plan.KindPython && n.Stream == nil || len(u.Outputs) == 0 {
			continue
		}
		if err := r.readUpstream(ctx, s, n, u.Name, u.Outputs); err != nil {
			return err
		}
	}
	for _, in := range n.InputSpecs {
		if in.Producer == "" || ran[in.Producer] {
			continue
		}
		if strings.EqualFold(in.Read.Format, "kafka") {
			return &retry.Failure{Err: run.Error{Type: "UpstreamNotStored", Message: fmt.Sprintf(
				"node %q reads %q, a kafka topic that %q writes, and %q did not run in this execution: a topic cannot be read back as "+
					"its result (it holds Kafka's records, and every earlier write); run %q too", n.Name, in.Key, in.Producer, in.Producer, in.Producer)}}
		}
		if err := r.readBack(ctx, s, in.Read); err != nil {
			return err
		}
	}
	return nil
}

// readUpstream makes the result of d, a dependency of n that did not run in
// this execution, readable by name: read back from the outputs it wrote,
// under their keys and under d's name (its first output).
func (r *runExec) readUpstream(ctx context.Context, s *sparkconnect.Session, n *plan.Node, d string, outputs []plan.OutputSpec) error {
	first := ""
	for _, o := range outputs {
		if !o.Readable() {
			continue
		}
		if first == "" {
			first = o.Key
		}
		if err := r.readBack(ctx, s, o.ReadBack()); err != nil {
			return err
		}
	}
	if first == "" {
		return &retry.Failure{Err: run.Error{Type: "UpstreamNotStored", Message: fmt.Sprintf(
			"node %q reads %q, which did not run in this execution and writes no output to read it back from "+
				"(a kafka topic is not one); run %q too", n.Name, d, d)}}
	}
	return r.once(ctx, "alias:"+d, func() error { return s.Alias(ctx, d, "`"+first+"`") })
}

// readBack registers what an earlier execution wrote as a view named after
// its output key.
func (r *runExec) readBack(ctx context.Context, s *sparkconnect.Session, in plan.InputSpec) error {
	return r.once(ctx, "output:"+in.Key, func() error { return s.RegisterInput(ctx, in, nil) })
}

// params are the SQL parameters every node may use: the run's dates, as
// dates.
func (r *runExec) params() map[string]any {
	p := map[string]any{}
	if d := r.rc.Pipeline.StartDate; !d.IsZero() {
		p["start_date"] = d
	}
	if d := r.rc.Pipeline.EndDate; !d.IsZero() {
		p["end_date"] = d
	}
	return p
}

func (r *runExec) registerInput(ctx context.Context, s *sparkconnect.Session, in plan.InputSpec) error {
	return r.once(ctx, "input:"+in.Key, func() error {
		return s.RegisterInput(ctx, in, r.inputParams(in))
	})
}

// registerSourceInput is registerInput for batch node n, through the
// run's read gate.
func (r *runExec) registerSourceInput(ctx context.Context, s *sparkconnect.Session, n *plan.Node, in plan.InputSpec) error {
	return r.once(ctx, "input:"+in.Key, func() error {
		return r.readSource(ctx, n, in.Key, func() error { return s.RegisterInput(ctx, in, r.inputParams(in)) })
	})
}

// inputParams are what input in's query binds: the run's dates.
func (r *runExec) inputParams(in plan.InputSpec) map[string]any {
	if in.Query == "" {
		return nil
	}
	return r.params()
}

// once runs fn once per session for id, whichever node needs it first; a
// failure is forgotten so the next attempt tries again.
func (r *runExec) once(ctx context.Context, id string, fn func() error) error {
	r.mu.Lock()
	o := r.inputs[id]
	if o == nil {
		o = &inputOnce{}
		r.inputs[id] = o
	}
	r.mu.Unlock()
	o.once.Do(func() { o.err = fn() })
	if o.err != nil {
		r.mu.Lock()
		if r.inputs[id] == o {
			delete(r.inputs, id)
		}
		r.mu.Unlock()
	}
	return o.err
}

// Close implements engine.RunExecutor.
func (r *runExec) Close(ctx context.Context) error {
	r.stopEarly()
	r.mu.Lock()
	s := r.sess
	r.sess = nil
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close(ctx)
}

// newCheckID names a validation session's views apart from any run's.
func newCheckID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
