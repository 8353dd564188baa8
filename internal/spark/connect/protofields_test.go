package connect

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// The reads by field name, on real messages of the protocol compiled in.

func mustMessage(t *testing.T, name string, body obj) proto.Message {
	t.Helper()
	m, err := message(name, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReflectedReads_ObserveKeepsTheIntegerMetricsOfEachObservation(t *testing.T) {
	resp := mustMessage(t, "ExecutePlanResponse", obj{
		"operationId": "op",
		"observedMetrics": []obj{
			{"name": "a", "keys": []string{"rows", "n32", "ratio", "zero"}, "values": []obj{{"long": "42"}, {"integer": 7}, {"double": 1.5}, {"long": "0"}}},
			{"name": "b", "keys": []string{"rows", "unpaired"}, "values": []obj{{"long": "1"}}},
		},
	})
	out := &executeResponse{Observed: map[string]map[string]int64{}}
	observe(out, resp)
	want := map[string]map[string]int64{"a": {"rows": 42, "n32": 7, "zero": 0}, "b": {"rows": 1}}
	if !reflect.DeepEqual(out.Observed, want) {
		t.Errorf("observed %v, want %v", out.Observed, want)
	}
}

func TestReflectedReads_ObserveIgnoresAResponseOfNoOperation(t *testing.T) {
	resp := mustMessage(t, "ExecutePlanResponse", obj{
		"observedMetrics": []obj{{"name": "a", "keys": []string{"rows"}, "values": []obj{{"long": "42"}}}},
	})
	out := &executeResponse{Observed: map[string]map[string]int64{}}
	observe(out, resp)
	if len(out.Observed) != 0 {
		t.Errorf("observed %v from a response without an operation id", out.Observed)
	}
}

func TestReflectedReads_RunningStageNeedsAListedStage(t *testing.T) {
	cases := []struct {
		name string
		body obj
		want bool
	}{
		{"a stage", obj{"executionProgress": obj{"stages": []obj{{"stageId": "1", "numTasks": "4"}}}}, true},
		{"progress without stages", obj{"executionProgress": obj{"numInflightTasks": "0"}}, false},
		{"no progress", obj{"operationId": "op"}, false},
	}
	for _, c := range cases {
		if got := runningStage(mustMessage(t, "ExecutePlanResponse", c.body)); got != c.want {
			t.Errorf("%s: runningStage = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestReflectedReads_StampSetsTheServerSessionTheClientObserved(t *testing.T) {
	s := &Session{serverSID: "server-1"}
	for _, name := range []string{"ExecutePlanRequest", "ConfigRequest", "AnalyzePlanRequest", "InterruptRequest"} {
		req := mustMessage(t, name, obj{"sessionId": "sid"})
		s.stamp(req)
		if got := stringField(req, "client_observed_server_side_session_id"); got != "server-1" {
			t.Errorf("%s stamped with %q, want server-1", name, got)
		}
	}
}

func TestReflectedReads_TheInterceptorLearnsBothSessionIDs(t *testing.T) {
	s := &Session{log: slog.New(slog.DiscardHandler), views: map[string]bool{}}
	req := mustMessage(t, "ConfigRequest", obj{"sessionId": "client-sid"})
	reply, err := newMessage("ConfigResponse")
	if err != nil {
		t.Fatal(err)
	}
	invoker := func(_ context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		proto.Merge(reply.(proto.Message), mustMessage(t, "ConfigResponse", obj{"serverSideSessionId": "server-1"}))
		return nil
	}
	if err := s.unaryInterceptor(context.Background(), "/spark.connect.SparkConnectService/Config", req, reply, nil, invoker); err != nil {
		t.Fatal(err)
	}
	if s.sid != "client-sid" || s.serverSID != "server-1" {
		t.Errorf("session ids %q, %q; want client-sid, server-1", s.sid, s.serverSID)
	}
}

// sentStream is an ExecutePlan call that takes the request and ends.
type sentStream struct{ grpc.ClientStream }

func (sentStream) SendMsg(any) error { return nil }
func (sentStream) RecvMsg(any) error { return io.EOF }

func TestReflectedReads_AnOperationLearnsItsIDAndTheSessionID(t *testing.T) {
	s := &Session{log: slog.New(slog.DiscardHandler), views: map[string]bool{}, closed: make(chan struct{})}
	o := &operation{
		ClientStream: sentStream{},
		s:            s,
		caller:       context.Background(),
		cancel:       func() {},
		msgs:         make(chan proto.Message, 1),
		done:         make(chan struct{}),
		progressed:   make(chan struct{}),
		abandoned:    make(chan struct{}),
	}
	call := executePlanRequest("client-sid", "ann", "op-1", createDataframeView("v", namedTable("t", nil), false))
	req, err := call.message()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.SendMsg(req); err != nil {
		t.Fatal(err)
	}
	<-o.done
	s.watchers.Wait()
	if o.id != "op-1" || s.sid != "client-sid" {
		t.Errorf("operation %q in session %q; want op-1 in client-sid", o.id, s.sid)
	}
}
