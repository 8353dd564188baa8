package config

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
)

// MinRedactLen is the shortest value Environment.Redact hides. Shorter
// values ("1", "dev", "true") cannot be told from ordinary words, and
// hiding them would garble every message they appear in.
const MinRedactLen = 6

// Environment is what ${NAME} may read from execd's environment. An
// operator can allow only some names; every value handed out is
// remembered, so that whatever execd shows clients can hide it again
// (Redact). Safe for concurrent use.
type Environment struct {
	lookup func(string) (string, bool)
	allow  []string // nil allows every name

	mu       sync.Mutex
	used     map[string]string // value -> the name it came from
	replacer *strings.Replacer // nil until a value is used, rebuilt on each new one
}

// NewEnvironment reads variables through lookup (os.LookupEnv), allowing
// only the names in allow ("NAME", or "PREFIX*" for every name that starts
// with PREFIX); an empty allow allows every name, as tauro does.
func NewEnvironment(lookup func(string) (string, bool), allow []string) *Environment {
	if len(allow) == 0 {
		allow = nil
	}
	return &Environment{lookup: lookup, allow: allow, used: map[string]string{}}
}

// Allowed reports whether name may be read.
func (e *Environment) Allowed(name string) bool {
	if e.allow == nil {
		return true
	}
	return slices.ContainsFunc(e.allow, func(p string) bool {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(name, prefix)
		}
		return p == name
	})
}

// Lookup returns the variable name if it is allowed and set, and remembers
// its value for Redact. A name that is not allowed reads as unset, so
// ${NAME} falls back to the global setting of that name, or stays as
// written.
func (e *Environment) Lookup(name string) (string, bool) {
	if !e.Allowed(name) {
		return "", false
	}
	v, ok := e.lookup(name)
	if ok {
		e.remember(name, v)
	}
	return v, ok
}

func (e *Environment) remember(name, value string) {
	if len(value) < MinRedactLen {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, seen := e.used[value]; seen {
		return
	}
	e.used[value] = name
	values := slices.Collect(maps.Keys(e.used))
	// Longest first: the replacer tries its pairs in order at each
	// position, and a value may contain a shorter one.
	slices.SortFunc(values, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	pairs := make([]string, 0, 2*len(values))
	for _, v := range values {
		pairs = append(pairs, v, "${"+e.used[v]+"}")
	}
	e.replacer = strings.NewReplacer(pairs...)
}

// Redact replaces every value Lookup has handed out (of at least
// MinRedactLen bytes) with the ${NAME} it came from.
func (e *Environment) Redact(s string) string {
	e.mu.Lock()
	r := e.replacer
	e.mu.Unlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}
