package service

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
)

// Role is what a caller may do; each role may do everything the one below
// it may.
type Role int

// The roles, least first.
const (
	RoleNone Role = iota
	// RoleViewer reads: validate, pipelines, runs, events.
	RoleViewer
	// RoleOperator also starts, cancels, stops and repairs runs.
	RoleOperator
	// RoleAdmin may call everything, including what is added later.
	RoleAdmin
)

var roleNames = []string{"none", "viewer", "operator", "admin"}

func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads "viewer", "operator" or "admin".
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames[1:] {
		if s == n {
			return Role(i + 1), nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q; use viewer, operator or admin", s)
}

// A tokens file holds one JSON object per line,
//
//	{"name": "ci", "role": "operator", "sha256": "<hex of SHA-256 of the token>"}
//	{"name": "ana", "role": "viewer", "projects": {"sales": "operator"}, "sha256": "..."}
//	{"name": "bob", "projects": {"hybrid": "viewer"}, "sha256": "..."}
//
// and blank lines and lines starting with '#'. "projects" gives the role
// in each project it names; "role" holds in every other project, and
// without it the token reaches only the projects named. Only hashes are
// stored, so the file reveals no token; `execd token` makes a token and
// its line.
type tokenLine struct {
	Name     string            `json:"name"`
	Role     string            `json:"role,omitempty"`
	Projects map[string]string `json:"projects,omitempty"`
	SHA256   string            `json:"sha256"`
}

type tokenEntry struct {
	name     string
	role     Role
	projects map[string]Role // nil: role in every project
	hash     [sha256.Size]byte
}

// projectName is what execd's projects file and the API accept as a
// project's name.
var projectName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkProject says what is wrong with a project name, if anything.
func checkProject(name string) error {
	if !projectName.MatchString(name) {
		return fmt.Errorf("project %q: a project name is a letter or digit and then up to 63 letters, digits, '_', '.' or '-'", name)
	}
	return nil
}

// Tokens are the bearer tokens execd accepts. Safe for concurrent use;
// Reload replaces them at once.
type Tokens struct {
	path    string
	entries atomic.Pointer[[]tokenEntry]
}

// LoadTokens reads the tokens file at path.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the file again; on an error the tokens in use stay.
func (t *Tokens) Reload() error {
	f, err := os.Open(t.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	entries, err := parseTokens(f)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", t.path, err)
	}
	t.entries.Store(&entries)
	return nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(*t.entries.Load()) }

func parseTokens(r io.Reader) ([]tokenEntry, error) {
	var entries []tokenEntry
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var tl tokenLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tl); err != nil {
			return nil, fmt.Errorf("line %d: %v; want {\"name\": ..., \"role\": ..., \"projects\": {\"PROJECT\": \"ROLE\", ...}, \"sha256\": ...}", n, err)
		}
		if tl.Name == "" {
			return nil, fmt.Errorf("line %d: no name; name each token so logs can say who called", n)
		}
		if names[tl.Name] {
			return nil, fmt.Errorf("line %d: name %q is used twice", n, tl.Name)
		}
		names[tl.Name] = true
		if tl.Role == "" && len(tl.Projects) == 0 {
			return nil, fmt.Errorf("line %d (%s): no role and no projects; give \"role\" (the role in every project), \"projects\" ({\"PROJECT\": \"ROLE\"}), or both", n, tl.Name)
		}
		role := RoleNone // only the projects named
		if tl.Role != "" {
			r, err := ParseRole(tl.Role)
			if err != nil {
				return nil, fmt.Errorf("line %d (%s): %v", n, tl.Name, err)
			}
			role = r
		}
		var projects map[string]Role
		// Sorted, so the same file always names the same problem first.
		for _, project := range slices.Sorted(maps.Keys(tl.Projects)) {
			if err := checkProject(project); err != nil {
				return nil, fmt.Errorf("line %d (%s): %v", n, tl.Name, err)
			}
			r, err := ParseRole(tl.Projects[project])
			if err != nil {
				return nil, fmt.Errorf("line %d (%s): project %q: %v", n, tl.Name, project, err)
			}
			if projects == nil {
				projects = map[string]Role{}
			}
			projects[project] = r
		}
		h, err := hex.DecodeString(tl.SHA256)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("line %d (%s): sha256 must be 64 hex digits, the SHA-256 of the token", n, tl.Name)
		}
		e := tokenEntry{name: tl.Name, role: role, projects: projects}
		copy(e.hash[:], h)
		if other, dup := hashes[e.hash]; dup {
			return nil, fmt.Errorf("line %d (%s): the same token as %s; give each its own", n, tl.Name, other)
		}
		hashes[e.hash] = tl.Name
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("no tokens; add one with 'execd token --name NAME --role ROLE --append FILE'")
	}
	return entries, nil
}

// lookup finds the principal whose token this is. It compares against
// every entry in constant time, so timing tells nothing about the hashes.
func (t *Tokens) lookup(token string) (Principal, bool) {
	sum := sha256.Sum256([]byte(token))
	var found Principal
	ok := false
	for _, e := range *t.entries.Load() {
		if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
			found, ok = Principal{Name: e.name, Role: e.role, Projects: e.projects}, true
		}
	}
	return found, ok
}

// tokenPrefix makes a token recognisable to secret scanners.
const tokenPrefix = "tauro_"

// NewToken makes a random token and its line for a tokens file. role
// holds in every project not in projects; RoleNone, with projects given,
// makes a token that reaches only those.
func NewToken(name string, role Role, projects map[string]Role) (token, line string, err error) {
	if strings.TrimSpace(name) == "" {
		return "", "", errors.New("a token needs a name")
	}
	if role == RoleNone && len(projects) == 0 {
		return "", "", errors.New("a token needs a role, a role in at least one project, or both")
	}
	if role < RoleNone || role > RoleAdmin {
		return "", "", fmt.Errorf("unknown role %v", role)
	}
	tl := tokenLine{Name: name}
	if role != RoleNone {
		tl.Role = role.String()
	}
	for _, project := range slices.Sorted(maps.Keys(projects)) {
		r := projects[project]
		if err := checkProject(project); err != nil {
			return "", "", err
		}
		if r <= RoleNone || r > RoleAdmin {
			return "", "", fmt.Errorf("project %q: unknown role %v", project, r)
		}
		if tl.Projects == nil {
			tl.Projects = map[string]string{}
		}
		tl.Projects[project] = r.String()
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	tl.SHA256 = hex.EncodeToString(sum[:])
	l, err := json.Marshal(tl)
	return token, string(l), err
}
