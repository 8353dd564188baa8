package connect

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The connection string itself is sparkurl's; a session adds its user and
// refuses a session id of the caller's.
func TestParseRemote_DefaultsTheUserAndRefusesASessionID(t *testing.T) {
	r, err := parseRemote("sc://h:1/;token=abc==")
	if err != nil || r.user != userID || r.Token != "abc==" || r.url != "sc://h:1/;token=abc==" {
		t.Errorf("parseRemote = %+v, %v; want user %q and the token and URL kept", r, err, userID)
	}
	if r, err := parseRemote("sc://h:1/;user_id=ann"); err != nil || r.user != "ann" {
		t.Errorf("parseRemote with user_id = %+v, %v; want user ann", r, err)
	}
	if _, err := parseRemote("sc://h/;session_id=6e5f0b5c-0000-4000-8000-000000000000;token=secret"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("parseRemote with session_id: %v; want an error that does not show the token", err)
	}
}

func sparkStatus(code codes.Code, class, sqlState, msg string) error {
	st := status.New(code, msg)
	if class != "" || sqlState != "" {
		st, _ = st.WithDetails(&errdetails.ErrorInfo{
			Reason: "org.apache.spark.sql.AnalysisException", Domain: "org.apache.spark",
			Metadata: map[string]string{"errorClass": class, "sqlState": sqlState},
		})
	}
	return st.Err()
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		retryable bool
		class     string
	}{
		{"unavailable", status.Error(codes.Unavailable, "connection refused"), true, ""},
		{"analysis", sparkStatus(codes.Internal, "TABLE_OR_VIEW_NOT_FOUND", "42P01", "[TABLE_OR_VIEW_NOT_FOUND] x"), false, "TABLE_OR_VIEW_NOT_FOUND"},
		{"parse", sparkStatus(codes.Internal, "PARSE_SYNTAX_ERROR", "42601", "[PARSE_SYNTAX_ERROR] x"), false, "PARSE_SYNTAX_ERROR"},
		{"divide by zero", sparkStatus(codes.Internal, "DIVIDE_BY_ZERO", "22012", "x"), false, "DIVIDE_BY_ZERO"},
		{"io error", sparkStatus(codes.Internal, "FAILED_TO_CREATE_PLAN", "58030", "x"), true, "FAILED_TO_CREATE_PLAN"},
		{"session gone", sparkStatus(codes.Internal, "INVALID_HANDLE.SESSION_CHANGED", "HY000", "x"), true, "INVALID_HANDLE.SESSION_CHANGED"},
		{"class in message only", status.Error(codes.Internal, "[UNRESOLVED_COLUMN.WITH_SUGGESTION] x"), false, "UNRESOLVED_COLUMN.WITH_SUGGESTION"},
		{"executor lost", status.Error(codes.Unknown, "Job aborted due to stage failure: executor lost"), true, ""},
		{"invalid plan", status.Error(codes.InvalidArgument, "bad plan"), false, ""},
		{"wrapped status", fmt.Errorf("failed to execute: %w", status.Error(codes.Unavailable, "x")), true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := classify(c.err)
			if e.Retryable() != c.retryable || e.Class != c.class {
				t.Errorf("classify = retryable %v class %q, want %v %q", e.Retryable(), e.Class, c.retryable, c.class)
			}
			if !errors.Is(e, c.err) {
				t.Error("the *Error does not wrap the original")
			}
		})
	}
}

// Only a failure to reach Spark counts against the backend breaker; a
// retryable error of the work itself (a file another writer removed, a lost
// executor) does not.
func TestClassify_OnlyTransportFailuresAreUnreachable(t *testing.T) {
	for _, c := range []struct {
		name        string
		err         error
		unreachable bool
	}{
		{"connection refused", status.Error(codes.Unavailable, "connection refused"), true},
		{"session changed", sparkStatus(codes.Internal, "INVALID_HANDLE.SESSION_CHANGED", "HY000", "x"), true},
		{"a _temporary file gone", sparkStatus(codes.Internal, "FAILED_TO_CREATE_PLAN", "58030", "java.io.FileNotFoundException: _temporary/0"), false},
		{"executor lost", status.Error(codes.Unknown, "Job aborted due to stage failure: executor lost"), false},
		{"analysis", sparkStatus(codes.Internal, "TABLE_OR_VIEW_NOT_FOUND", "42P01", "x"), false},
		{"concurrent append", sparkStatus(codes.Internal, "DELTA_CONCURRENT_APPEND", "2D521", "x"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := classify(c.err).Unreachable(); got != c.unreachable {
				t.Errorf("Unreachable() = %v, want %v", got, c.unreachable)
			}
		})
	}
}

func TestTrimPlan_DropsTheAppendedLogicalPlan(t *testing.T) {
	msg := "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `x` cannot be resolved. SQLSTATE: 42703; line 1 pos 7;\n'CreateViewCommand `v`\n+- 'Project ['x]\n"
	want := "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `x` cannot be resolved. SQLSTATE: 42703; line 1 pos 7"
	if got := trimPlan(msg); got != want {
		t.Errorf("trimPlan = %q, want %q", got, want)
	}
}

func TestLiteral(t *testing.T) {
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		in   any
		want obj
	}{
		{"2024-01-02", obj{"string": "2024-01-02"}},
		{int64(5), obj{"long": "5"}},
		{7, obj{"long": "7"}},
		{1.5, obj{"double": 1.5}},
		{true, obj{"boolean": true}},
		{day, obj{"date": int64(19724)}},
		{day.Add(time.Second), obj{"timestamp": "1704153601000000"}},
		{nil, obj{"null": obj{"null": obj{}}}},
	}
	for _, c := range cases {
		got, err := literal(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("literal(%v) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, err := literal([]string{"a"}); err == nil {
		t.Error("literal of a slice succeeded")
	}
}

func TestSession_NoticesARestartedServer(t *testing.T) {
	s := &Session{views: map[string]bool{}, log: slog.New(slog.DiscardHandler)}
	s.noteServerSession("a")
	s.noteServerSession("a")
	if err := s.check("op"); err != nil {
		t.Fatalf("check = %v before any change", err)
	}
	s.noteServerSession("b")
	err := s.check("run node x")
	var se *Error
	if !errors.As(err, &se) || !se.Retryable() || !errors.Is(err, ErrSessionLost) {
		t.Fatalf("check after a new server session = %v, want a retryable ErrSessionLost", err)
	}
}

func TestQuote(t *testing.T) {
	if got := quote("a`b.c"); got != "`a``b.c`" {
		t.Errorf("quote = %s", got)
	}
}
