package connect

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// OverwriteReplaceWhere is the OverwriteStrategy that overwrites only the
// rows of a window.
const OverwriteReplaceWhere = "replace_where"

func overwriteStrategy(s string) (string, error) {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "") {
	case "":
		return "", nil
	case "replacewhere":
		return OverwriteReplaceWhere, nil
	}
	return "", fmt.Errorf("overwrite_strategy %q is not supported; use replaceWhere or leave it out", s)
}

var identifierRE = regexp.MustCompile(`^[\p{L}_][\p{L}\p{N}_]*$`)

// WindowPredicate is the SQL condition "column lies in [start, end]", for
// whole days: column >= start AND column < the day after end. column must be
// a plain identifier (letters, digits, underscores) and the dates
// YYYY-MM-DD with start <= end; nothing else reaches the SQL text.
func WindowPredicate(column, start, end string) (string, error) {
	if len(column) > 128 || !identifierRE.MatchString(column) {
		return "", fmt.Errorf("the date column %q is not a plain column name (letters, digits and underscores)", column)
	}
	from, err := parseDay("start_date", start)
	if err != nil {
		return "", err
	}
	to, err := parseDay("end_date", end)
	if err != nil {
		return "", err
	}
	if to.Before(from) {
		return "", fmt.Errorf("end_date %s is before start_date %s", end, start)
	}
	q := "`" + column + "`"
	return fmt.Sprintf("%s >= '%s' AND %s < '%s'", q, from.Format(time.DateOnly), q, to.AddDate(0, 0, 1).Format(time.DateOnly)), nil
}

func parseDay(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("%s is not set; the window needs the run's dates", name)
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil || d.Format(time.DateOnly) != v {
		return time.Time{}, fmt.Errorf("%s %q is not a date of the form YYYY-MM-DD", name, v)
	}
	return d, nil
}
