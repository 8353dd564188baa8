package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func TestInterpolate_EdgeCases(t *testing.T) {
	tests := []struct {
		name string
		in   string
		env  map[string]string
		vars map[string]string
		want string
		err  string
	}{
		{name: "chain of settings expands fully", in: "${a}/x",
			vars: map[string]string{"a": "${b}/a", "b": "${c}/b", "c": "/root"}, want: "/root/b/a/x"},
		{name: "one variable used many times", in: "${a}-${a}-${a}", vars: map[string]string{"a": "${b}", "b": "v"}, want: "v-v-v"},
		{name: "environment value is not expanded again", in: "${E}", env: map[string]string{"E": "${a}"},
			vars: map[string]string{"a": "x"}, want: "${a}"},
		{name: "empty environment value still wins", in: "[${a}]", env: map[string]string{"a": ""},
			vars: map[string]string{"a": "x"}, want: "[]"},
		{name: "unclosed placeholder is text", in: "a ${b", vars: map[string]string{"b": "x"}, want: "a ${b"},
		{name: "empty name is text", in: "${}${b}", vars: map[string]string{"b": "x"}, want: "${}x"},
		{name: "placeholder inside a name is expanded, the outer one kept", in: "${${b}}",
			vars: map[string]string{"b": "x"}, want: "${x}"},
		{name: "dollar without brace is text", in: "$a ${b}$", vars: map[string]string{"b": "x"}, want: "$a x$"},
		{name: "self reference is circular", in: "${a}", vars: map[string]string{"a": "x${a}"}, err: "circular reference ${a} -> ${a}"},
		{name: "cycle named from where it closes", in: "${top}", vars: map[string]string{"top": "${a}", "a": "${b}", "b": "${a}"},
			err: "${a} -> ${b} -> ${a}"},
		{name: "doubling at every level is stopped", in: "${v0}", vars: doubling(30), err: "more than 1048576 bytes longer"},
		{name: "very deep chain is stopped", in: "${v0}", vars: chain(100), err: "nested more than 32 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Interpolate(tt.in, lookupFrom(tt.env), tt.vars)
			if tt.err != "" {
				var p problem.Problem
				if l, ok := problem.From(err); ok {
					p = l[0]
				}
				if err == nil || !strings.Contains(err.Error(), tt.err) || p.Code != problem.CodeInterpolation {
					t.Fatalf("got %q, %v; want an interpolation problem containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestInterpolate_NilLookupUsesOnlyVars(t *testing.T) {
	got, err := Interpolate("${HOME}/${a}", nil, map[string]string{"a": "x"})
	if err != nil || got != "${HOME}/x" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// doubling is v0 = ${v1}${v1}, v1 = ${v2}${v2}, ...: 2^n bytes at v0.
func doubling(n int) map[string]string {
	vars := map[string]string{fmt.Sprintf("v%d", n): "x"}
	for i := range n {
		vars[fmt.Sprintf("v%d", i)] = fmt.Sprintf("${v%d}${v%d}", i+1, i+1)
	}
	return vars
}

// chain is v0 = ${v1}, v1 = ${v2}, ... n deep.
func chain(n int) map[string]string {
	vars := map[string]string{fmt.Sprintf("v%d", n): "end"}
	for i := range n {
		vars[fmt.Sprintf("v%d", i)] = fmt.Sprintf("${v%d}", i+1)
	}
	return vars
}
