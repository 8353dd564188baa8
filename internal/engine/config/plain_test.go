package config

import (
	"reflect"
	"testing"
)

func TestPlain_TurnsEveryMappingIntoAPlainMapInsideListsToo(t *testing.T) {
	inner := NewMap()
	inner.Set("units", int64(64))
	m := NewMap()
	m.Set("layers", []any{inner, []any{inner}})
	m.Set("rate", 0.1)

	got := Plain(m)
	want := map[string]any{
		"layers": []any{map[string]any{"units": int64(64)}, []any{map[string]any{"units": int64(64)}}},
		"rate":   0.1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plain = %#v, want %#v", got, want)
	}
	if _, still := m.Values["layers"].([]any)[0].(*Map); !still {
		t.Error("Plain changed the mapping it was given")
	}
}
