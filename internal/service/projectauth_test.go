package service

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hash is a well-formed sha256 for lines whose token no test sends.
var hash = strings.Repeat("ab", 32)

func TestTokens_ProjectRoles(t *testing.T) {
	cases := []struct {
		line     string
		role     Role
		projects map[string]Role
	}{
		{`{"name":"a","role":"viewer","sha256":"` + hash + `"}`, RoleViewer, nil},
		{`{"name":"a","role":"viewer","projects":{"sales":"operator","hybrid.v2":"admin"},"sha256":"` + hash + `"}`,
			RoleViewer, map[string]Role{"sales": RoleOperator, "hybrid.v2": RoleAdmin}},
		// A project may have a lower role than the rest.
		{`{"name":"a","role":"admin","projects":{"prod":"viewer"},"sha256":"` + hash + `"}`,
			RoleAdmin, map[string]Role{"prod": RoleViewer}},
		// Without a role the token reaches only the projects named.
		{`{"name":"a","projects":{"sales":"viewer"},"sha256":"` + hash + `"}`, RoleNone, map[string]Role{"sales": RoleViewer}},
		{`{"name":"a","role":"operator","projects":{},"sha256":"` + hash + `"}`, RoleOperator, nil},
	}
	for _, c := range cases {
		entries, err := parseTokens(strings.NewReader(c.line))
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if e := entries[0]; e.role != c.role || !maps.Equal(e.projects, c.projects) {
			t.Errorf("%s: role %v, projects %v; want %v, %v", c.line, e.role, e.projects, c.role, c.projects)
		}
	}
}

func TestTokens_ProjectProblemsAreNamedByLine(t *testing.T) {
	good := `{"name":"ok","role":"viewer","sha256":"` + strings.Repeat("cd", 32) + `"}` + "\n"
	cases := map[string]string{
		`{"name":"b","sha256":"` + hash + `"}`:                                                         "line 2 (b): no role and no projects",
		`{"name":"b","projects":{},"sha256":"` + hash + `"}`:                                           "line 2 (b): no role and no projects",
		`{"name":"b","projects":{"sales":"root"},"sha256":"` + hash + `"}`:                             `line 2 (b): project "sales": unknown role "root"`,
		`{"name":"b","projects":{"sales":""},"sha256":"` + hash + `"}`:                                 `line 2 (b): project "sales": unknown role ""`,
		`{"name":"b","role":"viewer","projects":{"-sales":"viewer"},"sha256":"` + hash + `"}`:          `line 2 (b): project "-sales": a project name is`,
		`{"name":"b","projects":{"":"viewer"},"sha256":"` + hash + `"}`:                                `line 2 (b): project "": a project name is`,
		`{"name":"b","projects":{"a/b":"viewer"},"sha256":"` + hash + `"}`:                             `line 2 (b): project "a/b"`,
		`{"name":"b","projects":{"` + strings.Repeat("x", 65) + `":"viewer"},"sha256":"` + hash + `"}`: "a project name is",
		`{"name":"b","projects":["sales"],"sha256":"` + hash + `"}`:                                    "line 2: json",
		`{"name":"b","projects":{"sales":"viewer"},"project":"x","sha256":"` + hash + `"}`:             `line 2: json: unknown field "project"`,
	}
	for line, want := range cases {
		_, err := parseTokens(strings.NewReader(good + line))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTokens(%q) = %v, want an error with %q", line, err, want)
		}
	}
}

func TestTokens_ReloadKeepsTheTokensInUseOnABadFile(t *testing.T) {
	tok, line, err := NewToken("ana", RoleNone, map[string]Role{"sales": RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(line, `"operator"`, `"owner"`, 1)
	if err := os.WriteFile(path, []byte(bad+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err == nil || !strings.Contains(err.Error(), `line 1 (ana): project "sales": unknown role "owner"`) {
		t.Errorf("Reload of a bad file = %v, want the bad role named", err)
	}
	if p, ok := ts.lookup(tok); !ok || p.roleIn("sales") != RoleOperator || p.roleIn("hybrid") != RoleNone {
		t.Errorf("after a failed reload, lookup = %+v, %v; want ana, operator in sales only", p, ok)
	}
}

func TestNewToken_WritesTheProjectRoles(t *testing.T) {
	tok, line, err := NewToken("ana", RoleViewer, map[string]Role{"sales": RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, `"projects":{"sales":"operator"}`) || !strings.Contains(line, `"role":"viewer"`) {
		t.Errorf("line %s, want role viewer and projects {sales: operator}", line)
	}
	only, onlyLine, err := NewToken("bob", RoleNone, map[string]Role{"hybrid": RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(onlyLine, `"role"`) {
		t.Errorf("line %s has a role; a token scoped to its projects has none", onlyLine)
	}
	entries, err := parseTokens(strings.NewReader(line + "\n" + onlyLine))
	if err != nil {
		t.Fatalf("the lines NewToken made do not parse: %v", err)
	}
	ts := &Tokens{}
	ts.entries.Store(&entries)
	if p, _ := ts.lookup(tok); p.roleIn("sales") != RoleOperator || p.roleIn("other") != RoleViewer {
		t.Errorf("ana = %+v, want operator in sales, viewer elsewhere", p)
	}
	if p, _ := ts.lookup(only); p.roleIn("hybrid") != RoleViewer || p.roleIn("sales") != RoleNone {
		t.Errorf("bob = %+v, want viewer in hybrid and nothing elsewhere", p)
	}
	for name, projects := range map[string]map[string]Role{
		"no role anywhere": nil,
		"a bad project":    {"no space": RoleViewer},
		"no role in one":   {"sales": RoleNone},
	} {
		if _, _, err := NewToken("x", RoleNone, projects); err == nil {
			t.Errorf("%s: NewToken made a token", name)
		}
	}
}
