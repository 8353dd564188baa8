// Package store is what the engine needs from durable storage: runs, their
// nodes' attempts and each run's append-only event log; the queue of runs
// waiting for admission; the journal a backend keeps of a running run; and
// experiments. The engine talks to these interfaces only. The stores that
// implement them live beside the other backends (internal/store/...), and
// every one of them passes the behaviour suite in storetest.
//
// What every store promises:
//
//   - Events are applied to the record by the rules of package run, in the
//     transaction that stores them, so a record and its log always agree.
//     An event that does not fit the record is refused (ErrInvalidEvent or
//     ErrRunEnded) and nothing of its batch is stored.
//   - Each run's sequences are gapless (1, 2, 3...), given at commit.
//   - A committed event survives the process being killed.
//   - Event times are the store's clock at commit; Sequence, Time and RunID
//     given by the caller are replaced.
//   - A watcher (Watch) gets every event after the sequence it names,
//     exactly once and in order.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Errors callers tell apart with errors.Is. Each is wrapped with the detail
// (which run, node or field).
var (
	// ErrNotFound: no run (or experiment) has the id.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists: an id is taken by another request.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrInvalidArgument: a malformed id, node name, page size, sequence or
	// parameter set. Nothing was written.
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrBadPageToken: the page token was not produced by a list call for
	// the same filter.
	ErrBadPageToken = errors.New("store: bad page token")
	// ErrInvalidEvent: an event does not fit the run's record (see package
	// run). It points at a bug in the caller. Nothing of the batch was
	// written.
	ErrInvalidEvent = run.ErrInvalidEvent
	// ErrRunEnded: the run has had its terminal event; only PrepareRepair
	// may write to it now.
	ErrRunEnded = run.ErrRunEnded
	// ErrNotRepairable: PrepareRepair on a run that is not FAILED,
	// CANCELLED or INTERRUPTED.
	ErrNotRepairable = errors.New("store: run cannot be repaired")
	// ErrTooManyEvents: the run holds Limits.MaxEventsPerRun events and the
	// batch had a message, metric or progress.
	ErrTooManyEvents = errors.New("store: too many events for one run")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrFenced: a write made under a lease the run no longer has: another
	// replica has claimed the run since. Nothing was written.
	ErrFenced = errors.New("store: the run's lease has passed to another replica")
	// ErrLeaseHeld: Claim of a run a live replica owns.
	ErrLeaseHeld = errors.New("store: the run is owned by a live replica")
)

// Messages a store records when it interrupts a run, so operators and UIs
// can tell an interruption from a cancellation.
const (
	InterruptedMessage   = "execd stopped while the run was running"
	InterruptedErrorType = "Interrupted"
)

// Limits bound what one request can make a store keep, so no request can
// grow the database without bound or store something that cannot be read
// back.
type Limits struct {
	// MaxEventsPerRun caps node messages, metrics and progress. State
	// changes are always accepted, so a run that reached the cap can still
	// end and be repaired.
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

// Merge returns l with its zero fields taken from DefaultLimits.
func (l Limits) Merge() Limits {
	d := DefaultLimits
	if l.MaxEventsPerRun > 0 {
		d.MaxEventsPerRun = l.MaxEventsPerRun
	}
	if l.MaxTextBytes > 0 {
		d.MaxTextBytes = l.MaxTextBytes
	}
	if l.MaxParamsBytes > 0 {
		d.MaxParamsBytes = l.MaxParamsBytes
	}
	if l.MaxNodes > 0 {
		d.MaxNodes = l.MaxNodes
	}
	return d
}

// ListFilter selects runs and experiments. Zero fields select everything.
type ListFilter struct {
	// Projects are the projects whose records are listed, any of them;
	// nil lists every project's.
	Projects []string
	Pipeline string
	States   []run.State // any of them; experiments ignore it
}

// Page sizes, as in AIP-158: 0 means the default, larger than the maximum
// is lowered to it.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Store is everything the engine keeps.
type Store interface {
	Runs
	Recovery
	Journal
	Experiments
	Replicas
	MLflow
	// Watchers is how many watchers follow runs live now.
	Watchers() int
	// PruneRuns deletes the runs that ended before cutoff with everything
	// stored about them, and says how many went. Runs that have not ended
	// are never touched.
	PruneRuns(ctx context.Context, cutoff time.Time) (int, error)
	// AdoptUnnamed gives project the runs and experiments recorded before
	// execd named projects (their project is ""), and says how many runs
	// it named. execd calls it when it serves one project.
	AdoptUnnamed(ctx context.Context, project string) (int, error)
	// Done is closed when the store closes.
	Done() <-chan struct{}
	Close() error
}

// Runs are the records of runs and their event logs.
type Runs interface {
	// CreateRun records a new run PENDING with every node PENDING, and its
	// first event (sequence 1, run_state PENDING, r.Message). Only r.ID,
	// r.RequestID, r.Params, r.Message, r.Owner and the node names are
	// read; an empty ID gets a random one, and an owner holds the run's
	// first lease (epoch 1). A request id already used returns that
	// run with created false and writes nothing.
	CreateRun(ctx context.Context, r run.Run) (stored run.Run, created bool, err error)
	// GetRun returns a run with its nodes in plan order and each node's
	// attempts in order.
	GetRun(ctx context.Context, id string) (run.Run, error)
	// RunByRequestID returns the project's run created with the request
	// id. Request ids are unique per project.
	RunByRequestID(ctx context.Context, project, requestID string) (run.Run, error)
	// ListRuns returns runs newest first and a token for the next page
	// ("" after the last). Pagination is by key, so runs created while a
	// client pages do not shift its pages.
	ListRuns(ctx context.Context, f ListFilter, pageSize int, pageToken string) ([]run.Run, string, error)
	// Append commits evs to the run's log in one transaction, applying
	// each to the record; either every event is stored or none is. It
	// returns the stored events.
	Append(ctx context.Context, runID string, evs ...run.Event) ([]run.Event, error)
	// AppendAs is Append by the replica that holds lease: ErrFenced, and
	// nothing written, once another replica has claimed the run.
	AppendAs(ctx context.Context, lease Lease, evs ...run.Event) ([]run.Event, error)
	// Queue records the run QUEUED under lease, with what its admission
	// will be judged by.
	Queue(ctx context.Context, lease Lease, a Admission) error
	// StartRun admits a queued run: it records the run RUNNING under
	// lease (with a, in case it was queued without it) if decide, given
	// every other run executing now and every other run waiting, on any
	// replica, finds nothing that blocks it (""). No two StartRun calls
	// decide at once, whichever replicas make them. A blocked run is left
	// as it was, and the blocker returned.
	StartRun(ctx context.Context, lease Lease, a Admission, decide func(executing, waiting []Admission) string) (blocker string, err error)
	// Watch follows the run's events with sequence > after (see Watcher).
	// ErrInvalidArgument when after is negative or beyond the run's last
	// event.
	Watch(ctx context.Context, runID string, after int64) (*Watcher, error)
	// Events returns up to limit events with sequence > after (limit 0
	// means 1000; at most 10000).
	Events(ctx context.Context, runID string, after int64, limit int) ([]run.Event, error)
	// PrepareRepair reopens an ended run (FAILED, CANCELLED, INTERRUPTED)
	// for a repair: the run back to PENDING, its repair count up by one,
	// each node in reset back to PENDING, and owner (when not "") its
	// owner under the next epoch. A request id already used for this run
	// changes nothing (repeated true). Repair request ids are unique per
	// project.
	PrepareRepair(ctx context.Context, runID string, reset []string, requestID, owner string) (stored run.Run, repeated bool, err error)
	// RepairRequest returns the run a repair request id of the project was
	// used for.
	RepairRequest(ctx context.Context, project, requestID string) (string, error)
}

// Recovery is what the engine needs to find, at its start, the runs a
// previous execd left behind.
type Recovery interface {
	// Unfinished returns the ids of the runs left PENDING or RUNNING,
	// oldest first.
	Unfinished(ctx context.Context) ([]string, error)
	// Queued returns the ids of the QUEUED runs, oldest first.
	Queued(ctx context.Context) ([]string, error)
	// Interrupt ends a run left PENDING or RUNNING as INTERRUPTED: its
	// nodes under way are CANCELLED with an error of type
	// InterruptedErrorType. It reports whether it did (false for a run
	// that had ended meanwhile, or is QUEUED).
	Interrupt(ctx context.Context, id string) (bool, error)
	// LiveAttempts returns, for a run left RUNNING, each node attempt that
	// was under way, in plan order.
	LiveAttempts(ctx context.Context, runID string) ([]run.LiveAttempt, error)
	// InterruptedQueries returns where the streaming queries ran that
	// Interrupt cancelled.
	InterruptedQueries(ctx context.Context, runID string) ([]run.QueryRef, error)
}

// Journal is a small key-value space per run that a backend writes while
// the run executes: where its Spark session is, which operations are in
// flight. It is no part of the run's record. A put is committed when it
// returns.
// Writes are fenced by the run's lease, as AppendAs is.
type Journal interface {
	JournalPut(ctx context.Context, lease Lease, key string, value []byte) error
	// JournalGet returns nil when nothing is stored under key.
	JournalGet(ctx context.Context, runID, key string) ([]byte, error)
	JournalList(ctx context.Context, runID, prefix string) (map[string][]byte, error)
	JournalClear(ctx context.Context, lease Lease) error
}

// Admission is what admitting a run is judged by: its pipeline's key
// (runs of one key count together against its max_active_runs), the places
// it writes, and its place in the queue (priority, then the time it was
// created).
type Admission struct {
	RunID     string
	Pipeline  string
	Key       string
	MaxActive int
	Writes    []string
	Priority  int
	Created   time.Time
}

// Lease is a replica's right to execute a run and write its record. Each
// claim of a run gives it the next epoch; a write under an older epoch is
// refused (fencing), so a replica that paused past its lease cannot record
// anything for a run another replica took over.
type Lease struct {
	RunID string
	Owner string
	Epoch int64
}

// Replica is one execd sharing the store.
type Replica struct {
	Name    string
	Address string
	Started time.Time
	// Heartbeat is its last; its runs may be taken over after Expires.
	Heartbeat time.Time
	Expires   time.Time
	// Runs are the runs it owns that have not ended, oldest first.
	Runs []string
}

// LeaseRecord is one claim of a run: who held it from when.
type LeaseRecord struct {
	Epoch    int64
	Owner    string
	Acquired time.Time
}

// Control is what a replica asks of a run another replica owns.
type Control string

const (
	// ControlCancel asks the owner to cancel the run.
	ControlCancel Control = "cancel"
	// ControlStop asks the owner to stop the run's streams gracefully.
	ControlStop Control = "stop"
)

// ControlRequest is a cancel or stop asked of an owner.
type ControlRequest struct {
	RunID  string
	Kind   Control
	Reason string
}

// Replicas are how the execd processes sharing a store know each other
// and divide the runs among them. A replica is alive while its heartbeats
// come; a run is owned by the replica that claimed it last, and may be
// claimed by another once its owner's heartbeats have lapsed.
type Replicas interface {
	// Heartbeat records that replica name (serving at address) is alive
	// until ttl from now. lapsed reports that its previous heartbeat had
	// already expired: other replicas may have taken its runs.
	Heartbeat(ctx context.Context, name, address string, ttl time.Duration) (lapsed bool, err error)
	// ListReplicas returns the replicas with a heartbeat on record, by
	// name, each with the runs it owns.
	ListReplicas(ctx context.Context) ([]Replica, error)
	// Claim makes replica the owner of the run under the next epoch. It
	// fails with ErrLeaseHeld when another replica owns the run and is
	// alive, and with ErrRunEnded when the run has ended.
	Claim(ctx context.Context, runID, replica string) (Lease, error)
	// Orphans returns the runs not ended (PENDING, QUEUED or RUNNING)
	// whose owner is none, or a replica whose heartbeats have lapsed,
	// oldest first.
	Orphans(ctx context.Context) ([]string, error)
	// ClaimExperiment makes replica the driver of an experiment that has
	// not ended, unless a live replica other than it drives it
	// (ErrLeaseHeld).
	ClaimExperiment(ctx context.Context, id, replica string) error
	// OrphanExperiments returns the experiments not ended whose driver is
	// none or a replica whose heartbeats have lapsed, oldest first.
	OrphanExperiments(ctx context.Context) ([]string, error)
	// LeaseHistory returns the run's claims in order.
	LeaseHistory(ctx context.Context, runID string) ([]LeaseRecord, error)
	// RequestControl asks the run's owner to cancel or stop it. The
	// request stays until the owner takes it; a run that has ended
	// fails with ErrRunEnded.
	RequestControl(ctx context.Context, runID string, kind Control, reason string) error
	// TakeControlRequests returns, and clears, the requests made of runs
	// replica owns.
	TakeControlRequests(ctx context.Context, replica string) ([]ControlRequest, error)
}

// Experiments are the records of experiments, their trials and event logs.
type Experiments interface {
	// CreateExperiment records a new experiment PENDING with its first
	// event. A request id already used returns that experiment with
	// created false.
	CreateExperiment(ctx context.Context, x experiment.Record) (stored experiment.Record, created bool, err error)
	ExperimentByRequestID(ctx context.Context, project, requestID string) (experiment.Record, error)
	// AppendExperiment stores ev and applies it to the experiment.
	// Nothing may follow a terminal state.
	AppendExperiment(ctx context.Context, id string, ev experiment.Event) (experiment.Event, error)
	GetExperiment(ctx context.Context, id string) (experiment.Record, error)
	// ListExperiments returns experiments newest first and a token for the
	// next page.
	ListExperiments(ctx context.Context, f ListFilter, pageSize int, pageToken string) ([]experiment.Record, string, error)
	// LiveExperiments returns the ids of experiments not ended, oldest
	// first.
	LiveExperiments(ctx context.Context) ([]string, error)
	// ExperimentEvents returns up to limit events after sequence after,
	// whether the experiment had ended with nothing after them, and a
	// channel closed at the next commit to the experiment (taken before
	// the read, so no commit falls between them unseen).
	ExperimentEvents(ctx context.Context, id string, after int64, limit int) (evs []experiment.Event, ended bool, next <-chan struct{}, err error)
}

// MLflow is what execd keeps of the runs it records in an MLflow tracking
// server. A tracked run's event log is its outbox: a mirror sends it in
// order from a durable cursor, so nothing to be sent is lost by a restart
// or by a tracking server that does not answer. Everything about a run
// goes with it when it is pruned.
type MLflow interface {
	// TrackMLflow marks the run as recorded in MLflow, with spec (what its
	// mirror needs, the mirror's own encoding). A run already tracked
	// keeps its spec and is taken up again where its mirror was (a repair
	// adds to its log).
	TrackMLflow(ctx context.Context, runID string, spec []byte) error
	// ClaimMLflow returns the tracked runs not yet wholly sent, each
	// claimed for replica until ttl from now: none is returned to two
	// replicas whose claims overlap. A replica's own claims are renewed.
	ClaimMLflow(ctx context.Context, replica string, ttl time.Duration) ([]MLflowTrack, error)
	// AdvanceMLflow records that the run's events up to seq were sent, and
	// done when nothing more ever will be. seq never goes back.
	AdvanceMLflow(ctx context.Context, runID string, seq int64, done bool) error
	// WarnMLflow records that the run's events said the tracking server
	// does not answer, and reports whether this was the first time.
	WarnMLflow(ctx context.Context, runID string) (first bool, err error)
	// PutMLflowRun records the MLflow run made for the run (node "",
	// attempt 0) or for one node attempt. The first record stays: the
	// call reports the one kept.
	PutMLflowRun(ctx context.Context, runID, node string, attempt int, m run.MLflowRun) (run.MLflowRun, error)
	// MLflowRunOf returns the MLflow run recorded for (runID, node,
	// attempt), nil when none is.
	MLflowRunOf(ctx context.Context, runID, node string, attempt int) (*run.MLflowRun, error)

	// An experiment is tracked as a run is, its event log the outbox: its
	// parent run is GetExperiment's MLflow, and each trial's is its run's.
	TrackMLflowExperiment(ctx context.Context, id string, spec []byte) error
	ClaimMLflowExperiments(ctx context.Context, replica string, ttl time.Duration) ([]MLflowTrack, error)
	AdvanceMLflowExperiment(ctx context.Context, id string, seq int64, done bool) error
	// PutMLflowExperimentRun records the experiment's parent run; the
	// first record stays and is returned.
	PutMLflowExperimentRun(ctx context.Context, id string, m run.MLflowRun) (run.MLflowRun, error)
}

// MLflowTrack is a tracked run (or experiment) as its mirror takes it up.
type MLflowTrack struct {
	// ID is the run's (or the experiment's).
	ID   string
	Spec []byte
	// Sent is the sequence of the last event sent.
	Sent   int64
	Warned bool
}
