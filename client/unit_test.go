package client

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestLoopback_TellsThisMachineFromAnother(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:50051": true, "localhost:50051": true, "[::1]:50051": true, "dns:///localhost:50051": true,
		"::1": true, "execd.example.com:50051": false, "10.0.0.7:50051": false, "dns:///execd:50051": false,
	} {
		if got := loopback(target); got != want {
			t.Errorf("loopback(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestDialOptions_ATokenToAnotherMachineGoesOverTLS(t *testing.T) {
	for target, wantTLS := range map[string]bool{"127.0.0.1:50051": false, "execd.example.com:50051": true} {
		cfg := config{token: staticToken("t")}
		cfg.dialOptions(target)
		if got := cfg.tls != nil; got != wantTLS {
			t.Errorf("a token to %s: TLS %v, want %v", target, got, wantTLS)
		}
	}
	cfg := config{}
	cfg.dialOptions("execd.example.com:50051")
	if cfg.tls != nil {
		t.Error("no token and no TLS option, yet TLS: the caller did not ask for it")
	}
}

func TestBearer_ATokenSourceThatFailsIsUnauthenticatedNotRetried(t *testing.T) {
	b := bearer{src: func(context.Context) (string, error) { return "", errors.New("vault sealed") }}
	_, err := b.GetRequestMetadata(context.Background())
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("a failing token source gives %v, want UNAUTHENTICATED", err)
	}
}

func TestFromStatus_MapsCodesAndDetailsToTypedErrors(t *testing.T) {
	st, _ := status.New(codes.PermissionDenied, "v may not").WithDetails(&errdetails.ErrorInfo{
		Reason: "PERMISSION_DENIED", Metadata: map[string]string{"role": "viewer", "required_role": "operator", "project": "sales"}})
	err := fromStatus(st.Err())
	var denied *PermissionDeniedError
	var se *StatusError
	if !errors.As(err, &denied) || !errors.As(err, &se) || !errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrNotFound) {
		t.Fatalf("PERMISSION_DENIED became %T %v", err, err)
	}
	if denied.Role != "viewer" || denied.RequiredRole != "operator" || denied.Project != "sales" || se.Reason != "PERMISSION_DENIED" {
		t.Errorf("lost the ErrorInfo: %+v %+v", denied, se)
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("status.Code reads %v from the typed error", status.Code(err))
	}

	st, _ = status.New(codes.InvalidArgument, "2 problems").WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "nodes.a.dependencies", Reason: "CYCLE", Description: "a -> b -> a"},
		{Field: "nodes.c.output", Reason: "INVALID_OUTPUT_KEY", Description: "bad key"},
	}})
	var invalid *InvalidArgumentError
	if err := fromStatus(st.Err()); !errors.As(err, &invalid) || len(invalid.Problems) != 2 || invalid.Problems[0].Field != "nodes.a.dependencies" {
		t.Errorf("INVALID_ARGUMENT became %T %v", err, err)
	}

	for c, sentinel := range map[codes.Code]error{codes.NotFound: ErrNotFound, codes.Unauthenticated: ErrUnauthenticated,
		codes.FailedPrecondition: ErrFailedPrecondition, codes.Unavailable: ErrUnavailable} {
		if err := fromStatus(status.Error(c, "x")); !errors.Is(err, sentinel) {
			t.Errorf("%v does not match its sentinel: %v", c, err)
		}
	}
}
