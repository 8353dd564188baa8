package config

import (
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func TestParseOutputKey_EdgeCases(t *testing.T) {
	tests := []struct {
		in   string
		want OutputKey
		err  string
	}{
		{in: "gold/sales.daily-v2", want: OutputKey{"gold", "sales", "daily-v2"}},
		{in: "  gold.sales.daily  ", want: OutputKey{"gold", "sales", "daily"}},
		{in: ".gold.sales.daily", err: "invalid characters"},
		{in: "gold.sales.daily/", err: "invalid characters"},
		{in: "gold//sales/daily", err: "invalid characters"},
		{in: "gold.sales.dai ly", err: "invalid characters in 'table'"},
		{in: "gö.sales.daily", err: "invalid characters in 'schema'"},
		{in: "out:gold.sales.daily", err: "invalid characters in 'schema'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOutputKey(tt.in)
			if tt.err != "" {
				l, _ := problem.From(err)
				if err == nil || !strings.Contains(err.Error(), tt.err) || l[0].Code != problem.CodeInvalidOutputKey {
					t.Fatalf("got %v, %v; want an output-key problem containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestOutputPath_KeepsURIsAndAddsEnvPerMode(t *testing.T) {
	key := OutputKey{"gold", "sales", "daily"}
	tests := []struct {
		name, base, mode, env, want string
	}{
		{"databricks is distributed", "abfss://c@acct.dfs.core.windows.net/lake", "databricks", "prod", "abfss://c@acct.dfs.core.windows.net/lake/prod/gold/sales/daily"},
		{"mode is case-insensitive", "/out", "LOCAL", "dev", "/out/dev/gold/sales/daily"},
		{"no env, no env folder", "/out", "local", "", "/out/gold/sales/daily"},
		{"gs with trailing slashes", "gs://bkt//", "spark", "dev", "gs://bkt/gold/sales/daily"},
		{"dbfs single-slash scheme", "dbfs:/mnt/out/", "distributed", "prod", "dbfs:/mnt/out/prod/gold/sales/daily"},
		{"bare scheme keeps its slashes", "s3://", "spark", "", "s3://gold/sales/daily"},
		{"relative local path", "output", "local", "dev", "output/dev/gold/sales/daily"},
		{"local path is cleaned", "/out//x/", "local", "dev", "/out/x/dev/gold/sales/daily"},
		{"colon in a local name is not a scheme", "data:v1", "spark", "", "data:v1/gold/sales/daily"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OutputPath(tt.base, tt.mode, tt.env, key); got != tt.want {
				t.Fatalf("OutputPath(%q, %q, %q) = %q, want %q", tt.base, tt.mode, tt.env, got, tt.want)
			}
		})
	}
}
