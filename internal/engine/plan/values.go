package plan

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
)

// Config values reach the planner as decoded YAML/JSON, and after ${VAR}
// interpolation a number is often a string ("max_retries: ${RETRIES}"). The
// helpers below accept both spellings so a pipeline that runs under tauro
// runs here unchanged.

// typeName names a decoded value's type the way a config author thinks of it.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64, float64:
		return "number"
	case string:
		return "string"
	case []any, []string:
		return "list"
	case *config.Map, map[string]any:
		return "mapping"
	}
	return fmt.Sprintf("%T", v)
}

// scalarString renders a scalar as text; lists and mappings are not scalars.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// asInt accepts integers, integral floats and numeric strings.
func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		if x < math.MinInt32 || x > math.MaxInt32 {
			return 0, false
		}
		return int(x), true
	case int:
		return x, x >= math.MinInt32 && x <= math.MaxInt32
	case float64:
		if x != math.Trunc(x) || x < math.MinInt32 || x > math.MaxInt32 {
			return 0, false
		}
		return int(x), true
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 32)
		return int(i), err == nil
	}
	return 0, false
}

// asFloat accepts numbers and numeric strings.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// asBool accepts booleans and the strings true/false (any case).
func asBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes":
			return true, true
		case "false", "no":
			return false, true
		}
	}
	return false, false
}

// maxDuration bounds every configured duration; a year is far beyond any
// sensible retry delay or timeout and keeps arithmetic away from overflow.
const maxDuration = 365 * 24 * time.Hour

// asDuration reads a duration written as seconds (tauro's convention: 30,
// 2.5, "30"), as a Go duration ("90s", "5m") or as "<n> <unit>" ("5 minutes").
func asDuration(v any) (time.Duration, bool) {
	if f, ok := asFloat(v); ok {
		if f < 0 || f > maxDuration.Seconds() {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, d >= 0 && d <= maxDuration
	}
	if d, err := parseInterval(s); err == nil {
		return d, true
	}
	return 0, false
}

// mapKeys returns a mapping's keys in declaration order; plain Go maps have
// no order, so theirs are sorted to stay deterministic.
func mapKeys(v any) ([]string, bool) {
	switch x := v.(type) {
	case *config.Map:
		if x == nil {
			return nil, true
		}
		return x.Keys, true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, true
	}
	return nil, false
}

// mapGet reads key from either kind of mapping.
func mapGet(v any, key string) (any, bool) {
	switch x := v.(type) {
	case *config.Map:
		return x.Get(key)
	case map[string]any:
		e, ok := x[key]
		return e, ok
	}
	return nil, false
}

// maxQuoted keeps hostile names from turning one message into megabytes.
const maxQuoted = 120

// q quotes a user-supplied name for a message: 'name' normally, Go-quoted
// when it holds characters a terminal would hide, shortened when huge.
func q(s string) string {
	if utf8.RuneCountInString(s) > maxQuoted {
		r := []rune(s)
		s = string(r[:maxQuoted]) + "…"
	}
	for _, c := range s {
		if !unicode.IsPrint(c) || c == '\'' {
			return strconv.Quote(s)
		}
	}
	return "'" + s + "'"
}

// joinQuoted lists names for a message, eliding the tail of a long list.
func joinQuoted(names []string, limit int) string { return joinWith(names, limit, q) }

// joinWith lists names written by show, eliding the tail of a long list.
func joinWith(names []string, limit int, show func(string) string) string {
	var b strings.Builder
	for i, n := range names {
		if i == limit {
			fmt.Fprintf(&b, " and %d more", len(names)-limit)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(show(n))
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
