package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// writeProject writes files (path relative to a new temp folder -> content)
// and returns the folder.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const validSettings = `{
  "base_path": ".",
  "env_config": {
    "base": {
      "global_settings_path": "config/global_settings.yaml",
      "pipelines_config_path": "config/pipelines.yaml",
      "nodes_config_path": "config/nodes.yaml",
      "input_config_path": "config/input.yaml",
      "output_config_path": "config/output.yaml"
    }
  }
}`

// validProject is a small correct project; tests change one thing in it.
func validProject() map[string]string {
	return map[string]string{
		"settings_yml.json":           validSettings,
		"config/global_settings.yaml": "input_path: /in\noutput_path: /out\nmode: local\n",
		"config/pipelines.yaml":       "daily:\n  type: batch\n  nodes: [a]\n",
		"config/nodes.yaml":           "a:\n  sql: SELECT 1\n",
		"config/input.yaml":           "src:\n  format: csv\n  filepath: ${input_path}/src.csv\n",
		"config/output.yaml":          "gold.sales.daily:\n  format: parquet\n",
	}
}

// settingsWith is validSettings with one base path replaced.
func settingsWith(key, value string) string {
	old := `"` + key + `": "` + map[string]string{
		"global_settings_path":  "config/global_settings.yaml",
		"pipelines_config_path": "config/pipelines.yaml",
		"nodes_config_path":     "config/nodes.yaml",
		"input_config_path":     "config/input.yaml",
		"output_config_path":    "config/output.yaml",
	}[key] + `"`
	return strings.Replace(validSettings, old, `"`+key+`": `+value, 1)
}

// lookupFrom is an environment holding only vars.
func lookupFrom(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// at walks a loaded tree by keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(*Map)
			if !ok {
				t.Fatalf("at %v: %v is not a mapping", path, v)
			}
			v, ok = m.Get(p)
			if !ok {
				t.Fatalf("at %v: no key %q", path, p)
			}
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				t.Fatalf("at %v: no index %d in %v", path, p, v)
			}
			v = l[p]
		}
	}
	return v
}

func mustLoad(t *testing.T, dir, env string, lookup func(string) (string, bool)) *Project {
	t.Helper()
	p, err := load(dir, env, lookup)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p
}

func TestLoad_ReadsYAMLProjectWithDevOverridingBaseInputPath(t *testing.T) {
	p := mustLoad(t, "testdata/yaml_project", "Development", lookupFrom(nil))
	abs, _ := filepath.Abs("testdata/yaml_project")
	if p.Dir != abs || p.BasePath != abs || p.Settings != filepath.Join(abs, "settings_yml.json") {
		t.Errorf("Dir=%q BasePath=%q Settings=%q, want %q", p.Dir, p.BasePath, p.Settings, abs)
	}
	if p.Env != "dev" || p.EnvUsed != "dev" {
		t.Errorf("Env=%q EnvUsed=%q, want dev/dev", p.Env, p.EnvUsed)
	}
	wantFiles := map[string]string{
		RoleGlobalSettings: "config/global_settings.yaml",
		RolePipelines:      "config/pipelines.yaml",
		RoleNodes:          "config/nodes.yaml",
		RoleInput:          "config/dev/input.yaml",
		RoleOutput:         "config/output.yaml",
	}
	for role, rel := range wantFiles {
		if got, want := p.Files[role], filepath.Join(abs, rel); got != want {
			t.Errorf("Files[%s] = %q, want %q", role, got, want)
		}
	}
	if got := at(t, p.Inputs, "orders", "filepath"); got != "/lake/raw/dev/orders_sample.csv" {
		t.Errorf("orders.filepath = %v", got)
	}
	if got := at(t, p.Global, "output_path"); got != "/lake/curated" {
		t.Errorf("output_path = %v", got)
	}
	if got := at(t, p.Global, "max_parallel_nodes"); got != int64(2) {
		t.Errorf("max_parallel_nodes = %#v, want int64(2)", got)
	}
	if !slices.Equal(p.Pipelines.Keys, []string{"load", "report"}) {
		t.Errorf("pipelines in order %v, want [load report]", p.Pipelines.Keys)
	}
	if got := at(t, p.Outputs, "gold.sales.daily", "format"); got != "parquet" {
		t.Errorf("output format = %v", got)
	}
}

func TestLoad_BaseEnvironmentReadsBasePaths(t *testing.T) {
	p := mustLoad(t, "testdata/yaml_project", "base", lookupFrom(nil))
	if got := at(t, p.Inputs, "orders", "filepath"); got != "/lake/raw/orders.csv" {
		t.Errorf("orders.filepath = %v, want base's", got)
	}
}

func TestLoad_EnvironmentMissingFromSettingsFallsBackToBase(t *testing.T) {
	p := mustLoad(t, "testdata/yaml_project", "production", lookupFrom(nil))
	if p.Env != "prod" || p.EnvUsed != "base" {
		t.Errorf("Env=%q EnvUsed=%q, want prod/base", p.Env, p.EnvUsed)
	}
	if got := p.Files[RoleInput]; !strings.HasSuffix(got, "config/input.yaml") {
		t.Errorf("input file %q, want base's config/input.yaml", got)
	}
}

func TestLoad_ReadsJSONProjectWithFilesRelativeToBasePath(t *testing.T) {
	p := mustLoad(t, "testdata/json_project", "dev", lookupFrom(nil))
	abs, _ := filepath.Abs("testdata/json_project")
	if p.BasePath != filepath.Join(abs, "config") || p.EnvUsed != "base" {
		t.Errorf("BasePath=%q EnvUsed=%q", p.BasePath, p.EnvUsed)
	}
	if got, want := p.Files[RoleNodes], filepath.Join(abs, "config", "nodes.json"); got != want {
		t.Errorf("nodes file %q, want %q", got, want)
	}
	if !slices.Equal(p.Nodes.Keys, []string{"extract", "transform"}) {
		t.Errorf("nodes in order %v, want declaration order", p.Nodes.Keys)
	}
	if got := at(t, p.Inputs, "orders", "filepath"); got != "/data/in/orders.json" {
		t.Errorf("orders.filepath = %v", got)
	}
	if got := at(t, p.Nodes, "transform", "dependencies", 0); got != "extract" {
		t.Errorf("transform.dependencies[0] = %v", got)
	}
	if _, err := ParseOutputKey(p.Outputs.Keys[0]); err != nil {
		t.Errorf("output key %q: %v", p.Outputs.Keys[0], err)
	}
}

func TestLoad_ProcessEnvironmentVariableWinsOverGlobalSetting(t *testing.T) {
	t.Setenv("input_path", "/from/env")
	p, err := Load("testdata/yaml_project", "base")
	if err != nil {
		t.Fatal(err)
	}
	if got := at(t, p.Inputs, "orders", "filepath"); got != "/from/env/orders.csv" {
		t.Errorf("orders.filepath = %v, want the environment's input_path", got)
	}
}

func TestLoad_InterpolatesEveryStringOfEveryFile(t *testing.T) {
	files := validProject()
	files["config/global_settings.yaml"] = "root: /lake\ninput_path: ${root}/in\nlayer: silver\nretries: 3\nspark_config:\n  spark.sql.shuffle.partitions: ${retries}\n"
	files["config/pipelines.yaml"] = "daily:\n  nodes: [a]\n  description: ${layer} for ${TEAM}\n"
	files["config/nodes.yaml"] = "a:\n  sql: SELECT * FROM ${layer}_orders WHERE team = '${TEAM}'\n  hyperparams: {path: [x, '${input_path}']}\n"
	files["config/output.yaml"] = "gold.sales.daily:\n  options: {path: '${UNSET}/x'}\n"
	p := mustLoad(t, writeProject(t, files), "base", lookupFrom(map[string]string{"TEAM": "ops"}))

	for _, c := range []struct {
		name string
		got  any
		want string
	}{
		{"global refers to global", at(t, p.Global, "input_path"), "/lake/in"},
		{"nested global value", at(t, p.Global, "spark_config", "spark.sql.shuffle.partitions"), "3"},
		{"pipeline from global and env", at(t, p.Pipelines, "daily", "description"), "silver for ops"},
		{"node SQL", at(t, p.Nodes, "a", "sql"), "SELECT * FROM silver_orders WHERE team = 'ops'"},
		{"inside a list", at(t, p.Nodes, "a", "hyperparams", "path", 1), "/lake/in"},
		{"input path", at(t, p.Inputs, "src", "filepath"), "/lake/in/src.csv"},
		{"unknown name kept", at(t, p.Outputs, "gold.sales.daily", "options", "path"), "${UNSET}/x"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %q", c.name, c.got, c.want)
		}
	}
}

func TestLoad_FileServingTwoRolesIsExpandedOnceAndEnvValuesAreLiteral(t *testing.T) {
	files := validProject()
	files["settings_yml.json"] = strings.Replace(settingsWith("output_config_path", `"config/io.yaml"`),
		`"config/input.yaml"`, `"config/io.yaml"`, 1)
	files["config/io.yaml"] = "src:\n  filepath: ${SRC}\n"
	p := mustLoad(t, writeProject(t, files), "base", lookupFrom(map[string]string{"SRC": "${input_path}"}))
	if got := at(t, p.Inputs, "src", "filepath"); got != "${input_path}" {
		t.Errorf("filepath = %v, want the environment value as written", got)
	}
	if p.Files[RoleInput] != p.Files[RoleOutput] {
		t.Errorf("input and output files differ: %v", p.Files)
	}
}

func TestLoad_EmptyFileIsAnEmptyMapping(t *testing.T) {
	files := validProject()
	files["config/output.yaml"] = ""
	p := mustLoad(t, writeProject(t, files), "base", lookupFrom(nil))
	if p.Outputs == nil || p.Outputs.Len() != 0 {
		t.Errorf("Outputs = %#v, want an empty mapping", p.Outputs)
	}
}

// wantProblem matches one reported problem; an empty field matches any.
type wantProblem struct{ field, code, text string }

func checkProblems(t *testing.T, err error, want []wantProblem) {
	t.Helper()
	if err == nil {
		t.Fatalf("load succeeded, want problems %v", want)
	}
	got, ok := problem.From(err)
	if !ok {
		t.Fatalf("error %v (%T) carries no problem.List", err, err)
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.ReplaceAll(got.Error(), "; ", "\n"))
	}
	for _, w := range want {
		found := slices.ContainsFunc(got, func(p problem.Problem) bool {
			return (w.field == "" || p.Field == w.field) && p.Code == w.code &&
				strings.Contains(strings.ToLower(p.Message), strings.ToLower(w.text))
		})
		if !found {
			t.Errorf("no problem {field %q, code %s, message containing %q} in:\n%s", w.field, w.code, w.text,
				strings.ReplaceAll(got.Error(), "; ", "\n"))
		}
	}
}

func TestLoad_ReportsBadProjectsWithFileKeyAndFix(t *testing.T) {
	tests := []struct {
		name   string
		env    string
		files  map[string]string // laid over validProject
		remove []string
		want   []wantProblem
	}{
		{
			name:   "missing config file names the settings file, the key and the path",
			remove: []string{"config/nodes.yaml"},
			want: []wantProblem{{"settings_yml.json: env_config.base.nodes_config_path", problem.CodePathNotFound,
				"config/nodes.yaml does not exist"}},
		},
		{
			name:  "YAML syntax error keeps its line number",
			files: map[string]string{"config/nodes.yaml": "a:\n  sql: SELECT 1\nb:\n\tsql: SELECT 2\n"},
			want:  []wantProblem{{"config/nodes.yaml", problem.CodeConfigFile, "line 4: found character that cannot start any token"}},
		},
		{
			name:  "YAML structure error gives the line of the enclosing block",
			files: map[string]string{"config/nodes.yaml": "a:\n  sql: SELECT 1\n b: 2\n"},
			want:  []wantProblem{{"config/nodes.yaml", problem.CodeConfigFile, "near line 2: did not find expected key"}},
		},
		{
			name:  "JSON syntax error in the descriptor gives exact line and column",
			files: map[string]string{"settings_yml.json": "{\n  \"base_path\": \".\",\n  \"env_config\": ]\n}"},
			want:  []wantProblem{{"settings_yml.json", problem.CodeConfigFile, "line 3, column 17: invalid character ']'"}},
		},
		{
			name:  "relative path climbing out of the project is refused",
			files: map[string]string{"settings_yml.json": settingsWith("nodes_config_path", `"../../etc/nodes.yaml"`)},
			want: []wantProblem{{"settings_yml.json: env_config.base.nodes_config_path", problem.CodeConfigFile,
				"outside the project folder"}},
		},
		{
			name:  "absolute path outside the project is refused",
			files: map[string]string{"settings_yml.json": settingsWith("nodes_config_path", `"/etc/passwd.yaml"`)},
			want: []wantProblem{{"settings_yml.json: env_config.base.nodes_config_path", problem.CodeConfigFile,
				"outside the project folder"}},
		},
		{
			name:  "base_path outside the project is refused",
			files: map[string]string{"settings_yml.json": strings.Replace(validSettings, `"base_path": "."`, `"base_path": "../.."`, 1)},
			want:  []wantProblem{{"settings_yml.json: base_path", problem.CodeConfigFile, "outside the project folder"}},
		},
		{
			name:  "circular global settings are reported at each value",
			files: map[string]string{"config/global_settings.yaml": "a: ${b}\nb: ${a}\n"},
			want: []wantProblem{
				{"config/global_settings.yaml: a", problem.CodeInterpolation, "circular reference ${a} -> ${b} -> ${a}"},
				{"config/global_settings.yaml: b", problem.CodeInterpolation, "circular reference ${b} -> ${a} -> ${b}"},
			},
		},
		{
			name:  "cycle reached from a nested value is reported at that value",
			files: map[string]string{"config/global_settings.yaml": "a: ${a}\n", "config/input.yaml": "src:\n  options: [{path: '${a}'}]\n"},
			want: []wantProblem{
				{"config/global_settings.yaml: a", problem.CodeInterpolation, "circular"},
				{"config/input.yaml: src.options[0].path", problem.CodeInterpolation, "circular"},
			},
		},
		{
			name: "unknown environment is refused rather than falling back",
			env:  "prdo",
			want: []wantProblem{{"settings_yml.json: env_config", problem.CodeEnvironment, `unknown environment "prdo"`}},
		},
		{
			name: "blank environment is refused",
			env:  "   ",
			want: []wantProblem{{"env", problem.CodeEnvironment, "environment is required"}},
		},
		{
			name:  "environment without base to fall back on is refused",
			env:   "dev",
			files: map[string]string{"settings_yml.json": strings.Replace(validSettings, `"base"`, `"prod"`, 1)},
			want:  []wantProblem{{"settings_yml.json: env_config", problem.CodeEnvironment, "no \"base\" entry"}},
		},
		{
			name:  "missing path key says where to add it",
			files: map[string]string{"settings_yml.json": settingsWith("output_config_path", "null")},
			want: []wantProblem{{"settings_yml.json: env_config.base.output_config_path", problem.CodeRequired,
				`add "output_config_path" to env_config.base`}},
		},
		{
			name:  "path that is not a string is refused",
			files: map[string]string{"settings_yml.json": settingsWith("nodes_config_path", "5")},
			want: []wantProblem{{"settings_yml.json: env_config.base.nodes_config_path", problem.CodeInvalidType,
				"must be a file path string"}},
		},
		{
			name:  "env_config entry that is not a mapping is refused",
			env:   "dev",
			files: map[string]string{"settings_yml.json": strings.Replace(validSettings, `"env_config": {`, `"env_config": {"dev": "config",`, 1)},
			want:  []wantProblem{{"settings_yml.json: env_config.dev", problem.CodeInvalidType, "must be a mapping"}},
		},
		{
			name:  "descriptor without env_config is refused",
			files: map[string]string{"settings_yml.json": `{"base_path": "."}`},
			want:  []wantProblem{{"settings_yml.json: env_config", problem.CodeConfigFile, "env_config is missing"}},
		},
		{
			name:   "project without a settings descriptor is refused",
			remove: []string{"settings_yml.json"},
			want:   []wantProblem{{"", problem.CodePathNotFound, "no settings_yml.json, settings_json.json, settings_dsl.json"}},
		},
		{
			name:  "two settings descriptors are ambiguous",
			files: map[string]string{"settings_json.json": validSettings},
			want:  []wantProblem{{"", problem.CodeConfigFile, "found settings_yml.json and settings_json.json"}},
		},
		{
			name:  "config file holding a list is refused",
			files: map[string]string{"config/pipelines.yaml": "- a\n- b\n"},
			want:  []wantProblem{{"config/pipelines.yaml", problem.CodeConfigFile, "must hold a mapping of pipeline names"}},
		},
		{
			name:  "a key written twice is refused with its line",
			files: map[string]string{"config/nodes.yaml": "a:\n  sql: SELECT 1\na:\n  sql: SELECT 2\n"},
			want:  []wantProblem{{"config/nodes.yaml", problem.CodeConfigFile, `line 3: key "a" appears twice`}},
		},
		{
			name: "unknown extension is refused",
			files: map[string]string{"settings_yml.json": settingsWith("nodes_config_path", `"config/nodes.txt"`),
				"config/nodes.txt": "a: {}\n"},
			want: []wantProblem{{"settings_yml.json: env_config.base.nodes_config_path", problem.CodeConfigFile, "name it .yaml, .yml or .json"}},
		},
		{
			name: "tauro DSL file is refused with the way out",
			files: map[string]string{"settings_yml.json": settingsWith("nodes_config_path", `"config/nodes.dsl"`),
				"config/nodes.dsl": "[a]\nsql = SELECT 1\n"},
			want: []wantProblem{{"settings_yml.json: env_config.base.nodes_config_path", problem.CodeConfigFile, "convert it to YAML or JSON"}},
		},
		{
			name:  "folder in place of a file is refused",
			files: map[string]string{"settings_yml.json": settingsWith("nodes_config_path", `"config/dir.yaml"`), "config/dir.yaml/x": ""},
			want:  []wantProblem{{"config/dir.yaml", problem.CodeConfigFile, "is a folder"}},
		},
		{
			name: "problems in several files are reported together",
			files: map[string]string{
				"settings_yml.json":           settingsWith("output_config_path", `"../out.yaml"`),
				"config/nodes.yaml":           "a: [\n",
				"config/global_settings.yaml": "x: ${x}\n",
			},
			remove: []string{"config/input.yaml"},
			want: []wantProblem{
				{"config/nodes.yaml", problem.CodeConfigFile, "line 1"},
				{"settings_yml.json: env_config.base.input_config_path", problem.CodePathNotFound, "config/input.yaml"},
				{"settings_yml.json: env_config.base.output_config_path", problem.CodeConfigFile, "outside the project folder"},
				{"config/global_settings.yaml: x", problem.CodeInterpolation, "circular"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := validProject()
			for k, v := range tt.files {
				files[k] = v
			}
			for _, k := range tt.remove {
				delete(files, k)
			}
			env := tt.env
			if env == "" {
				env = "base"
			}
			_, err := load(writeProject(t, files), env, lookupFrom(nil))
			checkProblems(t, err, tt.want)
		})
	}
}

func TestLoad_SymlinkLeadingOutOfTheProjectIsRefused(t *testing.T) {
	outside := writeProject(t, map[string]string{"secret.yaml": "a: {}\n"})
	files := validProject()
	delete(files, "config/nodes.yaml")
	dir := writeProject(t, files)
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "config", "nodes.yaml")); err != nil {
		t.Skipf("cannot create symlinks here: %v", err)
	}
	_, err := load(dir, "base", lookupFrom(nil))
	checkProblems(t, err, []wantProblem{{"config/nodes.yaml", problem.CodeConfigFile, "outside the project folder"}})
}

func TestLoad_RefusesFileLargerThanTheLimit(t *testing.T) {
	files := validProject()
	files["config/nodes.yaml"] = "a: " + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := load(writeProject(t, files), "base", lookupFrom(nil))
	checkProblems(t, err, []wantProblem{{"config/nodes.yaml", problem.CodeTooLarge, "larger than 16 MiB"}})
}

func TestLoad_RefusesMissingProjectFolder(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope"), "dev")
	checkProblems(t, err, []wantProblem{{"", problem.CodePathNotFound, "cannot open the project folder"}})
}

func TestLoad_SettingsDescriptorLinkedFromOutsideIsRefused(t *testing.T) {
	outside := writeProject(t, map[string]string{"settings_yml.json": validSettings})
	files := validProject()
	delete(files, "settings_yml.json")
	dir := writeProject(t, files)
	if err := os.Symlink(filepath.Join(outside, "settings_yml.json"), filepath.Join(dir, "settings_yml.json")); err != nil {
		t.Skipf("cannot create symlinks here: %v", err)
	}
	_, err := load(dir, "base", lookupFrom(nil))
	checkProblems(t, err, []wantProblem{{"settings_yml.json", problem.CodeConfigFile, "outside the project folder"}})
}

func TestLoad_AcceptsTheOtherDescriptorNames(t *testing.T) {
	for _, name := range []string{"settings_json.json", "settings_dsl.json"} {
		t.Run(name, func(t *testing.T) {
			files := validProject()
			files[name] = files["settings_yml.json"]
			delete(files, "settings_yml.json")
			p := mustLoad(t, writeProject(t, files), "dev", lookupFrom(nil))
			if filepath.Base(p.Settings) != name {
				t.Errorf("Settings = %q, want %s", p.Settings, name)
			}
		})
	}
}
