package config

import (
	"maps"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func TestNormalizeEnv_KeepsOutputPathsSafe(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: " PROD ", want: "prod"},
		{in: "staging", want: "staging"},
		{in: "qa-eu", want: "qa-eu"},
		{in: "sandbox_", want: "sandbox"},
		{in: "sandbox_../../x", want: "sandbox_x"},
		{in: "../etc", err: "only letters, digits"},
		{in: "a/b", err: "only letters, digits"},
		{in: strings.Repeat("x", maxEnvLen+1), err: "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeEnv(tt.in)
			if tt.err != "" {
				l, ok := problem.From(err)
				if !ok || !strings.Contains(err.Error(), tt.err) || l[0].Code != problem.CodeEnvironment || l[0].Field != "env" {
					t.Fatalf("got %q, %v; want an env problem containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// envConfigOf builds env_config from env -> key -> path (nil map: entry null).
func envConfigOf(envs ...any) *Map {
	m := NewMap()
	for i := 0; i+1 < len(envs); i += 2 {
		entry := NewMap()
		for k, v := range envs[i+1].(map[string]any) {
			entry.Set(k, v)
		}
		m.Set(envs[i].(string), entry)
	}
	return m
}

func TestMergeEnvPaths_ChoosesEntryAndMergesShallowly(t *testing.T) {
	tests := []struct {
		name      string
		envConfig *Map
		requested string
		want      map[string]string
		wantUsed  string
		err       string
	}{
		{
			name:      "sandbox developer without sandbox entry falls back to base",
			envConfig: envConfigOf("base", map[string]any{"nodes_config_path": "n.yaml"}),
			requested: "sandbox_ana", want: map[string]string{"nodes_config_path": "n.yaml"}, wantUsed: "base",
		},
		{
			name: "declared custom environment is used",
			envConfig: envConfigOf("base", map[string]any{"nodes_config_path": "n.yaml"},
				"qa", map[string]any{"nodes_config_path": "qa.yaml"}),
			requested: "QA", want: map[string]string{"nodes_config_path": "qa.yaml"}, wantUsed: "qa",
		},
		{
			name: "empty or null path in the env unsets base's",
			envConfig: envConfigOf("base", map[string]any{"a_path": "a.yaml", "b_path": "b.yaml", "c_path": "c.yaml"},
				"dev", map[string]any{"a_path": "", "b_path": nil}),
			requested: "dev", want: map[string]string{"c_path": "c.yaml"}, wantUsed: "dev",
		},
		{
			name:      "env without base is used alone",
			envConfig: envConfigOf("prod", map[string]any{"a_path": "a.yaml"}),
			requested: "production", want: map[string]string{"a_path": "a.yaml"}, wantUsed: "prod",
		},
		{
			name:      "undeclared custom environment is refused",
			envConfig: envConfigOf("base", map[string]any{}),
			requested: "prdo", err: `unknown environment "prdo": env_config defines base`,
		},
		{
			name:      "standard environment without base is refused",
			envConfig: envConfigOf("prod", map[string]any{}),
			requested: "dev", err: `no "base" entry`,
		},
		{
			name: "empty env_config is refused", envConfig: NewMap(),
			requested: "dev", err: "env_config is missing or empty",
		},
		{
			name:      "non-string path is refused at its key",
			envConfig: envConfigOf("base", map[string]any{"a_path": []any{"x"}}),
			requested: "base", err: "env_config.base.a_path: must be a file path string, found a list",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, used, err := MergeEnvPaths(tt.envConfig, tt.requested)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || used != tt.wantUsed || !maps.Equal(got, tt.want) {
				t.Fatalf("got %v used %q err %v; want %v used %q", got, used, err, tt.want, tt.wantUsed)
			}
		})
	}
}
