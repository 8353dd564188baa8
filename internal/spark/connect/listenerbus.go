package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The session's streaming query listener bus (Spark 3.5+): one long-lived
// ExecutePlan whose command adds a listener on the server, which sends
// every progress, idle and termination event of the session's queries
// down that call's response stream until the listener is removed. PySpark
// opens it for StreamingQueryManager.addListener; here it replaces asking
// each query for its progress over and over.

// QueryEventKind is the kind of a listener bus event, as Spark names it.
type QueryEventKind string

// The kinds Spark sends. A query's start is not among them: the server
// answers it in the start command's own response.
const (
	QueryProgressed QueryEventKind = "QUERY_PROGRESS_EVENT"
	QueryIdle       QueryEventKind = "QUERY_IDLE_EVENT"
	QueryTerminated QueryEventKind = "QUERY_TERMINATED_EVENT"
)

// QueryEvent is one event of the listener bus.
type QueryEvent struct {
	Kind  QueryEventKind
	Query QueryID
	// Progress is, for QueryProgressed, the StreamingQueryProgress JSON:
	// the same report QueryProgress returns for the batch.
	Progress string
}

// ErrNoListenerBus is returned by ListenQueries when the server has no
// streaming query listener bus (a server older than Spark 3.5, or one
// that refuses the command).
var ErrNoListenerBus = errors.New("the Spark Connect server has no streaming query listener bus")

// Bounds on the listener call: how long the server may take to confirm
// the listener, and, once ctx has ended, to remove it and end the call.
const (
	addWait    = 10 * time.Second
	removeWait = 10 * time.Second
)

// ListenQueries follows the session's listener bus until ctx ends or the
// stream drops: added is called once the server has added the listener,
// then each for every event, in the order the server sent them. It returns
// ctx's error once ctx has ended and the server-side listener is removed,
// ErrNoListenerBus (wrapped) when the server has none, another error when
// the stream failed or ended: the events sent meanwhile are lost, and a
// caller that opens the bus again finds them in the queries' recent
// progress.
//
// The server keeps one listener per session, and leaves an add that finds
// one there unanswered for good. A stream that dropped can leave its
// listener behind (the server notices only when it next fails to send an
// event), so any listener of the session is removed first: the session's
// bus is this process's alone.
func (s *Session) ListenQueries(ctx context.Context, added func(), each func(QueryEvent)) error {
	const op = "listen to the session's streaming queries"
	if err := s.check(op); err != nil {
		return err
	}
	if err := s.removeListener(ctx); err != nil {
		return noListenerBus(s.fail(ctx, op, err))
	}
	confirmed, err := s.listenOnce(ctx, added, each)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	case err != nil && !confirmed:
		return noListenerBus(s.fail(ctx, op, fmt.Errorf("the server did not add the listener: %w", err)))
	case err != nil:
		return s.fail(ctx, op, err)
	}
	return &Error{Op: op, Message: "the server ended the listener stream", retryable: true}
}

// listenOnce runs one listener call to its end. The call is not cancelled
// when ctx ends: the listener is removed instead, which makes the server
// end the call at once (an abandoned ExecutePlan is interrupted only after
// a grace period, see streamInterceptor).
func (s *Session) listenOnce(ctx context.Context, added func(), each func(QueryEvent)) (confirmed bool, err error) {
	call, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stream, err := s.openStream(call, executePlanRequest(s.sessionID(), s.remote.user, newUUID(), listenerBus(true)))
	if err != nil {
		return false, err
	}
	ended, isAdded := make(chan struct{}), make(chan struct{})
	defer close(ended)
	go s.endListener(ctx, ended, isAdded, cancel)
	return readListenerEvents(stream, func() { close(isAdded); added() }, each)
}

// endListener ends a listener call that the server does not confirm in
// time, or, once ctx ends, removes the listener, which ends the call; the
// call is cancelled when that fails.
func (s *Session) endListener(ctx context.Context, ended, isAdded <-chan struct{}, cancel context.CancelFunc) {
	unconfirmed := time.NewTimer(addWait)
	defer unconfirmed.Stop()
	select {
	case <-ended:
		return
	case <-unconfirmed.C:
		cancel()
		return
	case <-ctx.Done():
		cancel()
		return
	case <-isAdded:
	}
	select {
	case <-ended:
		return
	case <-ctx.Done():
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), removeWait)
	defer rcancel()
	if s.removeListener(rctx) != nil {
		cancel()
		return
	}
	select {
	case <-ended:
	case <-rctx.Done():
		cancel()
	}
}

// removeListener removes the session's server-side listener; the server
// then ends the call that added it.
func (s *Session) removeListener(ctx context.Context) error {
	_, err := s.execute(ctx, listenerBus(false))
	return err
}

// readListenerEvents hands out the events of a listener call until it
// ends; confirmed says the server added the listener.
func readListenerEvents(stream grpc.ClientStream, added func(), each func(QueryEvent)) (confirmed bool, err error) {
	for {
		resp, err := newMessage("ExecutePlanResponse")
		if err != nil {
			return confirmed, err
		}
		if err := stream.RecvMsg(resp); err != nil {
			if errors.Is(err, io.EOF) {
				return confirmed, nil
			}
			return confirmed, err
		}
		res, err := listenerEvents(resp)
		if err != nil {
			return confirmed, err
		}
		if res == nil {
			continue
		}
		if res.Added != nil && *res.Added && !confirmed {
			confirmed = true
			added()
		}
		for _, e := range res.Events {
			ev, err := parseQueryEvent(e.Type, e.JSON)
			if err != nil {
				return confirmed, err
			}
			each(ev)
		}
	}
}

// eventsResult is a StreamingQueryListenerEventsResult in protojson.
type eventsResult struct {
	Events []struct {
		JSON string `json:"eventJson"`
		Type string `json:"eventType"`
	} `json:"events"`
	Added *bool `json:"listenerBusListenerAdded"`
}

// listenerEvents reads the listener result resp carries, nil if none.
func listenerEvents(resp proto.Message) (*eventsResult, error) {
	r := resp.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(fieldListenerEventsResult)
	if fd == nil || !r.Has(fd) {
		return nil, nil
	}
	b, err := protojson.Marshal(r.Get(fd).Message().Interface())
	if err != nil {
		return nil, fmt.Errorf("spark connect: reading %s: %w", fieldListenerEventsResult, err)
	}
	var res eventsResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("spark connect: reading %s: %w", fieldListenerEventsResult, err)
	}
	return &res, nil
}

// parseQueryEvent reads an event's JSON: a progress event wraps the
// progress report ({"progress": {...}}), the others name their query at
// the top. Spark writes NaN for a rate it cannot compute yet, which JSON
// does not allow.
func parseQueryEvent(kind, js string) (QueryEvent, error) {
	js = strings.ReplaceAll(js, ": NaN", ": 0")
	var e struct {
		QueryID
		Progress json.RawMessage `json:"progress"`
	}
	if err := json.Unmarshal([]byte(js), &e); err != nil {
		return QueryEvent{}, fmt.Errorf("spark connect: unreadable %s: %w", kind, err)
	}
	ev := QueryEvent{Kind: QueryEventKind(kind), Query: e.QueryID}
	if len(e.Progress) > 0 {
		var p QueryID
		if err := json.Unmarshal(e.Progress, &p); err != nil {
			return QueryEvent{}, fmt.Errorf("spark connect: unreadable %s: %w", kind, err)
		}
		ev.Query, ev.Progress = p, string(e.Progress)
	}
	return ev, nil
}

// noListenerBus marks the errors of a server that does not know the
// command: an older protocol leaves it unset, which Spark refuses as an
// unsupported command.
func noListenerBus(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	msg := strings.ToLower(e.Message)
	if e.Code == codes.Unimplemented || strings.Contains(msg, "not supported") || strings.Contains(msg, "unsupported") {
		return fmt.Errorf("%w: %w", ErrNoListenerBus, err)
	}
	return err
}
