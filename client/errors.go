package client

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinels for errors.Is: every error a call returns for one of these
// status codes matches its sentinel, whatever its concrete type.
var (
	ErrNotFound           = errors.New("not found")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
)

var sentinels = map[codes.Code]error{
	codes.NotFound:           ErrNotFound,
	codes.InvalidArgument:    ErrInvalidArgument,
	codes.PermissionDenied:   ErrPermissionDenied,
	codes.Unauthenticated:    ErrUnauthenticated,
	codes.FailedPrecondition: ErrFailedPrecondition,
	codes.Unavailable:        ErrUnavailable,
}

// StatusError is a call that execd (or gRPC) answered with an error status.
// Reason and Metadata come from the status's google.rpc.ErrorInfo, when it
// has one. INVALID_ARGUMENT and PERMISSION_DENIED come as the richer
// *InvalidArgumentError and *PermissionDeniedError, which unwrap to this.
type StatusError struct {
	Code     codes.Code
	Message  string
	Reason   string
	Metadata map[string]string
	status   *status.Status
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Code, e.Message)
	if e.Code == codes.Unavailable && strings.Contains(strings.ToLower(e.Message), "connect") {
		// gRPC's own message when nothing answers; execd's (Spark is down) differ.
		msg += " (is execd running? start it with 'execd serve --project DIR')"
	}
	return msg
}

// Is matches the sentinel of the error's code.
func (e *StatusError) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// GRPCStatus lets status.FromError and status.Code read the original status.
func (e *StatusError) GRPCStatus() *status.Status { return e.status }

// Problem is one problem validation found: where (the field path, such as
// "nodes.loop_a.dependencies"), a stable reason code, and what to fix.
type Problem struct {
	Field   string
	Reason  string
	Message string
}

func (p Problem) String() string { return fmt.Sprintf("%s [%s]: %s", p.Field, p.Reason, p.Message) }

// InvalidArgumentError is INVALID_ARGUMENT: the request or the pipeline is
// invalid. Problems lists every problem execd reported.
type InvalidArgumentError struct {
	*StatusError
	Problems []Problem
}

func (e *InvalidArgumentError) Error() string {
	if len(e.Problems) == 0 {
		return e.StatusError.Error()
	}
	lines := []string{fmt.Sprintf("%d problem(s):", len(e.Problems))}
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

func (e *InvalidArgumentError) Unwrap() error { return e.StatusError }

// PermissionDeniedError is PERMISSION_DENIED: the caller's role is too low
// for the call, in Project when the call concerns one.
type PermissionDeniedError struct {
	*StatusError
	Role         string
	RequiredRole string
	Project      string
	Method       string
}

func (e *PermissionDeniedError) Unwrap() error { return e.StatusError }

// fromStatus turns a failed call's error into the client's: the context's
// own error when the call ended because ctx did, else a *StatusError or one
// of the richer types.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	se := &StatusError{Code: st.Code(), Message: st.Message(), status: st}
	var problems []Problem
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			se.Reason, se.Metadata = d.GetReason(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				problems = append(problems, Problem{Field: v.GetField(), Reason: v.GetReason(), Message: v.GetDescription()})
			}
		}
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return &InvalidArgumentError{StatusError: se, Problems: problems}
	case codes.PermissionDenied:
		m := se.Metadata
		return &PermissionDeniedError{StatusError: se, Role: m["role"], RequiredRole: m["required_role"], Project: m["project"], Method: m["method"]}
	}
	return se
}

// NodeError is the error of a node's attempt.
type NodeError struct {
	Type      string // the Python exception class, "Timeout", ...
	Message   string
	Traceback string
	Retryable bool
}

func (e NodeError) String() string {
	s := e.Type + ": " + e.Message
	if e.Traceback != "" {
		s += "\n" + strings.TrimRight(e.Traceback, "\n")
	}
	return s
}

// NodeFailure is a node that failed for good and its last attempt's error.
type NodeFailure struct {
	Node  string
	Error NodeError
}

// RunFailedError is a run that ended in a state other than SUCCEEDED.
// Failures holds each node that failed itself (not those skipped after it).
type RunFailedError struct {
	RunID    string
	Pipeline string
	Project  string
	State    RunState
	Message  string
	Failures []NodeFailure
}

func (e *RunFailedError) Error() string {
	head := fmt.Sprintf("run %s of pipeline %s ended %s", e.RunID, e.Pipeline, runStateName(e.State))
	if e.Message != "" {
		head += ": " + e.Message
	}
	lines := []string{head}
	for _, f := range e.Failures {
		lines = append(lines, "  node "+f.Node+": "+strings.ReplaceAll(f.Error.String(), "\n", "\n    "))
	}
	return strings.Join(lines, "\n")
}

// ExperimentFailedError is an experiment that ended FAILED or CANCELLED.
type ExperimentFailedError struct {
	ExperimentID string
	Project      string
	State        ExperimentState
	Message      string
}

func (e *ExperimentFailedError) Error() string {
	return fmt.Sprintf("experiment %s ended %s: %s", e.ExperimentID, experimentStateName(e.State), e.Message)
}
