package connect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	observing "github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// The user and client type every request of tauro-exec carries. The server
// keys sessions by user and session id, so requests sent here and requests
// sent by spark-connect-go must agree on the user.
const (
	userID    = "tauro-exec"
	userAgent = "tauro-exec"
)

// remote is the parsed connection string of the server a session talks
// to. The session id is the client's to choose, so a session_id parameter
// is rejected rather than silently ignored.
type remote struct {
	sparkurl.Remote
	url  string // as given, token included
	user string // user_id, else userID
}

func parseRemote(s string) (remote, error) {
	r, err := sparkurl.Parse(s)
	if err != nil {
		return remote{}, err
	}
	if r.SessionID != "" {
		return remote{}, fmt.Errorf("spark remote %q: session_id is chosen per run; remove it", sparkurl.Redact(s))
	}
	user := r.User
	if user == "" {
		user = userID
	}
	return remote{Remote: r, url: s, user: user}, nil
}

// dial makes the session's own gRPC connection, with the interceptors that
// watch its requests.
func (s *Session) dial(r remote) (*grpc.ClientConn, error) {
	opts := append(r.DialOptions(),
		grpc.WithUnaryInterceptor(s.unaryInterceptor),
		grpc.WithStreamInterceptor(s.streamInterceptor),
		// Arrow batches of a collected result can be large.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128<<20)),
	)
	return grpc.NewClient(r.Addr, opts...)
}

// channel hands spark-connect-go the connection the session made, so the
// session decides when it is closed.
type channel struct {
	conn *grpc.ClientConn
	user string
}

func (c channel) Build(context.Context) (*grpc.ClientConn, error) { return c.conn, nil }
func (c channel) User() string                                    { return c.user }
func (c channel) Headers() map[string]string                      { return nil } // added by the interceptors
func (c channel) SessionId() string                               { return "" }  // the client makes its own
func (c channel) UserAgent() string                               { return userAgent }

func (s *Session) withHeaders(ctx context.Context) context.Context {
	for k, v := range s.remote.Headers {
		ctx = metadata.AppendToOutgoingContext(ctx, k, v)
	}
	return ctx
}

func (s *Session) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	countCall(ctx, method)
	s.noteSession(stringField(req, fieldSessionID))
	s.rewrite(req)
	s.stamp(req)
	err := invoker(s.withHeaders(ctx), method, req, reply, cc, opts...)
	if err == nil {
		s.noteServerSession(stringField(reply, fieldServerSideSessionID))
	}
	return err
}

// streamInterceptor watches every ExecutePlan and ReattachExecute call, the
// client's and ours,
// so that an operation whose caller gives up (cancel, timeout) is stopped on
// the server: cancelling the gRPC call alone leaves Spark running the job.
//
// The call itself runs on a context of its own. An interrupt that reaches
// the server while it is still planning can be lost: Spark cancels the jobs
// the operation has at that moment, and adaptive execution submits the
// first stage just after. So when the caller gives up, the stream is kept
// open until the server reports a running stage (or interruptGrace passes)
// and only then interrupted; the caller gets its context's error at once.
func (s *Session) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	countCall(ctx, method)
	if method != methodExecutePlan && method != methodReattachExecute {
		return streamer(s.withHeaders(ctx), desc, cc, method, opts...)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(s.withHeaders(ctx)))
	cs, err := streamer(sctx, desc, cc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &operation{
		ClientStream: cs,
		s:            s,
		caller:       ctx,
		cancel:       cancel,
		msgs:         make(chan proto.Message, 1),
		done:         make(chan struct{}),
		progressed:   make(chan struct{}),
		abandoned:    make(chan struct{}),
	}, nil
}

// interruptGrace bounds how long an abandoned operation may run before it
// is interrupted when the server has not reported a running stage.
const interruptGrace = 3 * time.Second

type operation struct {
	grpc.ClientStream
	s      *Session
	caller context.Context
	cancel context.CancelFunc // ends the real call
	id     string
	sent   bool
	// clientID is the session id the caller sent, which a session taken
	// up from another process replaces (see Session.rewrite).
	clientID string

	msgs         chan proto.Message // responses, pumped from the real call
	final        error              // how the call ended; read after msgs is closed
	done         chan struct{}      // the real call has ended
	progressed   chan struct{}      // the server reported a running stage
	progressOnce sync.Once
	abandoned    chan struct{} // the caller gave up
}

func (o *operation) SendMsg(m any) error {
	if o.sent {
		return o.ClientStream.SendMsg(m)
	}
	o.sent = true
	o.s.noteSession(stringField(m, fieldSessionID))
	o.clientID = o.s.rewrite(m)
	o.s.stamp(m)
	o.id = stringField(m, fieldOperationID)
	observing.SparkOperation(o.caller, o.id)
	err := o.ClientStream.SendMsg(m)
	go o.pump()
	if o.s.track() { // not while the session closes: Close itself runs commands
		go o.watch()
	}
	return err
}

func (o *operation) RecvMsg(m any) error {
	select {
	case r, ok := <-o.msgs:
		if !ok {
			return o.final
		}
		dst, isProto := m.(proto.Message)
		if !isProto {
			return fmt.Errorf("spark connect: unexpected response holder %T", m)
		}
		proto.Reset(dst)
		proto.Merge(dst, r)
		restore(dst, o.clientID)
		return nil
	case <-o.caller.Done():
		o.awaitEnd()
		return status.FromContextError(o.caller.Err()).Err()
	}
}

// abandonedWait bounds how long a caller that gave up waits for the server
// to end its operation.
const abandonedWait = 60 * time.Second

// awaitEnd waits, once the caller has given up, until the server has ended
// the operation (watch interrupts it): a node is recorded cancelled only
// once its Spark work has stopped, so nothing of an ended run writes after
// its end. A session that is closing releases its operations itself.
func (o *operation) awaitEnd() {
	t := time.NewTimer(abandonedWait)
	defer t.Stop()
	select {
	case <-o.done:
	case <-o.s.releasing:
	case <-t.C:
		o.s.log.Warn("a Spark operation was still running a minute after its caller gave up", "operation", o.id)
	}
}

// pump reads the real call to its end.
func (o *operation) pump() {
	defer o.cancel()
	defer close(o.done)
	defer close(o.msgs)
	for {
		m, err := newMessage("ExecutePlanResponse")
		if err == nil {
			err = o.ClientStream.RecvMsg(m)
		}
		if err != nil {
			o.final = err
			return
		}
		o.s.noteServerSession(stringField(m, fieldServerSideSessionID))
		if runningStage(m) {
			o.progressOnce.Do(func() { close(o.progressed) })
		}
		select {
		case o.msgs <- m:
		case <-o.abandoned:
		}
	}
}

// watch interrupts the operation on the server if the caller gives up
// before it ends.
func (o *operation) watch() {
	defer o.s.watchers.Done()
	defer o.cancel()
	select {
	case <-o.done:
		return
	case <-o.s.closed:
		return
	case <-o.caller.Done():
	}
	close(o.abandoned)
	if o.id == "" || detached(o.caller) {
		return
	}
	grace := time.NewTimer(interruptGrace)
	defer grace.Stop()
	select {
	case <-o.progressed:
	case <-grace.C:
	case <-o.done:
		return
	case <-o.s.closed:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.s.interrupt(ctx, o.id); err != nil {
		o.s.log.Warn("could not interrupt an abandoned Spark operation", "operation", o.id, "err", err)
		return
	}
	o.s.log.Info("interrupted Spark operation", "operation", o.id, "reason", context.Cause(o.caller))
	// Let the server end the call with its own error before closing it.
	select {
	case <-o.done:
	case <-ctx.Done():
	case <-o.s.closed:
	}
}

// detached reports whether the caller gave up without ending the work: its
// cause says Detached (the run passed to another process, which takes the
// operation up), so the operation is left running on the server.
func detached(ctx context.Context) bool {
	var d interface{ Detached() bool }
	return errors.As(context.Cause(ctx), &d) && d.Detached()
}

// runningStage reports a progress message that lists a stage: a job of the
// operation has been submitted.
func runningStage(m proto.Message) bool {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(fieldExecutionProgress)
	if fd == nil || !r.Has(fd) {
		return false
	}
	p := r.Get(fd).Message()
	stages := p.Descriptor().Fields().ByName(fieldStages)
	return stages != nil && p.Get(stages).List().Len() > 0
}

// stamp tells the server which server-side session the client has seen, so
// that a restarted server answers INVALID_HANDLE.SESSION_CHANGED instead of
// silently opening an empty session under the same id.
func (s *Session) stamp(m any) {
	s.mu.Lock()
	id := s.serverSID
	s.mu.Unlock()
	pm, ok := m.(proto.Message)
	if id == "" || !ok {
		return
	}
	r := pm.ProtoReflect()
	if fd := r.Descriptor().Fields().ByName(fieldObservedSessionID); fd != nil && fd.Kind() == protoreflect.StringKind {
		r.Set(fd, protoreflect.ValueOfString(id))
	}
}
