package service

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Every request concerns one project: the one it names, or the one of the
// run or experiment it names. The interceptors let a caller through when
// its best role anywhere is enough for the method; the handler then checks
// its role in that project.

// ProjectInfo describes a served project for ListProjects.
type ProjectInfo struct {
	Name, Folder, Env string
	Python            string
	Workers           int
	// Err is why the project does not serve, "" when it does.
	Err string
}

// ProjectCatalog describes the served projects; execd's projects file
// is one. Without one, ListProjects describes the engine's projects.
type ProjectCatalog interface {
	Describe() []ProjectInfo
}

// WithProjectCatalog makes ListProjects describe c's projects.
func (s *Service) WithProjectCatalog(c ProjectCatalog) *Service {
	s.catalog = c
	return s
}

// methodRole is the least role the call's method needs.
func methodRole(ctx context.Context) Role {
	method, _ := grpc.Method(ctx)
	return requiredRole(method)
}

// inProject resolves the project a request names ("" the only one) and
// checks the caller's role there.
func (s *Service) inProject(ctx context.Context, name string) (string, error) {
	pr, err := s.eng.Projects().Lookup(name)
	if err != nil {
		return "", toStatus(err)
	}
	if err := authorizeProject(ctx, pr.Name, methodRole(ctx), s.log); err != nil {
		return "", err
	}
	return pr.Name, nil
}

// runIn reads the run a request names, and checks that it is of the
// request's project (when it names one) and that the caller's role in its
// project is enough.
func (s *Service) runIn(ctx context.Context, id, project string) (run.Run, error) {
	r, err := s.eng.Get(ctx, id)
	if err == nil && project != "" && r.Params.Project != project {
		err = fmt.Errorf("run %q is not one of project %q: %w", id, project, engine.ErrNotFound)
	}
	if err != nil {
		return run.Run{}, toStatus(err)
	}
	if err := authorizeProject(ctx, r.Params.Project, methodRole(ctx), s.log); err != nil {
		return run.Run{}, err
	}
	return r, nil
}

// experimentIn is runIn for an experiment.
func (s *Service) experimentIn(ctx context.Context, id, project string) (experiment.Record, error) {
	x, err := s.eng.GetExperiment(ctx, id)
	if err == nil && project != "" && x.Spec.Project != project {
		err = fmt.Errorf("experiment %q is not one of project %q: %w", id, project, engine.ErrNotFound)
	}
	if err != nil {
		return experiment.Record{}, toStatus(err)
	}
	if err := authorizeProject(ctx, x.Spec.Project, methodRole(ctx), s.log); err != nil {
		return experiment.Record{}, err
	}
	return x, nil
}

// listedProjects is the projects filter of a list request: the one it
// names, else those the caller may view (nil: every one). none is true
// when the caller may view no project at all.
func (s *Service) listedProjects(ctx context.Context, name string) (projects []string, none bool, err error) {
	if name != "" {
		if err := authorizeProject(ctx, name, RoleViewer, s.log); err != nil {
			return nil, false, err
		}
		return []string{name}, false, nil
	}
	visible := visibleProjects(ctx, s.eng.Projects().Names())
	return visible, visible != nil && len(visible) == 0, nil
}

// ListProjects lists the projects the caller may view.
func (s *Service) ListProjects(ctx context.Context, _ *execv1.ListProjectsRequest) (*execv1.ListProjectsResponse, error) {
	var infos []ProjectInfo
	if s.catalog != nil {
		infos = s.catalog.Describe()
	} else {
		for _, name := range s.eng.Projects().Names() {
			info := ProjectInfo{Name: name}
			if pr, err := s.eng.Projects().Lookup(name); err != nil {
				info.Err = err.Error()
			} else {
				info.Folder, info.Env = pr.Dir, pr.Env
			}
			infos = append(infos, info)
		}
	}
	slices.SortFunc(infos, func(a, b ProjectInfo) int { return cmp.Compare(a.Name, b.Name) })
	resp := &execv1.ListProjectsResponse{}
	for _, info := range infos {
		role := roleIn(ctx, info.Name)
		if role < RoleViewer {
			continue
		}
		p := &execv1.Project{Name: info.Name, Folder: info.Folder, DefaultEnv: info.Env, State: execv1.ProjectState_PROJECT_STATE_SERVING,
			Role: roleToProto(role), Python: info.Python, Workers: int32(info.Workers)}
		if info.Err != "" {
			p.State, p.Error = execv1.ProjectState_PROJECT_STATE_BROKEN, info.Err
		}
		resp.Projects = append(resp.Projects, p)
	}
	return resp, nil
}
