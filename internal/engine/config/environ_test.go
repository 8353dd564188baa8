package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestEnvironment_AllowsOnlyTheNamesAndPrefixesGiven(t *testing.T) {
	vars := map[string]string{"DATA_ROOT": "/data", "TAURO_BUCKET": "b", "AWS_SECRET": "s"}
	cases := []struct {
		allow []string
		name  string
		want  bool
	}{
		{nil, "AWS_SECRET", true},
		{[]string{}, "AWS_SECRET", true},
		{[]string{"DATA_ROOT"}, "DATA_ROOT", true},
		{[]string{"DATA_ROOT"}, "DATA_ROOT_2", false},
		{[]string{"TAURO_*"}, "TAURO_BUCKET", true},
		{[]string{"TAURO_*", "DATA_ROOT"}, "AWS_SECRET", false},
	}
	for _, c := range cases {
		e := NewEnvironment(fakeEnv(vars), c.allow)
		if _, got := e.Lookup(c.name); got != c.want {
			t.Errorf("allow %v: Lookup(%s) found = %v, want %v", c.allow, c.name, got, c.want)
		}
	}
}

func TestEnvironment_RedactsEveryValueItHandedOutWithItsName(t *testing.T) {
	e := NewEnvironment(fakeEnv(map[string]string{
		"TOKEN": "s3cr3t-abc", "LONGER": "s3cr3t-abcdef", "SHORT": "dev", "UNUSED": "never-read",
	}), nil)
	if got := e.Redact("s3cr3t-abc"); got != "s3cr3t-abc" {
		t.Errorf("Redact before any lookup = %q, want the text unchanged", got)
	}
	for _, n := range []string{"TOKEN", "LONGER", "SHORT"} {
		e.Lookup(n)
	}
	cases := map[string]string{
		"key=s3cr3t-abc;":            "key=${TOKEN};",
		"s3cr3t-abcdef and more":     "${LONGER} and more",
		"dev stays, never-read":      "dev stays, never-read",
		"twice s3cr3t-abcs3cr3t-abc": "twice ${TOKEN}${TOKEN}",
	}
	for in, want := range cases {
		if got := e.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadFrom_ANameNotAllowedStaysAsWrittenOrFallsBackToTheGlobalSetting(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("settings_yml.json", `{"base_path": ".", "env_config": {"base": {
		"global_settings_path": "g.yaml", "pipelines_config_path": "p.yaml", "nodes_config_path": "n.yaml",
		"input_config_path": "i.yaml", "output_config_path": "o.yaml"}}}`)
	write("g.yaml", "input_path: ${ROOT}/in\nregion: ${REGION}\nsecret: ${SECRET}\nREGION: eu\n")
	for _, f := range []string{"p.yaml", "n.yaml", "i.yaml", "o.yaml"} {
		write(f, "")
	}
	env := NewEnvironment(fakeEnv(map[string]string{"ROOT": "/mnt/lake", "REGION": "us", "SECRET": "hunter22"}), []string{"ROOT"})
	p, err := LoadFrom(dir, "base", env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, k := range []string{"input_path", "region", "secret"} {
		got[k], _ = p.Global.Get(k)
	}
	want := map[string]any{"input_path": "/mnt/lake/in", "region": "eu", "secret": "${SECRET}"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if r := env.Redact("/mnt/lake/in"); !strings.HasPrefix(r, "${ROOT}") {
		t.Errorf("Redact of an allowed value that was read = %q, want ${ROOT}/in", r)
	}
}
