package connect

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestReflectedFields_ExistWithTheKindsTheCodeReads(t *testing.T) {
	fields, err := reflectedFields()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if len(f.on) == 0 {
			t.Errorf("%s is used on no message", f.name)
		}
		for _, name := range f.on {
			t.Run(string(name)+"."+string(f.name), func(t *testing.T) {
				if err := checkField(name, f); err != nil {
					t.Error(err)
				}
			})
		}
	}
	if err := checkProtocol(); err != nil {
		t.Errorf("Connect would refuse this build: %v", err)
	}
}

func TestReflectedFields_ConnectRefusesAProtocolWithoutThem(t *testing.T) {
	missing := errors.New("spark.connect.ExecutePlanResponse has no field operation_id")
	defer func(check func() error) { checkProtocol = check }(checkProtocol)
	checkProtocol = func() error { return missing }
	_, err := Connect(context.Background(), "sc://127.0.0.1:1", Config{})
	var se *Error
	if !errors.As(err, &se) || se.Retryable() || !errors.Is(err, missing) {
		t.Errorf("Connect = %v, want a permanent *Error wrapping the protocol check's", err)
	}
}

// TestReflectedFields_TheCheckCatchesAMissingOrRetypedField shows the check
// is not vacuous.
func TestReflectedFields_TheCheckCatchesAMissingOrRetypedField(t *testing.T) {
	const resp = "spark.connect.ExecutePlanResponse"
	for _, f := range []reflectedField{
		{name: "operation_idd", kind: protoreflect.StringKind},
		{name: fieldOperationID, kind: protoreflect.Int64Kind},
		{name: fieldObservedMetrics, kind: protoreflect.MessageKind, list: false},
		{name: fieldExecutionProgress, kind: protoreflect.MessageKind, list: true},
	} {
		if err := checkField(resp, f); err == nil {
			t.Errorf("the check accepted %+v on %s", f, resp)
		}
	}
	if err := checkField("spark.connect.NoSuchMessage", reflectedField{name: fieldSessionID, kind: protoreflect.StringKind}); err == nil {
		t.Error("the check accepted a message the protocol lacks")
	}
}

// TestReflectedFields_CodeReadsFieldsOnlyThroughTheListedConstants keeps
// reflectedFields complete: no field is read by a name written in place, and
// every field constant is listed.
func TestReflectedFields_CodeReadsFieldsOnlyThroughTheListedConstants(t *testing.T) {
	fields, err := reflectedFields()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[protoreflect.Name]bool{}
	for _, f := range fields {
		listed[f.name] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				var name ast.Expr
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					if fn.Sel.Name == "ByName" && len(n.Args) == 1 {
						name = n.Args[0]
					}
				case *ast.Ident:
					if fn.Name == "stringField" && len(n.Args) == 2 {
						name = n.Args[1]
					}
				}
				if name != nil && hasLiteral(name) {
					t.Errorf("%s: a field read by a name written in place; add a field constant to protofields.go and list it in reflectedFields", fset.Position(n.Pos()))
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if !strings.HasPrefix(id.Name, "field") || i >= len(n.Values) {
						continue
					}
					lit, ok := n.Values[i].(*ast.BasicLit)
					if !ok {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err == nil && !listed[protoreflect.Name(v)] {
						t.Errorf("%s: %s (%q) is not listed in reflectedFields", fset.Position(id.Pos()), id.Name, v)
					}
				}
			}
			return true
		})
	}
}

func hasLiteral(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			found = true
		}
		return !found
	})
	return found
}

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
		if got := stringField(req, fieldObservedSessionID); got != "server-1" {
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
