package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	"github.com/tauro-exec/tauro-exec/internal/service"
)

// The projects execd serves: those a projects file (--projects) names, read
// again when it changes or on SIGHUP, or the one --project names. Each
// project has its own pool of Python workers, with its own interpreter,
// working directory, import path and worker_env, so that one project's
// modules, crash or slow node never reach another's.

// projectConf is how one project is served.
type projectConf struct {
	Name      string
	Folder    string // absolute
	Env       string
	Python    string
	Workers   int
	WorkerDir string // absolute; "" means Folder
}

// projectEntry is a project in the projects file.
type projectEntry struct {
	Folder    string `yaml:"folder"`
	Env       string `yaml:"env"`
	Python    string `yaml:"python"`
	Workers   *int   `yaml:"workers"`
	WorkerDir string `yaml:"worker_dir"`
}

var projectKeys = []string{"folder", "env", "python", "workers", "worker_dir"}

// projectDefaults are execd's flags, which a project's entry overrides.
type projectDefaults struct {
	env, python string
	workers     int
}

// parsedProject is an entry of the projects file as read: its settings, or
// why they are wrong.
type parsedProject struct {
	conf projectConf
	err  error
}

// parseProjects reads a projects file:
//
//	projects:
//	  sales:
//	    folder: ../sales        # relative to the file
//	    env: prod               # default: --env
//	    python: /opt/py/bin/python
//	    workers: 4              # default: --workers
//	    worker_dir: ../sales/run
//
// An error in the file as a whole (not YAML, no projects) is returned; an
// error in one entry is kept with that project, which is then reported
// broken while the others serve.
func parseProjects(path string, def projectDefaults) (map[string]parsedProject, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--projects: %w", err)
	}
	var doc struct {
		Projects yaml.Node `yaml:"projects"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("--projects %s: %v; want a mapping 'projects:' of NAME: {folder: DIR, ...}", path, err)
	}
	if doc.Projects.Kind != yaml.MappingNode || len(doc.Projects.Content) == 0 {
		return nil, fmt.Errorf("--projects %s: 'projects' must map each project's name to its settings ({folder: DIR}); it names none", path)
	}
	base := filepath.Dir(path)
	out := map[string]parsedProject{}
	for i := 0; i+1 < len(doc.Projects.Content); i += 2 {
		name := doc.Projects.Content[i].Value
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--projects %s: line %d: project %q is named twice", path, doc.Projects.Content[i].Line, name)
		}
		conf, err := projectFrom(name, doc.Projects.Content[i+1], base, def)
		if err != nil {
			err = fmt.Errorf("projects.%s (line %d): %w", name, doc.Projects.Content[i].Line, err)
		}
		out[name] = parsedProject{conf: conf, err: err}
	}
	return out, nil
}

// projectFrom reads one entry of the projects file.
func projectFrom(name string, node *yaml.Node, base string, def projectDefaults) (projectConf, error) {
	conf := projectConf{Name: name, Env: def.env, Python: def.python, Workers: def.workers}
	if err := engine.CheckProjectName(name); err != nil {
		return conf, err
	}
	if node.Kind != yaml.MappingNode {
		return conf, errors.New("want a mapping with at least folder: DIR")
	}
	for i := 0; i < len(node.Content); i += 2 {
		if key := node.Content[i].Value; !slices.Contains(projectKeys, key) {
			return conf, fmt.Errorf("unknown key %q; use %s", key, strings.Join(projectKeys, ", "))
		}
	}
	var e projectEntry
	if err := node.Decode(&e); err != nil {
		return conf, err
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if e.Folder == "" {
		return conf, errors.New("folder: required; the project's folder, the one with settings_yml.json or settings_json.json")
	}
	conf.Folder = abs(e.Folder)
	if e.Env != "" {
		conf.Env = e.Env
	}
	if e.Python != "" {
		conf.Python = e.Python
		if strings.ContainsRune(e.Python, filepath.Separator) {
			conf.Python = abs(e.Python)
		}
	}
	if e.Workers != nil {
		if *e.Workers < 0 || *e.Workers > 64 {
			return conf, fmt.Errorf("workers: %d; use 0 to 64", *e.Workers)
		}
		conf.Workers = *e.Workers
	}
	conf.WorkerDir = abs(e.WorkerDir)
	if st, err := os.Stat(conf.Folder); err != nil || !st.IsDir() {
		return conf, fmt.Errorf("folder: %s is not a folder", conf.Folder)
	}
	return conf, nil
}

// servedProject is a project as served now.
type servedProject struct {
	conf projectConf
	pool *pyworker.Pool // nil without workers, or broken
	err  error          // why it does not serve
}

// projectSet is what execd serves. It implements engine.Projects and
// service.ProjectCatalog, and routes each project's Python nodes to its
// pool.
type projectSet struct {
	file string // --projects; "" serves the one project of --project
	def  projectDefaults
	log  *slog.Logger
	// start starts a project's workers; nil pool when it has none.
	start func(ctx context.Context, c projectConf) (*pyworker.Pool, error)

	reload sync.Mutex // one reload at a time
	mu     sync.RWMutex
	served map[string]*servedProject
	// retiring are pools of projects removed or changed, closed once
	// their last node has returned.
	retiring sync.WaitGroup
}

// Lookup implements engine.Projects.
func (ps *projectSet) Lookup(name string) (engine.Project, error) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	sp := ps.served[name]
	if name == "" && len(ps.served) == 1 {
		for _, only := range ps.served {
			sp = only
		}
	}
	if sp == nil {
		return engine.Project{}, engine.UnknownProject(name, ps.namesLocked())
	}
	if sp.err != nil {
		return engine.Project{}, fmt.Errorf("project %q is not served: %v; fix it and save the projects file (or send execd SIGHUP): %w", sp.conf.Name, sp.err, engine.ErrFailedPrecondition)
	}
	roots := []string{sp.conf.Folder}
	if sp.conf.WorkerDir != "" {
		roots = append(roots, sp.conf.WorkerDir)
	}
	return engine.Project{Name: sp.conf.Name, Dir: sp.conf.Folder, Env: sp.conf.Env, CodeRoots: roots}, nil
}

// Names implements engine.Projects.
func (ps *projectSet) Names() []string {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.namesLocked()
}

func (ps *projectSet) namesLocked() []string {
	names := make([]string, 0, len(ps.served))
	for n := range ps.served {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Describe implements service.ProjectCatalog.
func (ps *projectSet) Describe() []service.ProjectInfo {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	var out []service.ProjectInfo
	for _, sp := range ps.served {
		info := service.ProjectInfo{Name: sp.conf.Name, Folder: sp.conf.Folder, Env: sp.conf.Env, Python: sp.conf.Python, Workers: sp.conf.Workers}
		if sp.err != nil {
			info.Err = sp.err.Error()
		}
		out = append(out, info)
	}
	return out
}

// python is the runner of project's Python nodes, nil when it has no
// workers.
func (ps *projectSet) python(project string) pycall.Runner {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	if sp := ps.served[project]; sp != nil && sp.pool != nil {
		return sp.pool
	}
	return nil
}

// Suggest implements experiment.Suggester with the first project's
// workers that has some: the optimiser is tauro-exec's own code, the same
// in every project's workers, and sees no node code.
func (ps *projectSet) Suggest(ctx context.Context, prop experiment.Proposal) (map[string]any, error) {
	ps.mu.RLock()
	var pool *pyworker.Pool
	for _, name := range ps.namesLocked() {
		if sp := ps.served[name]; sp.pool != nil {
			pool = sp.pool
			break
		}
	}
	ps.mu.RUnlock()
	if pool == nil {
		return nil, errors.New("no project has Python workers to propose trials; give one workers: 1 or more")
	}
	return pool.Suggest(ctx, prop)
}

// hasWorkers reports whether any project runs Python workers.
func (ps *projectSet) hasWorkers() bool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	for _, sp := range ps.served {
		if sp.conf.Workers > 0 {
			return true
		}
	}
	return false
}

// load is the workers' load summed over every project.
func (ps *projectSet) load() (busy, idle int) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	for _, sp := range ps.served {
		if sp.pool != nil {
			b, i := sp.pool.Load()
			busy, idle = busy+b, idle+i
		}
	}
	return busy, idle
}

// restarts counts worker restarts over every project served now.
func (ps *projectSet) restarts() uint64 {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	var n uint64
	for _, sp := range ps.served {
		if sp.pool != nil {
			n += sp.pool.Restarts()
		}
	}
	return n
}

// pool is project's worker pool, nil if none.
func (ps *projectSet) pool(project string) *pyworker.Pool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	if sp := ps.served[project]; sp != nil {
		return sp.pool
	}
	return nil
}

// apply serves want: projects new or changed are started (a changed one's
// new workers before its old ones retire), removed ones retire. A project
// whose workers fail to start is served broken; the others are unaffected.
func (ps *projectSet) apply(ctx context.Context, want map[string]parsedProject) {
	ps.mu.RLock()
	current := make(map[string]*servedProject, len(ps.served))
	for n, sp := range ps.served {
		current[n] = sp
	}
	ps.mu.RUnlock()

	next := map[string]*servedProject{}
	var retire []*servedProject
	for name, p := range want {
		old := current[name]
		if old != nil && old.err == nil && p.err == nil && reflect.DeepEqual(old.conf, p.conf) {
			next[name] = old
			continue
		}
		sp := &servedProject{conf: p.conf, err: p.err}
		if sp.err == nil {
			sp.pool, sp.err = ps.start(ctx, p.conf)
		}
		if sp.err != nil {
			ps.log.Error("project not served; the others are", "project", name, "err", sp.err)
		} else if old == nil {
			ps.log.Info("project served", "project", name, "folder", p.conf.Folder, "env", p.conf.Env, "workers", p.conf.Workers)
		} else {
			ps.log.Info("project's settings changed; its new workers serve it", "project", name)
		}
		next[name] = sp
		if old != nil {
			retire = append(retire, old)
		}
	}
	for name, old := range current {
		if _, kept := want[name]; !kept {
			ps.log.Info("project removed from the projects file; its runs stay on record", "project", name)
			retire = append(retire, old)
		}
	}
	ps.mu.Lock()
	ps.served = next
	ps.mu.Unlock()
	for _, old := range retire {
		ps.retire(old.pool)
	}
}

// retire closes a pool no project uses any more once its nodes have
// returned (at most an hour: a node still running then is cut).
func (ps *projectSet) retire(pool *pyworker.Pool) {
	if pool == nil {
		return
	}
	ps.retiring.Add(1)
	go func() {
		defer ps.retiring.Done()
		for deadline := time.Now().Add(time.Hour); time.Now().Before(deadline); time.Sleep(time.Second) {
			if busy, _ := pool.Load(); busy == 0 {
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = pool.Close(ctx)
	}()
}

// Reload reads the projects file again and serves what it says. A file
// that cannot be read changes nothing.
func (ps *projectSet) Reload(ctx context.Context) error {
	if ps.file == "" {
		return nil
	}
	ps.reload.Lock()
	defer ps.reload.Unlock()
	want, err := parseProjects(ps.file, ps.def)
	if err != nil {
		return err
	}
	ps.apply(ctx, want)
	return nil
}

// follow reloads the projects file whenever it changes, checking every
// interval.
func (ps *projectSet) follow(ctx context.Context, interval time.Duration) {
	stamp := fileStamp(ps.file)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := fileStamp(ps.file)
		if now == stamp {
			continue
		}
		stamp = now
		if err := ps.Reload(ctx); err != nil {
			ps.log.Error("projects file not reloaded; the projects read before stay served", "err", err)
			continue
		}
		ps.log.Info("projects file reloaded", "projects", strings.Join(ps.Names(), ","))
	}
}

// fileStamp changes when the file is written, replaced or removed.
func fileStamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	raw, _ := os.ReadFile(path)
	return fmt.Sprintf("%d %d %x", st.ModTime().UnixNano(), st.Size(), raw)
}

// Close stops every project's workers.
func (ps *projectSet) Close() {
	ps.mu.Lock()
	served := ps.served
	ps.served = nil
	ps.mu.Unlock()
	for _, sp := range served {
		if sp.pool != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = sp.pool.Close(ctx)
			cancel()
		}
	}
	ps.retiring.Wait()
}

// workerEnv is a project's worker_env global setting: names of execd's
// environment variables its Python workers get beyond the few every
// worker has. Names --env-allow does not allow are left out.
func workerEnv(c projectConf, environ *config.Environment, log *slog.Logger) []string {
	log = log.With("project", c.Name)
	proj, err := config.LoadFrom(c.Folder, c.Env, environ)
	if err != nil {
		log.Warn("the project does not load yet, so its worker_env is not read; its Python workers get only the base environment", "err", err)
		return nil
	}
	raw, ok := proj.Global.Get("worker_env")
	if !ok {
		return nil
	}
	list, ok := raw.([]any)
	var names []string
	for _, v := range list {
		name, isString := v.(string)
		if !isString || name == "" {
			ok = false
			break
		}
		if !environ.Allowed(name) {
			log.Warn("worker_env names a variable --env-allow does not allow; workers do not get it", "name", name)
			continue
		}
		environ.Lookup(name) // its value is hidden from clients, as a ${VAR}'s is
		names = append(names, name)
	}
	if !ok {
		log.Warn("global setting worker_env must be a list of variable names; workers get only the base environment", "found", raw)
		return nil
	}
	return names
}
