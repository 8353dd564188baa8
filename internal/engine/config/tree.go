package config

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Map is a YAML or JSON mapping that keeps its keys in the order written.
// Order matters in tauro: it decides ties in the plan and the order of a
// dependency written as a multi-key mapping.
type Map struct {
	Keys   []string
	Values map[string]any
}

// NewMap returns an empty Map.
func NewMap() *Map { return &Map{Values: map[string]any{}} }

// Get returns the value under key.
func (m *Map) Get(key string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.Values[key]
	return v, ok
}

// Set adds or replaces key, keeping the first position of an existing key.
func (m *Map) Set(key string, v any) {
	if _, ok := m.Values[key]; !ok {
		m.Keys = append(m.Keys, key)
	}
	m.Values[key] = v
}

// Len is the number of keys.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.Keys)
}

// Decoded values are nil, bool, int64, float64, string, []any or *Map.
const maxDepth = 64

// decode turns a parsed YAML document into the tree above. Aliases are
// expanded once (a bounded count keeps "billion laughs" out) and mapping keys
// must be scalars.
func decode(n *yaml.Node) (any, error) {
	budget := 1_000_000
	return decodeNode(n, 0, &budget)
}

func decodeNode(n *yaml.Node, depth int, budget *int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, fmt.Errorf("document is too large or expands too many aliases")
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("line %d: nested more than %d levels deep", n.Line, maxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return decodeNode(n.Content[0], depth, budget)
	case yaml.AliasNode:
		return decodeNode(n.Alias, depth+1, budget)
	case yaml.ScalarNode:
		return decodeScalar(n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := decodeNode(c, depth+1, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		m := NewMap()
		explicit := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				if err := mergeInto(m, v, depth, budget); err != nil {
					return nil, err
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping keys must be plain strings", k.Line)
			}
			// YAML and JSON parsers commonly keep the last of two equal keys;
			// for a node or pipeline name that silently drops a definition.
			if explicit[k.Value] {
				return nil, fmt.Errorf("line %d: key %s appears twice in the same mapping; rename or remove one", k.Line, quoteShort(k.Value))
			}
			explicit[k.Value] = true
			val, err := decodeNode(v, depth+1, budget)
			if err != nil {
				return nil, err
			}
			m.Set(k.Value, val)
		}
		return m, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func mergeInto(m *Map, v *yaml.Node, depth int, budget *int) error {
	src, err := decodeNode(v, depth+1, budget)
	if err != nil {
		return err
	}
	merge := func(x any) error {
		sm, ok := x.(*Map)
		if !ok {
			return fmt.Errorf("line %d: '<<' must merge a mapping", v.Line)
		}
		for _, k := range sm.Keys {
			if _, exists := m.Values[k]; !exists {
				m.Set(k, sm.Values[k])
			}
		}
		return nil
	}
	if list, ok := src.([]any); ok {
		for _, x := range list {
			if err := merge(x); err != nil {
				return err
			}
		}
		return nil
	}
	return merge(src)
}

func decodeScalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("line %d: %v", n.Line, err)
		}
		return b, nil
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			return i, nil
		}
		var i int64
		if err := n.Decode(&i); err != nil {
			return n.Value, nil // too large for int64: keep the text
		}
		return i, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, fmt.Errorf("line %d: %v", n.Line, err)
		}
		return f, nil
	default:
		return n.Value, nil
	}
}

// Parse reads one YAML or JSON document into the tree above.
func Parse(b []byte) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	if n.Kind == 0 { // empty or comment-only input: no document at all
		return nil, nil
	}
	return decode(&n)
}
