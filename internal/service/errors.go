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
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return withDetails(codes.NotFound, err.Error(), "NOT_FOUND")
	case errors.Is(err, engine.ErrFailedPrecondition):
		return withDetails(codes.FailedPrecondition, err.Error(), "FAILED_PRECONDITION")
	case errors.Is(err, engine.ErrUnavailable):
		return withDetails(codes.Unavailable, err.Error(), "SPARK_UNAVAILABLE")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return withDetails(codes.Internal, err.Error(), "INTERNAL")
}

func isEngineErr(err error) bool {
	_, isProblem := problem.From(err)
	return isProblem || errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrFailedPrecondition) || errors.Is(err, engine.ErrUnavailable)
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
