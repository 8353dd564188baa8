package config

// maxPlainDepth bounds Plain: Parse bounds a parsed tree far below it, and
// the guard keeps hand-built trees honest.
const maxPlainDepth = 128

// Plain is v as plain Go values: every *Map, at any depth and inside lists
// too, becomes a map[string]any, so the value can be handed to JSON, a
// protobuf Struct or a node's hyperparameters. It is the one conversion
// from configuration values to plain ones; v is not changed.
func Plain(v any) any { return plainDepth(v, 0) }

func plainDepth(v any, depth int) any {
	if depth > maxPlainDepth {
		return nil
	}
	switch x := v.(type) {
	case *Map:
		if x == nil {
			return map[string]any{}
		}
		out := make(map[string]any, len(x.Keys))
		for _, k := range x.Keys {
			out[k] = plainDepth(x.Values[k], depth+1)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainDepth(e, depth+1)
		}
		return out
	}
	return v
}
