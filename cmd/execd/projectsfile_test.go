package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
)

func TestProjectsFile_EachEntryIsReadOrKeepsItsOwnErrorAndTheFileAsAWholeMustParse(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	def := projectDefaults{env: "dev", python: "/usr/bin/python3", workers: 2}
	write := func(body string) string {
		path := filepath.Join(dir, "projects.yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	got, err := parseProjects(write(`projects:
  a: {folder: a}
  b: {folder: b, env: prod, python: venv/bin/python, workers: 0, worker_dir: b/run}
  c: {folder: missing}
  d: {folder: a, workers: 99}
  e: {folder: a, envs: prod}
  "no spaces": {folder: a}
  f: [a]
  g: {env: prod}
`), def)
	if err != nil {
		t.Fatal(err)
	}
	a, b := got["a"].conf, got["b"].conf
	if got["a"].err != nil || a.Folder != filepath.Join(dir, "a") || a.Env != "dev" || a.Workers != 2 || a.Python != "/usr/bin/python3" {
		t.Errorf("a takes execd's defaults: %+v %v", a, got["a"].err)
	}
	if got["b"].err != nil || b.Env != "prod" || b.Workers != 0 || b.Python != filepath.Join(dir, "venv/bin/python") || b.WorkerDir != filepath.Join(dir, "b/run") {
		t.Errorf("b overrides them, paths relative to the file: %+v %v", b, got["b"].err)
	}
	for name, want := range map[string]string{
		"c":         "folder: " + filepath.Join(dir, "missing") + " is not a folder",
		"d":         "workers: 99; use 0 to 64",
		"e":         `unknown key "envs"; use folder, env, python, workers, worker_dir`,
		"no spaces": `project name "no spaces"`,
		"f":         "want a mapping",
		"g":         "folder: required",
	} {
		if err := got[name].err; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "projects."+name+" (line ") {
			t.Errorf("%s: %v, want its field path and %q", name, err, want)
		}
	}

	for body, want := range map[string]string{
		"projects: {a: {folder: a}, a: {folder: b}}": `project "a" is named twice`,
		"projcts: {a: {folder: a}}":                  "field projcts not found",
		"projects: {}":                               "it names none",
		"projects: [a, b]":                           "it names none",
		"projects: {a: {folder: a}":                  "did not find expected",
	} {
		if _, err := parseProjects(write(body), def); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

// The demo's projects file serves both examples.
func TestProjectsFile_TheExamplesFileNamesBothExamplesWhichLoad(t *testing.T) {
	got, err := parseProjects(filepath.Join("..", "..", "examples", "projects.yaml"), projectDefaults{env: "dev", workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["hybrid"].conf.Workers != 0 || got["sales"].conf.Workers != 2 {
		t.Fatalf("examples/projects.yaml: %+v", got)
	}
	for name, p := range got {
		if p.err != nil {
			t.Fatalf("%s: %v", name, p.err)
		}
		if _, err := config.Load(p.conf.Folder, p.conf.Env); err != nil {
			t.Errorf("%s does not load: %v", name, err)
		}
	}
}
