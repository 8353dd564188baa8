package connect

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
)

func TestWindowPredicate_CoversWholeDaysFromCheckedParts(t *testing.T) {
	cases := []struct {
		column, start, end, want string
	}{
		{"day", "2024-02-01", "2024-02-29", "`day` >= '2024-02-01' AND `day` < '2024-03-01'"},
		{"event_date", "2024-12-31", "2024-12-31", "`event_date` >= '2024-12-31' AND `event_date` < '2025-01-01'"},
		{"fecha_día", "2023-02-28", "2023-02-28", "`fecha_día` >= '2023-02-28' AND `fecha_día` < '2023-03-01'"},
	}
	for _, c := range cases {
		got, err := WindowPredicate(c.column, c.start, c.end)
		if err != nil || got != c.want {
			t.Errorf("WindowPredicate(%q, %q, %q) = %q, %v; want %q", c.column, c.start, c.end, got, err, c.want)
		}
	}
}

func TestWindowPredicate_RejectsAnythingButAnIdentifierAndDates(t *testing.T) {
	cases := []struct {
		name, column, start, end, inMessage string
	}{
		{"quote in the column", "day` OR 1=1 --", "2024-01-01", "2024-01-31", "not a plain column name"},
		{"expression as column", "to_date(ts)", "2024-01-01", "2024-01-31", "not a plain column name"},
		{"dotted column", "a.b", "2024-01-01", "2024-01-31", "not a plain column name"},
		{"empty column", "", "2024-01-01", "2024-01-31", "not a plain column name"},
		{"leading digit", "1day", "2024-01-01", "2024-01-31", "not a plain column name"},
		{"quote in a date", "day", "2024-01-01' OR '1'='1", "2024-01-31", "start_date"},
		{"impossible date", "day", "2024-02-01", "2024-02-30", "end_date"},
		{"unpadded date", "day", "2024-2-1", "2024-02-29", "start_date"},
		{"timestamp as date", "day", "2024-02-01T00:00:00", "2024-02-29", "start_date"},
		{"missing end", "day", "2024-02-01", "", "end_date is not set"},
		{"reversed", "day", "2024-03-01", "2024-02-01", "before start_date"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := WindowPredicate(c.column, c.start, c.end)
			if err == nil || !strings.Contains(err.Error(), c.inMessage) {
				t.Errorf("WindowPredicate = %q, %v; want an error saying %q", got, err, c.inMessage)
			}
		})
	}
}

func TestOutputSpecCheck_ReplaceWhere(t *testing.T) {
	base := OutputSpec{Key: "gold.sales.daily", Format: "delta", Path: "/data/daily", OverwriteStrategy: "replaceWhere",
		PartitionBy: []string{"day"}, StartDate: "2024-02-01", EndDate: "2024-02-29"}
	with := func(f func(o *OutputSpec)) OutputSpec {
		o := base
		o.Options = maps.Clone(base.Options)
		f(&o)
		return o
	}
	valid := []struct {
		name string
		out  OutputSpec
		want string
	}{
		{"the only partition column", base, "`day` >= '2024-02-01' AND `day` < '2024-03-01'"},
		{"tauro's spelling in any case, partition_col", with(func(o *OutputSpec) {
			o.OverwriteStrategy, o.DateColumn, o.PartitionBy = "REPLACEWHERE", "ts", nil
		}), "`ts` >= '2024-02-01' AND `ts` < '2024-03-01'"},
		{"snake case, explicit overwrite", with(func(o *OutputSpec) { o.OverwriteStrategy, o.WriteMode = "replace_where", "overwrite" }), "`day` >= '2024-02-01' AND `day` < '2024-03-01'"},
		{"a fixed predicate", with(func(o *OutputSpec) {
			o.ReplacePredicate, o.PartitionBy, o.StartDate, o.EndDate = "region = 'eu'", nil, "", ""
		}), "region = 'eu'"},
	}
	for _, c := range valid {
		t.Run(c.name, func(t *testing.T) {
			if err := c.out.Check(); err != nil {
				t.Fatal(err)
			}
			_, opts, _ := c.out.resolve()
			if opts["replaceWhere"] != c.want {
				t.Errorf("replaceWhere = %q, want %q", opts["replaceWhere"], c.want)
			}
		})
	}

	invalid := []struct {
		name      string
		out       OutputSpec
		inMessage string
	}{
		{"not delta", with(func(o *OutputSpec) { o.Format = "parquet" }), "needs format delta"},
		{"append", with(func(o *OutputSpec) { o.WriteMode = "append" }), "needs write_mode overwrite"},
		{"no column", with(func(o *OutputSpec) { o.PartitionBy = []string{"region", "day"} }), "needs partition_col"},
		{"bad column", with(func(o *OutputSpec) { o.DateColumn = "day; DROP TABLE x" }), "not a plain column name"},
		{"no dates", with(func(o *OutputSpec) { o.StartDate, o.EndDate = "", "" }), "start_date is not set"},
		{"bad date", with(func(o *OutputSpec) { o.EndDate = "29/02/2024" }), "end_date"},
		{"predicate twice", with(func(o *OutputSpec) { o.Options = map[string]string{"replaceWhere": "x > 1"} }), "both set the predicate"},
		{"unknown strategy", with(func(o *OutputSpec) { o.OverwriteStrategy = "merge" }), `overwrite_strategy "merge" is not supported`},
		{"unknown write mode", with(func(o *OutputSpec) { o.WriteMode = "upsert" }), "write_mode"},
		{"no path", with(func(o *OutputSpec) { o.Path = "" }), "no path"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			err := c.out.Check()
			var se *Error
			if !errors.As(err, &se) || se.Retryable() || retry.Classify(err) != retry.ClassPermanent {
				t.Fatalf("Check = %#v, want a permanent *Error", err)
			}
			if !strings.Contains(err.Error(), c.inMessage) || !strings.Contains(err.Error(), "gold.sales.daily") {
				t.Errorf("Check = %q, want it to name the output and say %q", err, c.inMessage)
			}
		})
	}
}

func TestOutputSpecCheck_PlainOutputsKeepTheirOptions(t *testing.T) {
	out := OutputSpec{Key: "o", Format: "delta", Path: "/p", Options: map[string]string{"replaceWhere": "day = '2024-01-01'", "mergeSchema": "true"}}
	mode, opts, err := out.resolve()
	if err != nil || mode != "SAVE_MODE_OVERWRITE" || !maps.Equal(opts, out.Options) {
		t.Errorf("resolve = %s, %v, %v; want overwrite with the options as given", mode, opts, err)
	}
}
