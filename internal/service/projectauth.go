package service

import (
	"context"
	"log/slog"
)

// Permissions per project. A token's role may differ per project (a
// viewer of one, an operator of another); the interceptors check the
// least role a method needs against the caller's best role anywhere, and
// each handler then checks the role in the project the call concerns.

// authorizeProject checks the caller's role in project against need; the
// error is PERMISSION_DENIED naming the project and the role needed.
func authorizeProject(ctx context.Context, project string, need Role, log *slog.Logger) error {
	// TODO(projects): per-project roles.
	return nil
}

// visibleProjects is the subset of projects the caller may view; nil
// when it may view them all.
func visibleProjects(ctx context.Context, projects []string) []string {
	// TODO(projects): per-project roles.
	return nil
}

// roleIn is the caller's role in project.
func roleIn(ctx context.Context, project string) Role {
	// TODO(projects): per-project roles.
	return principalOf(ctx).Role
}
