package plan

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// parseNode reads the settings of node i that need nothing from other nodes.
func (r *resolver) parseNode(i int32) {
	n := r.nodes[i]
	inf := &r.info[i]
	r.parseKind(i)

	if v, ok := r.get(i, "description"); ok && v != nil {
		if s, ok := scalarString(v); ok {
			n.Description = s
		} else {
			r.add(r.field(i, "description"), problem.CodeInvalidType, "description must be a string, got %s", typeName(v))
		}
	}
	if v, ok := r.get(i, "hyperparams"); ok && v != nil {
		if _, isMap := mapKeys(v); isMap {
			n.Hyperparams, _ = config.Plain(v).(map[string]any)
		} else {
			r.add(r.field(i, "hyperparams"), problem.CodeInvalidType, "hyperparams must be a mapping of name to value, got %s", typeName(v))
		}
	}
	r.parseML(i)
	n.EarlyCall = r.set.EarlyCalls
	if v, ok := r.get(i, "early_call"); ok && v != nil {
		if b, ok := asBool(v); ok {
			n.EarlyCall = b
		} else {
			r.add(r.field(i, "early_call"), problem.CodeInvalidType,
				"node %s: early_call must be true (its function may be called while its upstreams write) or false (once they succeeded), got %s", q(n.Name), typeName(v))
		}
	}

	// The retry policy starts from the global one.
	rp := retryPolicy{r.set.MaxRetries, r.set.RetryDelay, r.set.RetryBackoff, r.set.RetryMaxDelay, r.set.NodeTimeout}
	rp.read(func(key string) (any, bool, string) {
		// The pipeline entry's spelling wins over the node's, whichever alias
		// each uses.
		for _, src := range [2]*config.Map{inf.over, inf.cfg} {
			for _, k := range aliases[key] {
				if v, ok := src.Get(k); ok {
					if key == "timeout_seconds" && v != nil {
						inf.timeoutSet = true
					}
					return v, true, k
				}
			}
		}
		return nil, false, ""
	}, func(key string) string { return r.field(i, key) },
		"timeout_seconds", func() string { return "node " + q(n.Name) + ": " }, &r.probs)
	n.Retry, n.Timeout = rp.policy(), rp.timeout

	if v, ok := r.get(i, "streaming"); ok && v != nil {
		if b, ok := asBool(v); ok {
			inf.streamFlag = -1
			if b {
				inf.streamFlag = 1
			}
		} else if m, ok := v.(*config.Map); ok {
			inf.streamFlag = 1
			r.parseStreamingConfig(i, m)
		} else {
			r.add(r.field(i, "streaming"), problem.CodeInvalidType,
				"streaming must be true, false or a mapping (trigger, output_mode, checkpoint_location), got %s", typeName(v))
		}
	}

	r.parseExpectations(i)
	n.Inputs, n.InlineInput = r.ioList(i, "input")
	n.Outputs, n.InlineOutput = r.ioList(i, "output")

	var names []string
	if v, ok := r.get(i, "dependencies"); ok {
		var issues []depIssue
		names, issues = normalizeDependencies(v)
		for _, is := range issues {
			f := r.field(i, "dependencies")
			if is.pos >= 0 {
				f += "[" + itoa(is.pos) + "]"
			}
			r.add(f, problem.CodeInvalidValue, "node %s: %s", q(n.Name), is.msg)
		}
	}
	// Room for the automatic dependencies resolveInputs may add.
	if c := len(names) + len(n.Inputs); c > 0 {
		inf.refs = make([]depRef, 0, c)
	}
	for pos, d := range names {
		if d != "" {
			inf.refs = append(inf.refs, depRef{name: d, to: -1, pos: int32(pos)})
		}
	}
}

// aliases are the spellings a node may use for a retry setting; the first
// is canonical.
var aliases = map[string][]string{
	"max_retries":     {"max_retries", "retries"},
	"retry_delay":     {"retry_delay"},
	"retry_backoff":   {"retry_backoff"},
	"retry_max_delay": {"retry_max_delay"},
	"timeout_seconds": {"timeout_seconds", "timeout", "node_timeout_seconds"},
}

// parseKind decides what the node runs: SQL text, or a Python function
// given as module + function, as a dotted function, or as tauro's streaming
// form function: {module: ..., function: ...}. A node with none of these is
// left without a kind; classify makes it a passthrough if it is streaming.
func (r *resolver) parseKind(i int32) {
	n := r.nodes[i]
	sqlV, hasSQL := r.get(i, "sql")
	fnV, hasFn := r.get(i, "function")
	modV, hasMod := r.get(i, "module")
	hasSQL, hasFn, hasMod = hasSQL && sqlV != nil, hasFn && fnV != nil, hasMod && modV != nil

	if hasSQL {
		if hasFn || hasMod {
			r.add(r.field(i, "sql"), problem.CodeInvalidFunction,
				"node %s sets both sql and a Python function; keep sql for a Spark SQL node, or module and function for a Python node", q(n.Name))
			return
		}
		s, ok := sqlV.(string)
		if !ok || strings.TrimSpace(s) == "" {
			r.add(r.field(i, "sql"), problem.CodeInvalidValue, "node %s: sql must be the text of a SQL query", q(n.Name))
			return
		}
		n.Kind, n.SQL = KindSQL, s
		return
	}
	if !hasFn && !hasMod {
		return
	}

	var module, function string
	// Where function and module were written, as (key, suffix) for r.field.
	fnKey, fnSuffix, modKey, modSuffix := "function", "", "module", ""
	fnField := func() string { return r.field(i, fnKey) + fnSuffix }
	modField := func() string { return r.field(i, modKey) + modSuffix }
	if m, ok := fnV.(*config.Map); ok {
		if hasMod {
			r.add(modField(), problem.CodeInvalidFunction,
				"node %s sets module twice (beside function and inside it); keep function: {module: ..., function: ...} or module and function, not both", q(n.Name))
			return
		}
		mv, _ := m.Get("module")
		fv, _ := m.Get("function")
		module, _ = mv.(string)
		function, _ = fv.(string)
		modKey, modSuffix, fnSuffix = "function", ".module", ".function"
		if module == "" || function == "" {
			r.add(r.field(i, "function"), problem.CodeInvalidFunction,
				"node %s: function written as a mapping needs both module and function strings", q(n.Name))
			return
		}
	} else {
		if hasFn {
			s, ok := fnV.(string)
			if !ok {
				r.add(fnField(), problem.CodeInvalidType, "node %s: function must be a string like 'package.module.function', got %s", q(n.Name), typeName(fnV))
				return
			}
			function = strings.TrimSpace(s)
		}
		if hasMod {
			s, ok := modV.(string)
			if !ok {
				r.add(modField(), problem.CodeInvalidType, "node %s: module must be a dotted module path, got %s", q(n.Name), typeName(modV))
				return
			}
			module = strings.TrimSpace(s)
		}
		switch {
		case function == "":
			r.add(fnField(), problem.CodeInvalidFunction,
				"node %s sets module %s but no function; add function: <name of the function in that module>", q(n.Name), q(module))
			return
		case module == "":
			dot := strings.LastIndexByte(function, '.')
			if dot < 0 {
				r.add(fnField(), problem.CodeInvalidFunction,
					"node %s: function %s has no module; set module: <package.module> or write function: 'package.module.%s'",
					q(n.Name), q(function), short(function))
				return
			}
			module, function = function[:dot], function[dot+1:]
			modKey = "function"
		case strings.HasPrefix(function, module+"."):
			// module: pkg.mod, function: pkg.mod.fn says the same thing twice.
			function = function[len(module)+1:]
		case strings.Contains(function, "."):
			r.add(fnField(), problem.CodeInvalidFunction,
				"node %s: with module %s set, function must be a plain name, got %s; write function: %s or drop module and write the full dotted path",
				q(n.Name), q(module), q(function), short(function[strings.LastIndexByte(function, '.')+1:]))
			return
		}
	}
	if msg := checkModule(module); msg != "" {
		r.add(modField(), problem.CodeInvalidFunction, "node %s: module %s %s", q(n.Name), q(module), msg)
		return
	}
	if !isIdentifier(function) {
		r.add(fnField(), problem.CodeInvalidFunction,
			"node %s: function %s is not a valid Python function name; use letters, digits and '_', not starting with a digit", q(n.Name), q(function))
		return
	}
	if prefixes := r.set.AllowedModulePrefixes; len(prefixes) > 0 && !allowedModule(module, prefixes) {
		r.add(modField(), problem.CodeInvalidFunction,
			"node %s: module %s is outside the allowed modules (%s); move the function under one of them or extend global_settings.allowed_module_prefixes",
			q(n.Name), q(module), joinPlain(prefixes, 20))
		return
	}
	n.Kind, n.Module, n.Function = KindPython, module, function
}

// checkModule checks a dotted Python module path; it returns what is wrong.
func checkModule(module string) string {
	if len(module) > 256 {
		return "is longer than 256 characters"
	}
	for part := range strings.SplitSeq(module, ".") {
		if !isIdentifier(part) {
			if part == "" {
				return "is not a valid dotted module path (empty part); write it like 'package.module'"
			}
			return fmt.Sprintf("is not a valid dotted module path: %s is not a Python identifier", q(part))
		}
	}
	return ""
}

// isIdentifier reports whether s is a Python identifier and not a keyword.
func isIdentifier(s string) bool {
	if s == "" || pythonKeywords[s] {
		return false
	}
	for k, c := range s {
		if c == '_' || unicode.IsLetter(c) || (k > 0 && unicode.IsDigit(c)) {
			continue
		}
		return false
	}
	return true
}

func isLetterOrDigit(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }

var pythonKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true,
	"async": true, "await": true, "break": true, "class": true, "continue": true,
	"def": true, "del": true, "elif": true, "else": true, "except": true,
	"finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "nonlocal": true,
	"not": true, "or": true, "pass": true, "raise": true, "return": true,
	"try": true, "while": true, "with": true, "yield": true,
}

// allowedModule reports whether module is one of prefixes or inside one
// ("nodes" and "nodes." both allow nodes.sales but not nodes_extra).
func allowedModule(module string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool {
		p = strings.TrimSuffix(strings.TrimSpace(p), ".")
		return p != "" && (module == p || strings.HasPrefix(module, p+"."))
	})
}

// parseStreamingConfig reads a node's streaming mapping.
func (r *resolver) parseStreamingConfig(i int32, m *config.Map) {
	n := r.nodes[i]
	f := r.field(i, "streaming")
	n.Trigger = defaultTrigger
	if tv, ok := m.Get("trigger"); ok && tv != nil {
		t, ok := tv.(*config.Map)
		if !ok {
			r.add(f+".trigger", problem.CodeInvalidType, "trigger must be a mapping like {type: processing_time, interval: \"10 seconds\"}, got %s", typeName(tv))
		} else {
			r.parseTrigger(n, t, f+".trigger")
		}
	}
	n.OutputMode = "append"
	if v, ok := m.Get("output_mode"); ok && v != nil {
		s, _ := v.(string)
		s = strings.ToLower(strings.TrimSpace(s))
		if slices.Contains(streamOutputModes, s) {
			n.OutputMode = s
		} else {
			r.add(f+".output_mode", problem.CodeInvalidValue, "output_mode must be append, update or complete, got %s", describe(v))
		}
	}
	if v, ok := m.Get("checkpoint_location"); ok && v != nil {
		if s, ok := v.(string); ok {
			n.Checkpoint = s
		} else {
			r.add(f+".checkpoint_location", problem.CodeInvalidType, "checkpoint_location must be a path, got %s", typeName(v))
		}
	}
}

func (r *resolver) parseTrigger(n *Node, t *config.Map, f string) {
	typ := TriggerProcessingTime
	if v, ok := t.Get("type"); ok && v != nil {
		s, _ := v.(string)
		typ = strings.ToLower(strings.TrimSpace(s))
		switch typ {
		case TriggerProcessingTime, TriggerContinuous, TriggerOnce, TriggerAvailableNow:
		default:
			r.add(f+".type", problem.CodeInvalidValue,
				"trigger type must be processing_time, continuous, once or available_now, got %s", describe(v))
			return
		}
	}
	n.Trigger = Trigger{Type: typ}
	if typ == TriggerOnce || typ == TriggerAvailableNow {
		return
	}
	iv, ok := t.Get("interval")
	if !ok || iv == nil {
		if typ == TriggerProcessingTime {
			n.Trigger.Interval = defaultTrigger.Interval
			return
		}
		r.add(f+".interval", problem.CodeRequired, "a %s trigger needs an interval, e.g. interval: \"1 second\"", typ)
		return
	}
	d, err := ParseTriggerInterval(iv)
	if err != nil {
		r.add(f+".interval", problem.CodeInvalidValue, "node %s: %v", q(n.Name), err)
		return
	}
	n.Trigger.Interval = d
}

// ioList reads a node's input or output: one key, a list of keys, or
// tauro's streaming form, an inline configuration mapping.
func (r *resolver) ioList(i int32, key string) ([]string, *config.Map) {
	v, ok := r.get(i, key)
	if !ok || v == nil {
		return nil, nil
	}
	f := func() string { return r.field(i, key) }
	switch x := v.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			r.add(f(), problem.CodeInvalidValue, "node %s: %s is empty; name a key of the %s config", q(r.nodes[i].Name), key, key)
			return nil, nil
		}
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for j, e := range x {
			s, ok := e.(string)
			if !ok || strings.TrimSpace(s) == "" {
				r.add(fmt.Sprintf("%s[%d]", f(), j), problem.CodeInvalidValue,
					"node %s: each %s must be a key of the %s config, got %s", q(r.nodes[i].Name), key, key, describe(e))
				out = append(out, "")
				continue
			}
			out = append(out, s)
		}
		return out, nil
	case *config.Map:
		fv, _ := x.Get("format")
		if s, ok := fv.(string); !ok || strings.TrimSpace(s) == "" {
			r.add(f()+".format", problem.CodeRequired,
				"node %s: an inline %s needs a format (e.g. format: kafka)", q(r.nodes[i].Name), key)
		}
		return nil, x
	}
	r.add(f(), problem.CodeInvalidType, "node %s: %s must be a key, a list of keys or a mapping, got %s", q(r.nodes[i].Name), key, typeName(v))
	return nil, nil
}
