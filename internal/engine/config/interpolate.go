package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

const (
	// maxVarDepth bounds how many variables may be expanded inside one
	// another; real chains are two or three deep, and the bound keeps a
	// hostile chain of thousands from exhausting the stack.
	maxVarDepth = 32
	// maxExpansion bounds how much longer interpolation may make one value.
	// Expanded variables are cached, so time stays linear, but
	// a: "${b}${b}", b: "${c}${c}", ... still doubles the text at every level.
	maxExpansion = 1 << 20
)

// Interpolate expands each ${NAME} in s: from lookupEnv first (environment
// variables, taken literally), then from vars (global settings), whose values
// are expanded in turn. A name found in neither is left as written, so text
// meant for a later stage (or for Spark) passes through. A variable that
// refers back to itself, directly or not, is an error naming the cycle.
// lookupEnv may be nil.
func Interpolate(s string, lookupEnv func(string) (string, bool), vars map[string]string) (string, error) {
	return newInterpolator(lookupEnv, vars).expand(s)
}

// interpolator expands many values against one set of variables, caching
// each variable's expansion.
type interpolator struct {
	lookupEnv func(string) (string, bool)
	vars      map[string]string
	expanded  map[string]string
	active    []string // variables being expanded, outermost first
}

func newInterpolator(lookupEnv func(string) (string, bool), vars map[string]string) *interpolator {
	return &interpolator{lookupEnv: lookupEnv, vars: vars, expanded: map[string]string{}}
}

func (in *interpolator) expand(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	limit := len(s) + maxExpansion
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		j := strings.IndexByte(rest, '}')
		if j < 0 { // no closing brace: the rest is plain text
			b.WriteString(s[i:])
			break
		}
		name := rest[:j]
		if name == "" || strings.Contains(name, "${") {
			b.WriteString("${")
			s = rest
			continue
		}
		value, found, err := in.resolve(name)
		if err != nil {
			return "", err
		}
		if found {
			b.WriteString(value)
		} else {
			b.WriteString(s[i : i+2+j+1])
		}
		if b.Len() > limit {
			return "", interpolationProblem("expanding ${%s} makes the value more than %d bytes longer; a global setting probably repeats another many times", name, maxExpansion)
		}
		s = rest[j+1:]
	}
	return b.String(), nil
}

// resolve returns the value of one variable and whether it is defined.
func (in *interpolator) resolve(name string) (string, bool, error) {
	if in.lookupEnv != nil {
		if v, ok := in.lookupEnv(name); ok {
			return v, true, nil
		}
	}
	if _, ok := in.vars[name]; !ok {
		return "", false, nil
	}
	v, err := in.expandVar(name)
	return v, err == nil, err
}

// expandVar expands the value of the global setting name, without looking
// name up in the environment: the environment overrides references to a
// setting, not the setting itself.
func (in *interpolator) expandVar(name string) (string, error) {
	if v, ok := in.expanded[name]; ok {
		return v, nil
	}
	if i := slices.Index(in.active, name); i >= 0 {
		chain := append(slices.Clone(in.active[i:]), name)
		for k, n := range chain {
			chain[k] = "${" + n + "}"
		}
		return "", interpolationProblem("circular reference %s; change one of these global settings so that it does not refer back", strings.Join(chain, " -> "))
	}
	if len(in.active) >= maxVarDepth {
		return "", interpolationProblem("variables are nested more than %d deep (%s ...); use fewer levels of ${...} inside global settings", maxVarDepth, strings.Join(in.active[:3], " -> "))
	}
	in.active = append(in.active, name)
	v, err := in.expand(in.vars[name])
	in.active = in.active[:len(in.active)-1]
	if err != nil {
		return "", err
	}
	in.expanded[name] = v
	return v, nil
}

func interpolationProblem(format string, args ...any) error {
	return problem.Problem{Code: problem.CodeInterpolation, Message: fmt.Sprintf(format, args...)}
}

// globalVars are the top-level scalar global settings, as text, which
// ${NAME} may refer to. Nested values are not variables in tauro.
func globalVars(global *Map) map[string]string {
	vars := make(map[string]string, global.Len())
	if global == nil {
		return vars
	}
	for _, k := range global.Keys {
		switch v := global.Values[k].(type) {
		case string:
			vars[k] = v
		case int64:
			vars[k] = strconv.FormatInt(v, 10)
		case float64:
			vars[k] = strconv.FormatFloat(v, 'g', -1, 64)
		case bool:
			vars[k] = strconv.FormatBool(v)
		}
	}
	return vars
}

// interpolateGlobal expands the global settings in place. A top-level
// setting is expanded as the variable it also is, so that a cycle is named
// from that setting ("${a} -> ${b} -> ${a}" at a).
func (in *interpolator) interpolateGlobal(global *Map, file string, problems *problem.List) {
	for _, k := range global.Keys {
		if _, isVar := in.vars[k]; !isVar {
			in.interpolateTree(global.Values[k], file, []any{k}, problems)
			continue
		}
		v, err := in.expandVar(k)
		if err != nil {
			addAt(problems, fieldOf(file, []any{k}), err)
			continue
		}
		if _, isString := global.Values[k].(string); isString {
			global.Values[k] = v
		}
	}
}

// addAt records err's problems at field.
func addAt(problems *problem.List, field string, err error) {
	l, ok := problem.From(err)
	if !ok {
		l = problem.List{{Code: problem.CodeInterpolation, Message: err.Error()}}
	}
	for _, p := range l {
		problems.Add(field, p.Code, "%s", p.Message)
	}
}

// interpolateTree expands every string value under v in place (keys are
// left alone) and reports each failure at its field.
func (in *interpolator) interpolateTree(v any, file string, path []any, problems *problem.List) any {
	switch v := v.(type) {
	case string:
		out, err := in.expand(v)
		if err != nil {
			addAt(problems, fieldOf(file, path), err)
			return v
		}
		return out
	case []any:
		for i := range v {
			v[i] = in.interpolateTree(v[i], file, append(path, i), problems)
		}
	case *Map:
		for _, k := range v.Keys {
			v.Values[k] = in.interpolateTree(v.Values[k], file, append(path, k), problems)
		}
	}
	return v
}
