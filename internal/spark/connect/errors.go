package connect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/spark-connect-go/spark/sparkerrors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed Spark operation. Its message is Spark's own, so a user
// reading it sees what the Spark documentation describes.
type Error struct {
	// Op is what was being done: "run node daily_sales", "write output x".
	Op string
	// Class is Spark's error class (TABLE_OR_VIEW_NOT_FOUND,
	// PARSE_SYNTAX_ERROR, ...) and SQLState its SQLSTATE, when Spark sent
	// them.
	Class    string
	SQLState string
	// Message is Spark's message, or the transport's.
	Message string
	// Code is the gRPC status code of the call.
	Code      codes.Code
	Err       error
	retryable bool
}

func (e *Error) Error() string { return e.Op + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether another attempt may succeed: true for a lost
// connection or an unavailable server, false for errors in the query or the
// data, which fail the same way every time.
func (e *Error) Retryable() bool { return e.retryable }

// Unreachable reports a failure to reach Spark at all: the server did not
// answer (connection refused, unavailable) or lost the session. Errors of a
// query, of the data or of the files it writes are not, however retryable:
// they say nothing about whether Spark can take work.
func (e *Error) Unreachable() bool {
	return e.Code == codes.Unavailable || errors.Is(e.Err, ErrSessionLost) || strings.HasPrefix(e.Class, "INVALID_HANDLE.SESSION")
}

// fail turns err from a Spark call into an *Error. When ctx has ended the
// context's error is returned (wrapped), since the call failed because of it.
func (s *Session) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	var own *Error
	if errors.As(err, &own) {
		return err
	}
	e := classify(err)
	e.Op = op
	s.mu.Lock()
	if strings.HasPrefix(e.Class, "INVALID_HANDLE.SESSION") {
		s.lost = true
	}
	lost := s.lost
	s.mu.Unlock()
	if lost {
		// Whatever failed, it failed on a server that no longer holds the
		// run's views: a new session may succeed.
		e.Err = fmt.Errorf("%w: %w", ErrSessionLost, err)
		e.retryable = true
	}
	return e
}

// classify reads Spark's error details out of a gRPC status.
func classify(err error) *Error {
	e := &Error{Err: err, Message: err.Error()}
	st, ok := status.FromError(err)
	if !ok {
		// spark-connect-go wraps the status in errors of its own.
		var se *sparkerrors.SparkError
		if errors.As(err, &se) {
			st = status.New(se.Code, se.Message)
			e.Class, e.SQLState = se.ErrorClass, se.SqlState
			ok = true
		}
	}
	if !ok {
		var grpcErr interface{ GRPCStatus() *status.Status }
		if errors.As(err, &grpcErr) {
			st, ok = grpcErr.GRPCStatus(), true
		}
	}
	if !ok {
		// Not a call to the server: a bad argument of ours or the caller's.
		return e
	}
	e.Code = st.Code()
	e.Message = trimPlan(st.Message())
	if se := sparkerrors.FromRPCError(st.Err()); se != nil && e.Class == "" {
		e.Class, e.SQLState = se.ErrorClass, se.SqlState
	}
	if e.Class == "" {
		e.Class = classInMessage(e.Message)
	}
	e.retryable = retryable(e)
	return e
}

// retryable decides whether an error from the server may go away.
func retryable(e *Error) bool {
	switch e.Code {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded, codes.Canceled:
		return true
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.Unauthenticated, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented:
		return false
	}
	switch {
	case strings.HasPrefix(e.Class, "INVALID_HANDLE"):
		// The server lost the session or operation: a new session helps.
		return true
	case strings.HasPrefix(e.Class, "INTERNAL_ERROR"):
		return true
	case e.SQLState != "":
		// SQLSTATE classes of trouble outside the query: connection (08),
		// transaction rollback (40), resources (53), operator intervention
		// (57), system (58) and internal (XX) errors. Everything else —
		// syntax and analysis (42), data (22), unsupported (0A) — is the
		// query's.
		switch e.SQLState[:min(2, len(e.SQLState))] {
		case "08", "40", "53", "57", "58", "XX":
			return true
		}
		return false
	case e.Class != "":
		return false
	}
	for _, permanent := range []string{"AnalysisException", "ParseException", "FileNotFoundException", "NumberFormatException"} {
		if strings.Contains(e.Message, permanent) {
			return false
		}
	}
	// Lost executors, out-of-memory, a stage that failed for a reason Spark
	// did not classify: worth another attempt.
	return true
}

// trimPlan drops the logical plan Spark appends to an analysis error: it
// shows the runner's view command, not the user's query.
func trimPlan(msg string) string {
	if i := strings.Index(msg, ";\n'"); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

// classInMessage finds "[ERROR_CLASS]" at the start of a message, for
// servers that do not send error details.
func classInMessage(msg string) string {
	if !strings.HasPrefix(msg, "[") {
		return ""
	}
	end := strings.IndexByte(msg, ']')
	if end < 2 {
		return ""
	}
	c := msg[1:end]
	if strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") != "" {
		return ""
	}
	return c
}

// permanent is an error in what the caller asked for, found before asking
// Spark.
func permanent(op, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Op: op, Message: msg, Err: errors.New(msg)}
}

// missingSourceHint says how to get a data source that ships outside Spark
// when the server lacks its jar.
var missingSourceHint = map[string]string{
	"delta": "the Spark server lacks Delta Lake: run 'make venv' for the embedded server, or add io.delta:delta-spark to the cluster's spark.jars.packages",
	"avro":  "the Spark server lacks spark-avro: run 'make venv' for the embedded server, or add org.apache.spark:spark-avro to the cluster's spark.jars.packages",
	"kafka": "the Spark server lacks Spark's Kafka connector: run 'make venv' for the embedded server, or add org.apache.spark:spark-sql-kafka-0-10 to the cluster's spark.jars (its executors need it too)",
}

// withSourceHint adds missingSourceHint to Spark's "data source not found"
// for format.
func withSourceHint(err error, format string) error {
	hint, ok := missingSourceHint[strings.ToLower(format)]
	var se *Error
	if !ok || !errors.As(err, &se) {
		return err
	}
	if se.Class != "DATA_SOURCE_NOT_FOUND" && !strings.Contains(se.Message, "Failed to find data source") {
		return err
	}
	se.Message += "; " + hint
	return err
}
