package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// Message size bounds: requests are small; a run with thousands of nodes
// and their attempts can be large.
const (
	MaxRecvMsgSize = 1 << 20
	MaxSendMsgSize = 32 << 20
)

// Option configures NewServer.
type Option func(*serverOptions)

type serverOptions struct {
	creds        credentials.TransportCredentials
	authn        *authenticator
	noReflection bool
	redact       func(string) string
	outer        []grpc.ServerOption
}

// WithTLS serves over TLS with creds (mutual TLS when they verify client
// certificates).
func WithTLS(creds credentials.TransportCredentials) Option {
	return func(o *serverOptions) { o.creds = creds }
}

// WithTokens makes every call but the health service's present a bearer
// token from tokens, and checks the token's role against the method's.
func WithTokens(tokens *Tokens) Option {
	return func(o *serverOptions) { o.authn = &authenticator{tokens: tokens} }
}

// WithClientCertificates lets a verified client certificate authenticate
// its caller, as admin, when there are no tokens (WithTokens wins). The
// TLS credentials must require and verify client certificates.
func WithClientCertificates() Option {
	return func(o *serverOptions) {
		if o.authn == nil {
			o.authn = &authenticator{}
		}
	}
}

// WithReflection turns server reflection on or off; it is on by default.
// With authentication, reflection needs the viewer role.
func WithReflection(on bool) Option {
	return func(o *serverOptions) { o.noReflection = !on }
}

// WithRedaction passes every string of every response, streamed message
// and error through redact.
func WithRedaction(redact func(string) string) Option {
	return func(o *serverOptions) { o.redact = redact }
}

// WithServerOptions adds grpc server options (metrics and tracing), ahead
// of the server's own: their interceptors run outermost, so they see every
// call, also those authentication or validation refuse.
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return func(o *serverOptions) { o.outer = append(o.outer, opts...) }
}

// NewServer returns a gRPC server exposing svc, the health service (hs) and
// reflection, and the interceptors every call passes: redaction, panic
// recovery, request logging, authentication and the role check, the audit
// log of calls that change runs, and request validation from the proto's
// constraints. Without WithTokens or WithClientCertificates every caller
// may call everything.
func NewServer(svc *Service, hs *health.Server, log *slog.Logger, opts ...Option) (*grpc.Server, error) {
	var o serverOptions
	for _, f := range opts {
		f(&o)
	}
	svc.log = log
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("building the request validator: %w", err)
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Errorf(codes.Internal, "internal error: %v", p)
	})
	redact := o.redact
	if redact == nil {
		redact = func(s string) string { return s }
	}
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		fields = slices.Clone(fields)
		for i, f := range fields {
			if s, ok := f.(string); ok {
				fields[i] = redact(s)
			}
		}
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	unary := []grpc.UnaryServerInterceptor{
		unaryRedact(redact),
		recovery.UnaryServerInterceptor(recoverOpt),
		logging.UnaryServerInterceptor(logger, logOpts...),
	}
	stream := []grpc.StreamServerInterceptor{
		streamRedact(redact),
		recovery.StreamServerInterceptor(recoverOpt),
		logging.StreamServerInterceptor(logger, logOpts...),
	}
	if o.authn != nil {
		unary = append(unary, selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(o.authn.authenticate), guarded), unaryAuthorize(log))
		stream = append(stream, selector.StreamServerInterceptor(auth.StreamServerInterceptor(o.authn.authenticate), guarded), streamAuthorize(log))
	}
	unary = append(unary, unaryAudit(log), unaryValidate(validator))
	stream = append(stream, streamAudit(log), streamValidate(validator))

	sopts := append(slices.Clone(o.outer),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)
	if o.creds != nil {
		sopts = append(sopts, grpc.Creds(o.creds))
	}
	s := grpc.NewServer(sopts...)
	execv1.RegisterExecServiceServer(s, svc)
	healthpb.RegisterHealthServer(s, hs)
	if !o.noReflection {
		reflection.Register(s)
	}
	return s, nil
}

// The validation interceptors check the constraints declared in the proto
// and report every violation as a BadRequest field violation, the same
// shape as pipeline problems, so clients read one kind of detail.
func unaryValidate(v protovalidate.Validator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := validate(v, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func streamValidate(v protovalidate.Validator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &validatingStream{ServerStream: ss, v: v})
	}
}

type validatingStream struct {
	grpc.ServerStream
	v protovalidate.Validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return validate(s.v, m)
}

func validate(v protovalidate.Validator, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "unexpected message type %T", m)
	}
	err := v.Validate(msg)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return status.Errorf(codes.Internal, "validating the request: %v", err)
	}
	br := &errdetails.BadRequest{}
	for _, viol := range verr.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(viol.Proto.GetField()),
			Description: viol.Proto.GetMessage(),
			Reason:      viol.Proto.GetRuleId(),
		})
	}
	return withDetails(codes.InvalidArgument, "invalid request: "+err.Error(), "INVALID_REQUEST", br)
}
