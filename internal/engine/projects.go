package engine

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// Project is one tauro project the engine serves.
type Project struct {
	// Name is how requests, records and permissions name it.
	Name string
	// Dir is its folder, the one with settings_yml.json or settings_json.json.
	Dir string
	// Env is the environment a request that names none uses.
	Env string
	// CodeRoots are the folders its Python node code is imported from (its
	// workers' roots); nil means Dir. A passed check of a pipeline's
	// functions is remembered until a file of their packages there changes.
	CodeRoots []string
}

// Projects are the projects the engine serves. They may change while it
// serves (a projects file read again): the engine asks each time.
type Projects interface {
	// Lookup returns the project named. "" names the only project when
	// there is one. An unknown name, or "" among several, is a
	// problem.List on the field "project"; a project that failed to load
	// is an error wrapping ErrFailedPrecondition that says why.
	Lookup(name string) (Project, error)
	// Names are the projects served, sorted.
	Names() []string
}

// projectName is what a project may be called: it is part of CLI
// arguments (PROJECT/PIPELINE), tokens files and URLs.
var projectName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckProjectName says what is wrong with a project's name, nil if
// nothing.
func CheckProjectName(name string) error {
	if !projectName.MatchString(name) {
		return fmt.Errorf("project name %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// ProjectNameOf names a project after its folder, as `--project DIR`
// does: the folder's base name, with what a name may not hold made '-'.
func ProjectNameOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	name := []rune(filepath.Base(abs))
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '_' || r == '.' || r == '-'))
		if !ok {
			name[i] = '-'
		}
	}
	s := strings.TrimLeft(string(name), "-")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		return "default"
	}
	return s
}

// OneProject serves a single project; ProjectDir without Projects is
// this.
type OneProject Project

// Lookup implements Projects.
func (o OneProject) Lookup(name string) (Project, error) {
	if name == "" || name == o.Name {
		return Project(o), nil
	}
	return Project{}, UnknownProject(name, []string{o.Name})
}

// Names implements Projects.
func (o OneProject) Names() []string { return []string{o.Name} }

// UnknownProject is the problem of a request naming a project execd does
// not serve, or naming none among several.
func UnknownProject(name string, served []string) error {
	served = slices.Sorted(slices.Values(served))
	list := strings.Join(served, ", ")
	if len(served) == 0 {
		list = "none; add one to the projects file"
	}
	msg := fmt.Sprintf("project %q is not served here; served: %s", name, list)
	if name == "" {
		msg = fmt.Sprintf("execd serves several projects; name one in the request's project field (served: %s)", list)
	}
	return problem.List{{Field: "project", Code: problem.CodeUnknownProject, Message: msg}}
}

// project resolves a request's project.
func (e *Engine) project(name string) (Project, error) {
	return e.opt.Projects.Lookup(name)
}

// Projects are the projects the engine serves.
func (e *Engine) Projects() Projects { return e.opt.Projects }
