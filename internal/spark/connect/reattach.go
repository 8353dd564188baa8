package connect

// Work that outlives the process that started it. A Spark Connect server
// keeps a session, its views and its streaming queries when the client
// goes away, and keeps a reattachable operation running, with the
// responses it has not handed out yet, until a client takes it up again
// (ReattachExecute) or it has been left alone for
// spark.connect.execute.manager.detachedTimeout (5 minutes by default;
// the server interrupts it then). So a run whose execd was killed can go
// on: the next execd reopens the run's session under its id (Reopen) and
// takes up each operation in flight, provided it knows, durably, which
// operations those were and how far it had read them. That record is the
// Journal's; the run store keeps it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Journal keeps, durably, what another process needs to take up a
// session's operations: each journaled step's operation id and how far its
// responses were read. Save must be durable when it returns: an operation
// is recorded before it is sent.
type Journal interface {
	// Load returns what Save kept under key, nil when nothing.
	Load(ctx context.Context, key string) ([]byte, error)
	Save(ctx context.Context, key string, value []byte) error
}

// ErrOperationLost is returned, wrapped in an *Error, when a journaled
// operation can no longer be taken up: the server interrupted it after its
// detached timeout, or lost it with the session.
var ErrOperationLost = errors.New("the Spark operation is no longer on the server")

// Identity names a session on its server, for another process to take it
// up with Reopen.
type Identity struct {
	Session string `json:"session"`
	// Server is the server-side session id: a server that restarted (and
	// lost the session's views) has another one for the same session id.
	Server string `json:"server"`
	User   string `json:"user"`
}

// Identity is what Reopen needs to take this session up from another
// process.
func (s *Session) Identity() Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Identity{Session: s.sid, Server: s.serverSID, User: s.remote.user}
}

// Reopen takes up a session another process opened and can no longer use,
// an execd that was killed: requests go out under the session's id, its
// views and streaming queries are there, and journaled steps (cfg.Journal)
// are taken up where they were. The run's global views are found on the
// server, for Close to drop. A server that no longer holds the session
// (it restarted, or the session was released or timed out) fails it with
// ErrSessionLost.
func Reopen(ctx context.Context, remoteURL string, id Identity, cfg Config) (*Session, error) {
	r, err := parseRemote(remoteURL)
	if err != nil {
		return nil, &Error{Op: "reopen session", Message: err.Error(), Err: err}
	}
	if err := checkProtocol(); err != nil {
		return nil, &Error{Op: "reopen session", Message: err.Error(), Err: err}
	}
	if id.Session == "" || id.Server == "" {
		return nil, &Error{Op: "reopen session", Message: "no session to reopen", Err: ErrSessionLost}
	}
	if id.User != "" {
		r.user = id.User
	}
	s, err := newSession(r, cfg)
	if err != nil {
		return nil, err
	}
	s.sid, s.serverSID, s.adopted = id.Session, id.Server, true
	err = s.build(ctx, "reopen session "+id.Session)
	if err == nil {
		err = s.probe(ctx, "reopen session "+id.Session)
	}
	if err != nil {
		var se *Error
		if errors.As(err, &se) && strings.HasPrefix(se.Class, "INVALID_HANDLE.SESSION") {
			return nil, &Error{Op: se.Op, Class: se.Class, Message: se.Message, Code: se.Code, Err: fmt.Errorf("%w: %w", ErrSessionLost, err)}
		}
		return nil, err
	}
	if err := s.findGlobals(ctx); err != nil {
		_ = s.conn.Close()
		return nil, err
	}
	return s, nil
}

// findGlobals lists the run's global views on the server: a reopened
// session made none of them, but must drop them all at Close.
func (s *Session) findGlobals(ctx context.Context) error {
	const op = "list the run's global views"
	df, err := s.spark.Sql(ctx, "SHOW VIEWS IN global_temp LIKE '"+s.prefix+"_*'")
	if err != nil {
		return s.fail(ctx, op, err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	for _, row := range rows {
		if len(row.Values()) < 3 || row.At(2) == true { // a session view, not a global one
			continue
		}
		if name, ok := row.At(1).(string); ok && strings.HasPrefix(strings.ToLower(name), strings.ToLower(s.prefix)+"_") {
			s.addGlobal("global_temp." + quote(name))
		}
	}
	return nil
}

// rewrite sends a request of spark-connect-go, which always makes its own
// session id, under the id of the session taken up (a no-op otherwise,
// since the first request's id is the session's), and returns the id the
// client sent, which its responses must carry back.
func (s *Session) rewrite(m any) (clientID string) {
	pm, ok := m.(proto.Message)
	if !ok {
		return ""
	}
	r := pm.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(fieldSessionID)
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return ""
	}
	clientID = r.Get(fd).String()
	s.mu.Lock()
	sid := s.sid
	s.mu.Unlock()
	if sid != "" && sid != clientID {
		r.Set(fd, protoreflect.ValueOfString(sid))
	}
	return clientID
}

// restore gives a response the session id its client sent (see rewrite).
func restore(m proto.Message, clientID string) {
	if clientID == "" {
		return
	}
	r := m.ProtoReflect()
	if fd := r.Descriptor().Fields().ByName(fieldSessionID); fd != nil && fd.Kind() == protoreflect.StringKind && r.Get(fd).String() != clientID {
		r.Set(fd, protoreflect.ValueOfString(clientID))
	}
}

// opRecord is a journaled step: the operation that runs it, the last
// response whose content was kept, and that content.
type opRecord struct {
	OperationID    string                      `json:"operation_id"`
	LastResponseID string                      `json:"last_response_id,omitempty"`
	Observed       map[string]map[string]int64 `json:"observed,omitempty"`
	Results        map[string][]byte           `json:"results,omitempty"`
	Done           bool                        `json:"done,omitempty"`
}

func (rec *opRecord) response() *executeResponse {
	out := &executeResponse{Observed: map[string]map[string]int64{}, Results: map[protoreflect.Name][]byte{}}
	for k, v := range rec.Observed {
		out.Observed[k] = v
	}
	for k, v := range rec.Results {
		out.Results[protoreflect.Name(k)] = v
	}
	return out
}

func (rec *opRecord) keep(out *executeResponse) {
	rec.Observed = out.Observed
	rec.Results = map[string][]byte{}
	for k, v := range out.Results {
		rec.Results[string(k)] = v
	}
}

// executeStep runs cmd as the journaled step named step: once, whichever
// process asks. Without a journal it is execute. The operation is recorded
// before it is sent, and sent reattachable; each response that carries
// something kept (metrics, command results) is recorded with its id before
// it is used. A step recorded as done returns what it produced without
// running again; a step recorded as started is taken up (ReattachExecute)
// after the last response recorded. Once complete, the operation is
// released on the server.
func (s *Session) executeStep(ctx context.Context, step string, cmd command) (*executeResponse, error) {
	if s.journal == nil || step == "" {
		return s.execute(ctx, cmd)
	}
	rec, err := s.loadStep(ctx, step)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Done {
		return rec.response(), nil
	}
	var call rpc
	if rec == nil {
		rec = &opRecord{OperationID: newUUID()}
		if err := s.saveStep(ctx, step, rec); err != nil {
			return nil, err
		}
		call = reattachableExecutePlanRequest(s.sessionID(), s.remote.user, rec.OperationID, cmd)
	} else {
		s.log.Info("taking up a Spark operation a previous process started", "step", step, "operation", rec.OperationID)
		call = reattachExecuteRequest(s.sessionID(), s.remote.user, rec.OperationID, rec.LastResponseID)
	}
	out := rec.response()
	last := rec.LastResponseID
	resent, stolen := false, 0
	for {
		began := time.Now()
		stream, err := s.openStream(ctx, call)
		var read int
		var done bool
		if err == nil {
			read, done, err = s.drain(ctx, stream, out, &last, func() error {
				rec.LastResponseID = last
				rec.keep(out)
				return s.saveStep(ctx, step, rec)
			})
		}
		// A process killed between recording the operation and sending it
		// leaves an operation the server never saw: nothing of it was ever
		// read, and the server has no trace of it (an operation it gave up
		// leaves a tombstone, OPERATION_ABANDONED). It is sent now.
		if err != nil && call.method == methodReattachExecute && last == "" && !resent &&
			classify(err).Class == "INVALID_HANDLE.OPERATION_NOT_FOUND" {
			s.log.Info("the Spark operation a previous process recorded never reached the server; sending it", "step", step, "operation", rec.OperationID)
			resent = true
			call = reattachableExecutePlanRequest(s.sessionID(), s.remote.user, rec.OperationID, cmd)
			continue
		}
		// Another process attached to the operation, and the server
		// disconnected this one: a replica that took the run over, or a
		// stale one that lost it. Whoever still holds the run's lease can
		// record the step again and attaches again; the other cannot, and
		// leaves the operation alone.
		if err != nil && classify(err).Class == "INVALID_CURSOR.DISCONNECTED" && stolen < maxStolen {
			stolen++
			if serr := s.saveStep(ctx, step, rec); serr != nil {
				return nil, fmt.Errorf("%w: %w (the Spark operation is left to the process that attached to it)", errJournal, serr)
			}
			s.log.Info("another process attached to the Spark operation; attaching again", "step", step, "operation", rec.OperationID)
			call = reattachExecuteRequest(s.sessionID(), s.remote.user, rec.OperationID, last)
			continue
		}
		if err != nil {
			if ours(ctx, err) {
				s.releaseOp(rec.OperationID)
			}
			return nil, s.operationLost(err, call)
		}
		if done {
			rec.Done, rec.LastResponseID = true, last
			rec.keep(out)
			if err := s.saveStep(ctx, step, rec); err != nil {
				return nil, err
			}
			s.releaseLater(rec.OperationID)
			return out, nil
		}
		// The server ends a reattachable call after a time or size limit
		// (spark.connect.execute.reattachable.senderMaxStreamDuration,
		// 2 minutes by default), before the result is complete, with or
		// without responses: take it up again. A call that ended at once
		// with nothing is not asked again at once.
		if read == 0 && time.Since(began) < time.Second {
			select {
			case <-ctx.Done():
				return nil, s.fail(ctx, "take up operation "+rec.OperationID, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
		call = reattachExecuteRequest(s.sessionID(), s.remote.user, rec.OperationID, last)
	}
}

// maxStolen bounds how often one step attaches again to an operation
// another process attached to.
const maxStolen = 20

// ours reports whether an operation that failed with err is this
// process's to release on the server. It is not when the step could not be
// recorded (a later process may take the operation up), when the caller
// gave the run up detached (another process has it), or when the server
// already had an operation of that id (another process sent it).
func ours(ctx context.Context, err error) bool {
	return !errors.Is(err, errJournal) && !detached(ctx) &&
		classify(err).Class != "INVALID_HANDLE.OPERATION_ALREADY_EXISTS"
}

// errJournal marks a failure to record a step: the operation goes on, and
// a later process may take it up.
var errJournal = errors.New("journal")

// drain reads one call of an operation to its end. It keeps what the
// responses carry in out, sets *last to each response's id, and calls
// record after a response that carried something kept. done says the
// result is complete.
func (s *Session) drain(ctx context.Context, stream grpc.ClientStream, out *executeResponse, last *string, record func() error) (read int, done bool, err error) {
	for {
		resp, err := newMessage("ExecutePlanResponse")
		if err != nil {
			return read, false, err
		}
		if err := stream.RecvMsg(resp); err != nil {
			if errors.Is(err, io.EOF) {
				return read, false, nil
			}
			return read, false, err
		}
		read++
		*last = stringField(resp, fieldResponseID)
		kept := len(out.Observed) + len(out.Results)
		observe(out, resp)
		if err := commandResults(out, resp); err != nil {
			return read, false, err
		}
		if resultComplete(resp) {
			return read, true, nil
		}
		if len(out.Observed)+len(out.Results) != kept {
			if err := record(); err != nil {
				return read, false, fmt.Errorf("%w: %w", errJournal, err)
			}
		}
	}
}

// resultComplete reports the response that ends a reattachable operation.
func resultComplete(m proto.Message) bool {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(fieldResultComplete)
	return fd != nil && r.Has(fd)
}

// openStream sends call's request on a new server stream.
func (s *Session) openStream(ctx context.Context, call rpc) (grpc.ClientStream, error) {
	req, err := call.message()
	if err != nil {
		return nil, err
	}
	stream, err := s.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, call.method)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(req); err != nil {
		return nil, recvError(stream, err)
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	return stream, nil
}

// operationLost marks the errors that say a reattached operation is gone.
func (s *Session) operationLost(err error, call rpc) error {
	if call.method != methodReattachExecute {
		return err
	}
	e := classify(err)
	if strings.HasPrefix(e.Class, "INVALID_HANDLE.") || strings.HasPrefix(e.Class, "INVALID_CURSOR.") {
		return fmt.Errorf("%w: %w", ErrOperationLost, err)
	}
	return err
}

// releaseOp frees an ended operation on the server. It is best effort:
// the server frees it anyway after its detached timeout.
func (s *Session) releaseOp(opID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.release(ctx, opID)
}

func (s *Session) release(ctx context.Context, opID string) {
	if err := s.unary(ctx, releaseExecuteRequest(s.sessionID(), s.remote.user, opID)); err != nil {
		s.log.Debug("releasing a Spark operation", "operation", opID, "err", err)
	}
}

// releaseLater frees an operation whose every response has been read
// without waiting for the server's answer, as PySpark does: the step's
// caller has its result, and nothing it does next depends on the release
// (a write's node ended a round trip later). Close waits for it, and cuts
// it short once the session is released, which frees the operation too.
func (s *Session) releaseLater(opID string) {
	if !s.track() {
		return // Close releases the session
	}
	go func() {
		defer s.watchers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go func() {
			select {
			case <-s.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.release(ctx, opID)
	}()
}

func (s *Session) loadStep(ctx context.Context, step string) (*opRecord, error) {
	b, err := s.journal.Load(ctx, step)
	if err != nil || b == nil {
		return nil, err
	}
	var rec opRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.OperationID == "" {
		return nil, fmt.Errorf("journal entry %s is unreadable: %v", step, err)
	}
	return &rec, nil
}

func (s *Session) saveStep(ctx context.Context, step string, rec *opRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.journal.Save(context.WithoutCancel(ctx), step, b)
}
