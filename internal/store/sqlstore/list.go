package sqlstore

// Listing runs: filters, newest-first pages and the opaque page token.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// ListRuns returns runs newest first (create time, then id, descending) and
// a token for the next page ("" after the last). f.Projects nil lists every
// project's runs, an empty non-nil list none. The token carries the filter
// it was made for: presenting it with another filter is
// store.ErrBadPageToken. Pagination is by key, not offset, so runs created while
// a client pages do not shift its pages.
func (s *Store) ListRuns(ctx context.Context, f store.ListFilter, pageSize int, pageToken string) ([]run.Run, string, error) {
	if s.closed() {
		return nil, "", store.ErrClosed
	}
	switch {
	case pageSize < 0:
		return nil, "", fmt.Errorf("%w: page size %d is negative", store.ErrInvalidArgument, pageSize)
	case pageSize == 0:
		pageSize = store.DefaultPageSize
	case pageSize > store.MaxPageSize:
		pageSize = store.MaxPageSize
	}
	states, err := normalizeStates(f.States)
	if err != nil {
		return nil, "", err
	}
	projects := normalizeProjects(f.Projects)
	var where []string
	var args []any
	if len(projects) > 0 {
		where = append(where, "project IN ("+placeholders(len(projects))+")")
		args = append(args, anys(projects)...)
	}
	if f.Pipeline != "" {
		where = append(where, "pipeline = ?")
		args = append(args, f.Pipeline)
	}
	if len(states) > 0 {
		where = append(where, "state IN ("+placeholders(len(states))+")")
		for _, st := range states {
			args = append(args, st)
		}
	}
	if pageToken != "" {
		c, err := decodePageToken(pageToken, pageCursor{Pipeline: f.Pipeline, States: states, Projects: projects})
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(create_time < ? OR (create_time = ? AND id < ?))")
		args = append(args, c.CreateTime, c.CreateTime, c.ID)
	}
	if projects != nil && len(projects) == 0 {
		return nil, "", nil // any of no projects: none
	}
	query := "SELECT " + runColumns + " FROM runs"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY create_time DESC, id DESC LIMIT ?"
	args = append(args, pageSize+1)

	var (
		runs []run.Run
		more bool
	)
	err = s.read(ctx, func(tx Querier) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("store: listing runs: %w", err)
		}
		if runs, err = scanRuns(rows); err != nil {
			return err
		}
		if more = len(runs) > pageSize; more {
			runs = runs[:pageSize]
		}
		return fillNodes(ctx, tx, runs)
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		last := runs[len(runs)-1]
		next = encodePageToken(pageCursor{CreateTime: toNanos(last.CreateTime), ID: last.ID, Pipeline: f.Pipeline, States: states, Projects: projects})
	}
	return runs, next, nil
}

// pageCursor is what a page token holds: where the previous page ended and
// which filter it was made for.
type pageCursor struct {
	Version    int      `json:"v"`
	CreateTime int64    `json:"t"`
	ID         string   `json:"i"`
	Pipeline   string   `json:"p,omitempty"`
	States     []string `json:"s,omitempty"`
	Projects   []string `json:"j,omitempty"`
}

const pageTokenVersion = 1

func encodePageToken(c pageCursor) string {
	c.Version = pageTokenVersion
	b, _ := json.Marshal(c) // strings and ints only: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken reads tok and checks that it was made for the filter in
// want (its Pipeline, States and Projects).
func decodePageToken(tok string, want pageCursor) (pageCursor, error) {
	var c pageCursor
	if len(tok) > 4096 {
		return c, fmt.Errorf("%w: token is too long", store.ErrBadPageToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return c, fmt.Errorf("%w: not a token this server made", store.ErrBadPageToken)
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Version != pageTokenVersion || c.ID == "" {
		return c, fmt.Errorf("%w: not a token this server made", store.ErrBadPageToken)
	}
	if c.Pipeline != want.Pipeline || !slices.Equal(c.States, want.States) || !slices.Equal(c.Projects, want.Projects) {
		return c, fmt.Errorf("%w: the token was made for other filters; list again without it", store.ErrBadPageToken)
	}
	return c, nil
}

// normalizeStates sorts and de-duplicates states, so that a token made for
// [FAILED, RUNNING] also fits [RUNNING, FAILED].
func normalizeStates(in []run.State) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, st := range in {
		switch st {
		case run.Pending, run.Running, run.Succeeded, run.Failed, run.Cancelled, run.Interrupted:
		default:
			return nil, fmt.Errorf("%w: unknown run state %q", store.ErrInvalidArgument, st)
		}
		out = append(out, string(st))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// normalizeProjects sorts and de-duplicates projects as normalizeStates
// does states. nil (every project) stays nil and an empty list (none)
// stays empty.
func normalizeProjects(in []string) []string {
	if in == nil {
		return nil
	}
	out := append([]string{}, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

// anys is vs as query arguments.
func anys(vs []string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

const runColumns = `id, project, COALESCE(request_id, ''), params, state, message,
	create_time, start_time, end_time, repair_count, last_seq, owner, epoch`
