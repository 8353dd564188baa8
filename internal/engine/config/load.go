// Package config loads a tauro project folder: the settings descriptor that
// maps environments to config files, and the five files it names (global
// settings, pipelines, nodes, input, output), with ${VAR} interpolated. It
// checks the files as files (found, inside the project, parseable, mappings);
// what pipelines and nodes mean is for the planner.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// MaxFileSize bounds each config file; real ones are kilobytes, and the
// daemon must not read a hostile multi-gigabyte file into memory.
const MaxFileSize = 16 << 20

// settingsFiles are the descriptor names tauro looks for. All three are
// JSON; the name only says which format tauro's templates used for the
// other files, each of which is read by its own extension. A project must
// have exactly one.
var settingsFiles = []string{"settings_yml.json", "settings_json.json", "settings_dsl.json"}

// Roles of the five config files, and the descriptor key naming each.
const (
	RoleGlobalSettings = "global_settings"
	RolePipelines      = "pipelines"
	RoleNodes          = "nodes"
	RoleInput          = "input"
	RoleOutput         = "output"
)

var roles = []struct{ role, key, holds string }{
	{RoleGlobalSettings, "global_settings_path", "settings such as input_path and output_path"},
	{RolePipelines, "pipelines_config_path", "pipeline names"},
	{RoleNodes, "nodes_config_path", "node names"},
	{RoleInput, "input_config_path", "input names"},
	{RoleOutput, "output_config_path", "output keys"},
}

// Project is a loaded tauro project.
type Project struct {
	Dir       string            // absolute project folder
	Env       string            // normalised env requested, e.g. "dev"
	EnvUsed   string            // env whose paths were used after fallback ("base" when it fell back)
	BasePath  string            // absolute base_path
	Settings  string            // absolute path of the settings descriptor
	Files     map[string]string // role -> absolute file path: "global_settings", "pipelines", "nodes", "input", "output"
	Global    *Map              // global settings, interpolated
	Pipelines *Map              // name -> raw pipeline config (declaration order kept)
	Nodes     *Map
	Inputs    *Map
	Outputs   *Map
	// Experiments are the hyperparameter searches the project declares,
	// by name: the optional file env_config names experiments_config_path.
	// Empty when there is none.
	Experiments *Map
}

// RoleExperiments is the optional sixth file: experiments by name.
const RoleExperiments = "experiments"

// experimentsRole is how the descriptor names it.
var experimentsRole = struct{ role, key, holds string }{RoleExperiments, "experiments_config_path", "experiment names"}

// Load reads the project in dir for environment env. Environment variables
// are read from the process. Every problem found is returned together as a
// problem.List; fields read "<file>: <key>", with files relative to dir.
func Load(dir, env string) (*Project, error) {
	return load(dir, env, os.LookupEnv)
}

// LoadFrom is Load with the variables of environ: only the names it
// allows, and it remembers the values it gave.
func LoadFrom(dir, env string, environ *Environment) (*Project, error) {
	return load(dir, env, environ.Lookup)
}

func load(dir, env string, lookupEnv func(string) (string, bool)) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, problem.List{{Field: dir, Code: problem.CodePathNotFound,
			Message: fmt.Sprintf("cannot resolve the project folder: %v", err)}}
	}
	// Every file is read through an os.Root, so neither "../" nor a symbolic
	// link can take a read outside the project folder.
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, problem.List{{Field: abs, Code: problem.CodePathNotFound,
			Message: fmt.Sprintf("cannot open the project folder (%v); pass the folder that holds %s", err, settingsFiles[0])}}
	}
	defer root.Close()
	l := &loader{fsys: root.FS(), dir: abs, lookupEnv: lookupEnv}
	p := l.load(env)
	if err := l.problems.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

type loader struct {
	fsys      fs.FS
	dir       string
	lookupEnv func(string) (string, bool)
	problems  problem.List
	parsed    map[string]*Map // by relative path: one file may serve several roles
}

func (l *loader) add(field, code, format string, args ...any) {
	l.problems.Add(field, code, format, args...)
}

func (l *loader) load(requestedEnv string) *Project {
	env, envErr := NormalizeEnv(requestedEnv)
	if envErr != nil {
		p, _ := problem.From(envErr)
		l.problems = append(l.problems, p...)
	}
	settings := l.findSettings()
	if settings == "" {
		return nil
	}
	doc := l.parse(settings, "a mapping with base_path and env_config")
	if doc == nil || envErr != nil {
		return nil
	}
	base := l.basePath(settings, doc)
	envConfig, _ := doc.Get("env_config")
	envMap, ok := envConfig.(*Map)
	if !ok && envConfig != nil {
		l.add(fieldOf(settings, []any{"env_config"}), problem.CodeInvalidType,
			"must be a mapping of environment names to config file paths, found %s", describe(envConfig))
		return nil
	}
	paths, used, problems := mergeEnvPaths(envMap, env)
	for _, p := range problems {
		l.add(settings+": "+p.Field, p.Code, "%s", p.Message)
	}
	if len(problems) > 0 || base == "" {
		return nil
	}

	p := &Project{
		Dir:      l.dir,
		Env:      env,
		EnvUsed:  used,
		BasePath: filepath.Join(l.dir, base),
		Settings: filepath.Join(l.dir, settings),
		Files:    map[string]string{},
	}
	trees := map[string]*Map{}
	files := map[string]string{}
	for _, r := range roles {
		entry, ok := paths[r.key]
		if !ok {
			l.add(fieldOf(settings, []any{"env_config", used, r.key}), problem.CodeRequired,
				"no path for the %s file; add %q to env_config.base or env_config.%s", r.role, r.key, used)
			continue
		}
		field := fieldOf(settings, []any{"env_config", entry.from, r.key})
		rel, ok := l.insideProject(base, entry.path)
		if !ok {
			l.add(field, problem.CodeConfigFile,
				"%s leads outside the project folder %s; config files must be inside it, so use a path relative to base_path without '..'", quoteShort(entry.path), l.dir)
			continue
		}
		tree := l.parseConfig(rel, field, r.holds)
		if tree == nil {
			continue
		}
		trees[r.role], files[r.role] = tree, rel
		p.Files[r.role] = filepath.Join(l.dir, rel)
	}
	if entry, ok := paths[experimentsRole.key]; ok {
		field := fieldOf(settings, []any{"env_config", entry.from, experimentsRole.key})
		if rel, ok := l.insideProject(base, entry.path); !ok {
			l.add(field, problem.CodeConfigFile,
				"%s leads outside the project folder %s; config files must be inside it, so use a path relative to base_path without '..'", quoteShort(entry.path), l.dir)
		} else if tree := l.parseConfig(rel, field, experimentsRole.holds); tree != nil {
			trees[RoleExperiments], files[RoleExperiments] = tree, rel
			p.Files[RoleExperiments] = filepath.Join(l.dir, rel)
		}
	}
	// Interpolate whatever parsed, even beside other problems, so that one
	// report lists everything wrong.
	in := newInterpolator(l.lookupEnv, globalVars(trees[RoleGlobalSettings]))
	done := map[string]bool{} // a file serving two roles is expanded once
	for _, r := range append(roles, experimentsRole) {
		t := trees[r.role]
		if t == nil || done[files[r.role]] {
			continue
		}
		done[files[r.role]] = true
		if r.role == RoleGlobalSettings {
			in.interpolateGlobal(t, files[r.role], &l.problems)
		} else {
			in.interpolateTree(t, files[r.role], nil, &l.problems)
		}
	}
	p.Global = trees[RoleGlobalSettings]
	p.Pipelines = trees[RolePipelines]
	p.Nodes = trees[RoleNodes]
	p.Inputs = trees[RoleInput]
	p.Outputs = trees[RoleOutput]
	p.Experiments = trees[RoleExperiments]
	if p.Experiments == nil {
		p.Experiments = NewMap()
	}
	return p
}

// findSettings returns the name of the project's one settings descriptor.
func (l *loader) findSettings() string {
	var found []string
	for _, name := range settingsFiles {
		// Any answer but "does not exist" counts as present, so that a link
		// leading outside the project is reported as such when read.
		if _, err := fs.Stat(l.fsys, name); !errors.Is(err, fs.ErrNotExist) {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		l.add(l.dir, problem.CodePathNotFound,
			"no %s in the project folder; add one that maps each environment to its config files, e.g. {\"base_path\": \".\", \"env_config\": {\"base\": {\"nodes_config_path\": \"config/nodes.yaml\", ...}}}",
			strings.Join(settingsFiles, ", "))
		return ""
	case 1:
		return found[0]
	}
	l.add(l.dir, problem.CodeConfigFile,
		"found %s; keep exactly one settings descriptor so it is clear which one applies", strings.Join(found, " and "))
	return ""
}

// basePath returns the descriptor's base_path relative to the project
// folder ("." when absent), or "" after reporting why it cannot be used.
func (l *loader) basePath(settings string, doc *Map) string {
	raw, _ := doc.Get("base_path")
	field := fieldOf(settings, []any{"base_path"})
	s := "."
	switch v := raw.(type) {
	case nil:
	case string:
		if strings.TrimSpace(v) != "" {
			s = v
		}
	default:
		l.add(field, problem.CodeInvalidType, "must be a folder path string (usually \".\"), found %s", describe(raw))
		return ""
	}
	rel, ok := l.insideProject(".", s)
	if !ok {
		l.add(field, problem.CodeConfigFile,
			"%s leads outside the project folder %s; use \".\" or a sub-folder", quoteShort(s), l.dir)
		return ""
	}
	return rel
}

// insideProject resolves p (absolute, or relative to base) to a path
// relative to the project folder, refusing any that would leave it.
func (l *loader) insideProject(base, p string) (string, bool) {
	full := p
	if !filepath.IsAbs(p) {
		full = filepath.Join(l.dir, base, p)
	}
	rel, err := filepath.Rel(l.dir, filepath.Clean(full))
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// parseConfig reads one of the five config files; field is the descriptor
// key that named it, for a "not found" message.
func (l *loader) parseConfig(rel, field, holds string) *Map {
	if m, ok := l.parsed[rel]; ok {
		return m
	}
	switch ext := strings.ToLower(filepath.Ext(rel)); ext {
	case ".yaml", ".yml", ".json":
	case ".dsl", ".tdsl":
		l.add(field, problem.CodeConfigFile, "%s uses tauro's DSL format, which tauro-exec does not read; convert it to YAML or JSON", rel)
		return nil
	case ".py":
		l.add(field, problem.CodeConfigFile, "%s is a Python config file; tauro-exec does not run code to read configuration, so convert it to YAML or JSON", rel)
		return nil
	default:
		l.add(field, problem.CodeConfigFile, "%s has extension %s; name it .yaml, .yml or .json", rel, quoteShort(ext))
		return nil
	}
	if _, err := fs.Stat(l.fsys, rel); errors.Is(err, fs.ErrNotExist) {
		l.add(field, problem.CodePathNotFound, "%s does not exist in %s; create it or correct the path", rel, l.dir)
		return nil
	}
	m := l.parse(rel, "a mapping of "+holds)
	if m != nil {
		if l.parsed == nil {
			l.parsed = map[string]*Map{}
		}
		l.parsed[rel] = m
	}
	return m
}

// parse reads and decodes one file that must hold a mapping (an empty file
// is an empty mapping, as in tauro). It returns nil after reporting why not.
func (l *loader) parse(rel, want string) *Map {
	b, ok := l.read(rel)
	if !ok {
		return nil
	}
	v, err := Parse(b)
	if err != nil {
		l.add(rel, problem.CodeConfigFile, "cannot be parsed: %s; fix the syntax there", syntaxMessage(rel, b, err))
		return nil
	}
	switch v := v.(type) {
	case nil:
		return NewMap()
	case *Map:
		return v
	}
	l.add(rel, problem.CodeConfigFile, "must hold %s at the top level, found %s", want, describe(v))
	return nil
}

// syntaxMessage words a parse error with the best line number available.
// For a parser (not scanner) error the YAML library reports the line where
// the enclosing block or bracket starts, which can be above the mistake, so
// such lines are given as "near". JSON files are re-read with encoding/json,
// whose offset pins the exact line and column.
func syntaxMessage(rel string, b []byte, err error) string {
	if strings.EqualFold(filepath.Ext(rel), ".json") {
		var v any
		var se *json.SyntaxError
		if errors.As(json.Unmarshal(b, &v), &se) {
			line, col := lineColumn(b, se.Offset)
			return fmt.Sprintf("line %d, column %d: %v", line, col, se)
		}
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		return "near line " + rest
	}
	return strings.TrimPrefix(msg, "yaml: ")
}

// lineColumn turns a byte offset into a 1-based line and column. JSON
// syntax errors point just past the offending byte.
func lineColumn(b []byte, offset int64) (line, col int) {
	if offset > int64(len(b)) {
		offset = int64(len(b))
	}
	if offset > 0 {
		offset--
	}
	before := b[:offset]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// read returns a file's bytes, refusing more than MaxFileSize.
func (l *loader) read(rel string) ([]byte, bool) {
	f, err := l.fsys.Open(rel)
	if err != nil {
		code, msg := problem.CodeConfigFile, fmt.Sprintf("cannot be opened: %v", err)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			code, msg = problem.CodePathNotFound, "does not exist; create it or correct the path"
		case strings.Contains(err.Error(), "escapes"):
			msg = "is a link that leads outside the project folder; config files must be inside it"
		}
		l.add(rel, code, "%s", msg)
		return nil, false
	}
	defer f.Close()
	info, err := f.Stat()
	if err == nil && info.IsDir() {
		l.add(rel, problem.CodeConfigFile, "is a folder; point the settings at a .yaml or .json file")
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		l.add(rel, problem.CodeConfigFile, "cannot be read: %v", err)
		return nil, false
	}
	if len(b) > MaxFileSize {
		l.add(rel, problem.CodeTooLarge, "is larger than %d MiB; split it or remove what is not configuration", MaxFileSize>>20)
		return nil, false
	}
	return b, true
}

// fieldOf names a key inside a file: "config/nodes.yaml: transform.function".
// Keys that are not plain names (an output key such as gold.sales.daily)
// are quoted so the path stays unambiguous.
func fieldOf(file string, path []any) string {
	if len(path) == 0 {
		return file
	}
	var b strings.Builder
	b.WriteString(file)
	b.WriteString(": ")
	for i, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		case string:
			if isNameChars(p) {
				if i > 0 {
					b.WriteByte('.')
				}
				b.WriteString(p)
			} else {
				fmt.Fprintf(&b, "[%s]", quoteShort(p))
			}
		}
	}
	return b.String()
}
