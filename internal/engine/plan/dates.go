package plan

import (
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// checkDates picks the effective dates (the request's, else the global
// defaults) and checks them. Dates are checked whenever given, even if the
// pipeline does not require them: a malformed date is a mistake either way.
func (r *resolver) checkDates(required bool) (time.Time, time.Time) {
	start := strings.TrimSpace(r.req.StartDate)
	if start == "" {
		start = strings.TrimSpace(r.set.StartDate)
	}
	end := strings.TrimSpace(r.req.EndDate)
	if end == "" {
		end = strings.TrimSpace(r.set.EndDate)
	}
	ts, okStart := r.checkDate("start_date", "start", start, required)
	te, okEnd := r.checkDate("end_date", "end", end, required)
	if okStart && okEnd && ts.After(te) {
		r.add("start_date", problem.CodeDateRange,
			"start_date %s must be on or before end_date %s; swap them or fix the range", start, end)
	}
	return ts, te
}

// checkDate checks one YYYY-MM-DD date.
func (r *resolver) checkDate(field, label, v string, required bool) (time.Time, bool) {
	if v == "" {
		if required {
			r.add(field, problem.CodeRequired,
				"%s date is required: pass %s or set %s in the global settings (a pipeline that reads no dated data can set requires_dates: false)",
				label, field, field)
		}
		return time.Time{}, false
	}
	if !dateShape(v) {
		r.add(field, problem.CodeInvalidDate, "%s %s must be a date in YYYY-MM-DD format, e.g. 2025-01-31", field, q(v))
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		r.add(field, problem.CodeInvalidDate, "%s %s is not a valid date (no such day in the calendar)", field, q(v))
		return time.Time{}, false
	}
	return t, true
}

// dateShape reports whether s looks like YYYY-MM-DD, so that "20-09-2025"
// is told apart from "2025-02-30" (shaped right, but no such day).
func dateShape(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i := 0; i < 10; i++ {
		if i == 4 || i == 7 {
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatDate writes a date as YYYY-MM-DD, "" for the zero time (no date):
// the one way a run's dates are written, in run records, SQL predicates and
// the Python worker protocol.
func FormatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}
