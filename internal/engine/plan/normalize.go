package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
)

// depIssue is one unusable element of a dependencies value. pos is the
// element's index in a list, or -1 when the whole value is at fault.
type depIssue struct {
	pos int
	msg string
}

// NormalizeDependencies turns a node's `dependencies` value, in any of the
// five formats tauro accepts, into the names of the nodes it depends on, in
// the order written:
//
//	dependencies: extract                      # a string
//	dependencies: {extract: {}}                # a mapping: its keys, in order
//	dependencies: [extract, transform]         # a list of strings
//	dependencies: [{extract: {}}, {load: {}}]  # a list of single-key mappings
//	dependencies: [extract, {transform: {}}]   # mixed
//
// A bare number names a node by its string form, as tauro does. Duplicates
// are kept so that positions match the config; Resolve de-duplicates.
func NormalizeDependencies(v any) ([]string, error) {
	names, issues := normalizeDependencies(v)
	if len(issues) > 0 {
		return nil, errors.New(issues[0].msg)
	}
	return names, nil
}

// normalizeDependencies is NormalizeDependencies reporting every unusable
// element, so that Resolve can name each one. names[i] is "" where an element
// was unusable, keeping positions aligned with the list as written.
func normalizeDependencies(v any) ([]string, []depIssue) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, []depIssue{{-1, "dependency name is empty; write the name of a node of the pipeline"}}
		}
		return []string{x}, nil
	case int64:
		return []string{strconv.FormatInt(x, 10)}, nil
	case int:
		return []string{strconv.Itoa(x)}, nil
	case *config.Map, map[string]any:
		keys, _ := mapKeys(x)
		return append([]string(nil), keys...), nil
	case []string:
		out := make([]string, len(x))
		var issues []depIssue
		for i, s := range x {
			name, msg := dependencyElement(s)
			out[i] = name
			if msg != "" {
				issues = append(issues, depIssue{i, msg})
			}
		}
		return out, issues
	case []any:
		out := make([]string, len(x))
		var issues []depIssue
		for i, e := range x {
			name, msg := dependencyElement(e)
			out[i] = name
			if msg != "" {
				issues = append(issues, depIssue{i, msg})
			}
		}
		return out, issues
	}
	return nil, []depIssue{{-1, fmt.Sprintf(
		"unsupported dependency type %s; write a node name, a list of names, or a mapping keyed by names", typeName(v))}}
}

// dependencyElement reads one element of a dependencies list.
func dependencyElement(e any) (string, string) {
	switch x := e.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			return "", "dependency name is empty; write the name of a node of the pipeline"
		}
		return x, ""
	case nil:
		return "", "dependency cannot be null; write the name of a node or remove the empty entry"
	case *config.Map, map[string]any:
		keys, _ := mapKeys(x)
		if len(keys) != 1 {
			return "", fmt.Sprintf(
				"a dependency written as a mapping must have exactly one key (the node's name), got %d; split it into one entry per node",
				len(keys))
		}
		return keys[0], ""
	}
	return "", fmt.Sprintf("unsupported dependency type %s in the list; write the node's name as a string", typeName(e))
}

// NodeName reads an entry of a pipeline's `nodes` list:
//
//	nodes:
//	  - extract                      # the name
//	  - {extract: {retries: 2}}      # a single-key mapping: the key
//	  - {name: extract, retries: 2}  # a mapping with a name key
//
// A mapping with a `name` key is read by that key even when it has no other
// key (tauro returns "name" for {name: extract}; its documentation says
// extract).
func NodeName(entry any) (string, error) {
	name, _, err := nodeEntry(entry)
	return name, err
}

// nodeEntry is NodeName also returning the entry's per-pipeline overrides
// of the node's configuration (the other keys, or the single key's value).
func nodeEntry(entry any) (string, *config.Map, error) {
	switch x := entry.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			return "", nil, errors.New("invalid node format: the node name is empty")
		}
		return x, nil, nil
	case *config.Map, map[string]any:
		keys, _ := mapKeys(x)
		if nv, ok := mapGet(x, "name"); ok {
			name, ok := nv.(string)
			if !ok || strings.TrimSpace(name) == "" {
				return "", nil, fmt.Errorf("invalid node format: 'name' must be a non-empty string, got %s", typeName(nv))
			}
			var over *config.Map
			for _, k := range keys {
				if k == "name" {
					continue
				}
				if over == nil {
					over = config.NewMap()
				}
				v, _ := mapGet(x, k)
				over.Set(k, v)
			}
			return name, over, nil
		}
		if len(keys) != 1 {
			return "", nil, fmt.Errorf(
				"invalid node format: a mapping entry needs a 'name' key or exactly one key (the node's name), got %d keys", len(keys))
		}
		v, _ := mapGet(x, keys[0])
		switch o := v.(type) {
		case nil:
			return keys[0], nil, nil
		case *config.Map:
			if o.Len() == 0 {
				return keys[0], nil, nil
			}
			return keys[0], o, nil
		case map[string]any:
			over := config.NewMap()
			ks, _ := mapKeys(o)
			for _, k := range ks {
				over.Set(k, o[k])
			}
			return keys[0], over, nil
		}
		return "", nil, fmt.Errorf(
			"invalid node format: the settings of node %s must be a mapping, got %s", q(keys[0]), typeName(v))
	}
	return "", nil, fmt.Errorf("invalid node format: expected a node name, got %s", typeName(entry))
}
