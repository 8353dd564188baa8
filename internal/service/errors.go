package service

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// errorDomain is the ErrorInfo domain of every error execd returns.
const errorDomain = "tauro-exec"

// toStatus is the one place engine errors become gRPC statuses. Problems with
// the input become INVALID_ARGUMENT carrying every problem as a BadRequest
// field violation (reason = the problem's stable code).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isEngineErr(err) {
		return err
	}
	if probs, ok := problem.From(err); ok {
		br := &errdetails.BadRequest{}
		for _, p := range probs {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field:       p.Field,
				Description: p.Message,
				Reason:      p.Code,
			})
		}
		return withDetails(codes.InvalidArgument, err.Error(), "INVALID_PIPELINE", br)
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			if k.reason == "" {
				return status.Error(k.code, err.Error())
			}
			return withDetails(k.code, err.Error(), k.reason)
		}
	}
	return withDetails(codes.Internal, err.Error(), "INTERNAL")
}

// errorKinds is the one list of engine errors and their status codes, in
// the order they are matched; ErrorInfo.reason is "" for the context
// errors, which carry no details.
var errorKinds = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{engine.ErrNotFound, codes.NotFound, "NOT_FOUND"},
	{engine.ErrFailedPrecondition, codes.FailedPrecondition, "FAILED_PRECONDITION"},
	{engine.ErrUnavailable, codes.Unavailable, "SPARK_UNAVAILABLE"},
	// What the store refuses reaches here through the engine unchanged.
	{store.ErrNotFound, codes.NotFound, "NOT_FOUND"},
	{store.ErrInvalidArgument, codes.InvalidArgument, "INVALID_ARGUMENT"},
	{store.ErrBadPageToken, codes.InvalidArgument, "INVALID_ARGUMENT"},
	{store.ErrAlreadyExists, codes.AlreadyExists, "ALREADY_EXISTS"},
	{store.ErrNotRepairable, codes.FailedPrecondition, "FAILED_PRECONDITION"},
	{store.ErrRunEnded, codes.FailedPrecondition, "FAILED_PRECONDITION"},
	{store.ErrTooManyEvents, codes.ResourceExhausted, "RESOURCE_EXHAUSTED"},
	{store.ErrClosed, codes.Unavailable, "UNAVAILABLE"},
	{context.Canceled, codes.Canceled, ""},
	{context.DeadlineExceeded, codes.DeadlineExceeded, ""},
}

// isEngineErr reports an error the engine made, even when it also carries a
// gRPC status (a backend's error wrapped by the engine, say).
func isEngineErr(err error) bool {
	if _, isProblem := problem.From(err); isProblem {
		return true
	}
	for _, k := range errorKinds {
		if k.reason != "" && errors.Is(err, k.err) {
			return true
		}
	}
	return false
}

func withDetails(c codes.Code, msg, reason string, extra ...protoadapt.MessageV1) error {
	st := status.New(c, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}}, extra...)
	withD, err := st.WithDetails(details...)
	if err != nil {
		return st.Err()
	}
	return withD.Err()
}
