package service

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// Who may call what. Authentication (a bearer token from the tokens file,
// or a verified client certificate) names the caller; the role check
// compares the caller's role with the least role the method needs. The
// health service is open to everyone: load balancers and orchestrators
// probe it without credentials.

// methodRoles is the least role each method needs. A method not listed
// (one added later) needs admin until it is listed here.
var methodRoles = map[string]Role{
	execv1.ExecService_ValidatePipeline_FullMethodName: RoleViewer,
	execv1.ExecService_GetRun_FullMethodName:           RoleViewer,
	execv1.ExecService_ListRuns_FullMethodName:         RoleViewer,
	execv1.ExecService_WatchRun_FullMethodName:         RoleViewer,
	execv1.ExecService_ListPipelines_FullMethodName:    RoleViewer,
	execv1.ExecService_GetPipeline_FullMethodName:      RoleViewer,
	execv1.ExecService_GetCaller_FullMethodName:        RoleViewer,
	execv1.ExecService_ListReplicas_FullMethodName:     RoleViewer,
	execv1.ExecService_ListProjects_FullMethodName:     RoleViewer,
	execv1.ExecService_ExecutePipeline_FullMethodName:  RoleOperator,
	execv1.ExecService_CancelRun_FullMethodName:        RoleOperator,
	execv1.ExecService_RepairRun_FullMethodName:        RoleOperator,
	execv1.ExecService_StopRun_FullMethodName:          RoleOperator,
	execv1.ExecService_GetExperiment_FullMethodName:    RoleViewer,
	execv1.ExecService_ListExperiments_FullMethodName:  RoleViewer,
	execv1.ExecService_WatchExperiment_FullMethodName:  RoleViewer,
	execv1.ExecService_RunExperiment_FullMethodName:    RoleOperator,
	execv1.ExecService_CancelExperiment_FullMethodName: RoleOperator,
	// Reflection describes the API, which every known caller may see.
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      RoleViewer,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: RoleViewer,
}

// requiredRole is the least role method needs.
func requiredRole(method string) Role {
	if r, ok := methodRoles[method]; ok {
		return r
	}
	return RoleAdmin
}

// mutating reports a method that changes runs: its calls are audited.
func mutating(method string) bool { return !open(method) && requiredRole(method) >= RoleOperator }

// open reports a method anyone may call without credentials.
func open(method string) bool {
	return strings.HasPrefix(method, "/"+healthpb.Health_ServiceDesc.ServiceName+"/")
}

// Principal is who made a call.
type Principal struct {
	Name string
	// Role holds in every project not in Projects; RoleNone for a token
	// that reaches only the projects it names.
	Role Role
	// Projects is the role in each project the token names; nil for
	// client certificates, the anonymous caller and unscoped tokens.
	// Principals of one token share it: it is never written.
	Projects map[string]Role
}

// roleIn is the principal's role in project.
func (p Principal) roleIn(project string) Role {
	if r, ok := p.Projects[project]; ok {
		return r
	}
	return p.Role
}

// bestRole is the principal's highest role in any project.
func (p Principal) bestRole() Role {
	best := p.Role
	for _, r := range p.Projects {
		best = max(best, r)
	}
	return best
}

// anonymous is the caller of a server without authentication: execd then
// trusts whoever can reach it, as before there was authentication.
var anonymous = Principal{Name: "anonymous", Role: RoleAdmin}

type principalKey struct{}

func principalOf(ctx context.Context) Principal {
	p, _ := callerOf(ctx)
	return p
}

// callerOf is the caller and whether the server authenticated it: false
// on a server without authentication, whose callers are all anonymous.
func callerOf(ctx context.Context) (Principal, bool) {
	if p, ok := ctx.Value(principalKey{}).(Principal); ok {
		return p, true
	}
	return anonymous, false
}

// GetCaller answers from what authentication found; it reads no run.
// role is the role in every project the token does not name
// (unspecified for a token that reaches only those), projects the role in
// each it names.
func (s *Service) GetCaller(ctx context.Context, _ *execv1.GetCallerRequest) (*execv1.GetCallerResponse, error) {
	p, authenticated := callerOf(ctx)
	resp := &execv1.GetCallerResponse{Name: p.Name, Role: roleToProto(p.Role), AuthenticationRequired: authenticated}
	for _, project := range slices.Sorted(maps.Keys(p.Projects)) {
		resp.Projects = append(resp.Projects, &execv1.ProjectRole{Project: project, Role: roleToProto(p.Projects[project])})
	}
	return resp, nil
}

func roleToProto(r Role) execv1.Role {
	switch r {
	case RoleViewer:
		return execv1.Role_ROLE_VIEWER
	case RoleOperator:
		return execv1.Role_ROLE_OPERATOR
	case RoleAdmin:
		return execv1.Role_ROLE_ADMIN
	}
	return execv1.Role_ROLE_UNSPECIFIED
}

// authenticator names the caller from the call's credentials.
type authenticator struct {
	tokens *Tokens // nil: a verified client certificate names the caller
}

// authenticate is the go-grpc-middleware auth function.
func (a authenticator) authenticate(ctx context.Context) (context.Context, error) {
	if a.tokens == nil {
		name := verifiedClient(ctx)
		if name == "" {
			return nil, authError(codes.Unauthenticated, "CLIENT_CERTIFICATE_REQUIRED",
				"this server accepts only clients with a certificate its client CA signed", nil)
		}
		return context.WithValue(ctx, principalKey{}, Principal{Name: name, Role: RoleAdmin}), nil
	}
	if len(metadata.ValueFromIncomingContext(ctx, "authorization")) == 0 {
		return nil, authError(codes.Unauthenticated, "MISSING_TOKEN",
			"this server needs a bearer token (metadata 'authorization: Bearer TOKEN'; --token or TAURO_EXEC_TOKEN for the CLI and the Python client)", nil)
	}
	token, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, authError(codes.Unauthenticated, "INVALID_TOKEN", "the authorization metadata must read 'Bearer TOKEN'", nil)
	}
	p, ok := a.tokens.lookup(token)
	if !ok {
		return nil, authError(codes.Unauthenticated, "INVALID_TOKEN", "the bearer token is not one this server accepts", nil)
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// verifiedClient names the client by its verified certificate, "" if it
// has none.
func verifiedClient(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	subject := ti.State.VerifiedChains[0][0].Subject
	if subject.CommonName != "" {
		return "cert:" + subject.CommonName
	}
	return "cert:" + subject.String()
}

// authorize checks the caller's best role in any project against the
// method's; the handler then checks the role in the project the call
// concerns (authorizeProject).
func authorize(ctx context.Context, method string, log *slog.Logger) error {
	need := requiredRole(method)
	p := principalOf(ctx)
	has := p.bestRole()
	if has >= need {
		return nil
	}
	log.WarnContext(ctx, "permission denied", "method", method, "principal", p.Name, "role", has.String(), "needs", need.String())
	where := ""
	if p.Projects != nil {
		where = " in any project"
	}
	return authError(codes.PermissionDenied, "PERMISSION_DENIED",
		fmt.Sprintf("%s (role %s%s) may not call %s; it needs the %s role", p.Name, has, where, method, need),
		map[string]string{"method": method, "role": has.String(), "required_role": need.String()})
}

// guarded selects the calls that need credentials: all but the health
// service's.
var guarded = selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool { return !open(c.FullMethod()) })

// The authorization interceptors check the role of the caller that
// authentication put in the context.
func unaryAuthorize(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !open(info.FullMethod) {
			if err := authorize(ctx, info.FullMethod, log); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

func streamAuthorize(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !open(info.FullMethod) {
			if err := authorize(ss.Context(), info.FullMethod, log); err != nil {
				return err
			}
		}
		return handler(srv, ss)
	}
}

// The audit interceptors log every call that changes runs, with who made
// it, what it named and how it ended.
func unaryAudit(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !mutating(info.FullMethod) {
			return handler(ctx, req)
		}
		var err error = errPanicked // until the handler returns
		defer func() { auditLog(ctx, log, info.FullMethod, req, err) }()
		resp, err := handler(ctx, req)
		return resp, err
	}
}

func streamAudit(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !mutating(info.FullMethod) {
			return handler(srv, ss)
		}
		err := errPanicked
		defer func() { auditLog(ss.Context(), log, info.FullMethod, nil, err) }()
		err = handler(srv, ss)
		return err
	}
}

// errPanicked is what the audit records of a call whose handler panicked.
var errPanicked = status.Error(codes.Internal, "the handler panicked")

func auditLog(ctx context.Context, log *slog.Logger, method string, req any, err error) {
	p := principalOf(ctx)
	// The role that let the call through: in the project it names, if it
	// names one, else the best anywhere.
	role := p.bestRole()
	project := ""
	if r, ok := req.(interface{ GetProject() string }); ok && r.GetProject() != "" {
		project = r.GetProject()
		role = p.roleIn(project)
	}
	attrs := []any{"method", method, "principal", p.Name, "role", role.String()}
	if project != "" {
		attrs = append(attrs, "project", project)
	}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		attrs = append(attrs, "peer", pr.Addr.String())
	}
	if r, ok := req.(interface{ GetRunId() string }); ok && r.GetRunId() != "" {
		attrs = append(attrs, "run_id", r.GetRunId())
	}
	if r, ok := req.(interface{ GetExperimentId() string }); ok && r.GetExperimentId() != "" {
		attrs = append(attrs, "experiment_id", r.GetExperimentId())
	}
	if r, ok := req.(interface{ GetPipeline() string }); ok && r.GetPipeline() != "" {
		attrs = append(attrs, "pipeline", r.GetPipeline())
	}
	if r, ok := req.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
		attrs = append(attrs, "request_id", r.GetRequestId())
	}
	attrs = append(attrs, "code", status.Code(err).String())
	log.InfoContext(ctx, "audit: mutating call", attrs...)
}

// authError is an authentication or permission error with its ErrorInfo.
func authError(c codes.Code, reason, msg string, meta map[string]string) error {
	st, err := status.New(c, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: meta})
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}
