package service

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Permissions per project. A token's role may differ per project (a
// viewer of one, an operator of another); the interceptors check the
// least role a method needs against the caller's best role anywhere, and
// each handler then checks the role in the project the call concerns.

// authorizeProject checks the caller's role in project against need; the
// error is PERMISSION_DENIED naming the project and the role needed.
func authorizeProject(ctx context.Context, project string, need Role, log *slog.Logger) error {
	p := principalOf(ctx)
	has := p.roleIn(project)
	if has >= need {
		return nil
	}
	meta := map[string]string{"role": has.String(), "required_role": need.String(), "project": project}
	what := "do this"
	if method, ok := grpc.Method(ctx); ok {
		meta["method"] = method
		what = "call " + method
	}
	log.WarnContext(ctx, "permission denied", "method", meta["method"], "principal", p.Name, "project", project, "role", has.String(), "needs", need.String())
	msg := fmt.Sprintf("%s (role %s in project %s) may not %s in project %s; it needs the %s role", p.Name, has, project, what, project, need)
	if has == RoleNone {
		msg = fmt.Sprintf("%s has no access to project %s; it needs the %s role there", p.Name, project, need)
	}
	return authError(codes.PermissionDenied, "PERMISSION_DENIED", msg, meta)
}

// visibleProjects is the subset of projects the caller may view; nil
// when it may view every project, these and any other (an unscoped
// token, a client certificate, the anonymous caller), so nil means no
// filter. A caller that may view none of them gets an empty, non-nil
// slice.
func visibleProjects(ctx context.Context, projects []string) []string {
	p := principalOf(ctx)
	// Roles in projects are at least viewer, so Role decides for all.
	if p.Role >= RoleViewer {
		return nil
	}
	visible := []string{}
	for _, project := range projects {
		if p.roleIn(project) >= RoleViewer {
			visible = append(visible, project)
		}
	}
	return visible
}

// roleIn is the caller's role in project; RoleNone when it has no access.
func roleIn(ctx context.Context, project string) Role {
	return principalOf(ctx).roleIn(project)
}
