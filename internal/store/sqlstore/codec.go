package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Times are stored as unix nanoseconds with 0 for "not yet", because the
// zero time.Time has no unix nanosecond value.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeError turns a node error into its JSON column value (NULL for none).
func encodeError(e *run.Error) (sql.NullString, error) {
	if e == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func decodeError(s sql.NullString) (*run.Error, error) {
	if !s.Valid {
		return nil, nil
	}
	var e run.Error
	if err := json.Unmarshal([]byte(s.String), &e); err != nil {
		return nil, fmt.Errorf("decoding a stored error: %w", err)
	}
	return &e, nil
}

// Identifier limits: ids and names are keys, shown in logs and UIs; there is
// no reason for them to be long, and a key that is cut would collide.
const (
	maxIDBytes   = 128
	maxNameBytes = 256
)

// checkIdentifier refuses keys that could not round-trip through JSON (bad
// UTF-8 turns into U+FFFD, so an event would name a node that does not
// exist) or that would garble a log line.
func checkIdentifier(field, v string, maxBytes int) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: %s is empty", store.ErrInvalidArgument, field)
	case len(v) > maxBytes:
		return fmt.Errorf("%w: %s is %d bytes long; the limit is %d", store.ErrInvalidArgument, field, len(v), maxBytes)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s %q is not valid UTF-8", store.ErrInvalidArgument, field, v)
	case strings.ContainsFunc(v, unicode.IsControl):
		return fmt.Errorf("%w: %s %q contains a control character", store.ErrInvalidArgument, field, v)
	}
	return nil
}

// checkProject accepts "" (the project of records made before execd named
// projects, and of an execd serving one unnamed) and any other name
// checkIdentifier accepts.
func checkProject(project string) error {
	if project == "" {
		return nil
	}
	return checkIdentifier("project", project, maxNameBytes)
}

// truncatedMark ends text the store cut, so a reader knows it is not whole.
const truncatedMark = "… [truncated by execd]"

// clampText makes free text valid UTF-8 and at most maxBytes long.
func clampText(s string, maxBytes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxBytes {
		return s
	}
	mark := truncatedMark
	if maxBytes <= len(mark) {
		mark = "" // a limit this small has no room for the mark
	}
	n := maxBytes - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}

// clampError returns a copy of e with its text clamped. The copy also means
// the events the store hands out never share an Error with the caller's.
func clampError(e *run.Error, maxBytes int) *run.Error {
	if e == nil {
		return nil
	}
	c := *e
	c.Type = clampText(c.Type, maxNameBytes)
	c.Message = clampText(c.Message, maxBytes)
	c.Traceback = clampText(c.Traceback, maxBytes)
	return &c
}

func cloneError(e *run.Error) *run.Error {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}
