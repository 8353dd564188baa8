package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// writerConn is the writer's one connection and its prepared statements.
//
// Parsing is a large part of what a small SQLite statement costs, and the
// writer runs the same few statements over and over, so it prepares each
// once. The statements are bound to this connection, which is why the
// writer drives its transactions with BEGIN and COMMIT itself rather than
// through database/sql's Tx (a Tx would need a second connection to prepare
// on, and the writer pool has one). Only the holder of the writer slot
// touches it, so it needs no lock of its own.
type writerConn struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

func (c *writerConn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *writerConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *writerConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *writerConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.stmt(ctx, query)
	if err != nil {
		// The unprepared call fails the same way and carries the error in
		// the Row, where the caller looks for it.
		return c.conn.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// begin starts a write transaction. IMMEDIATE takes the write lock at once,
// so a transaction never fails half-way for want of it.
func (c *writerConn) begin(ctx context.Context) error {
	_, err := c.ExecContext(ctx, "BEGIN IMMEDIATE")
	return err
}

func (c *writerConn) commit(ctx context.Context) error {
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		// A failed COMMIT can leave the transaction open; end it so the
		// next write starts clean.
		return errors.Join(err, c.rollback(ctx))
	}
	return nil
}

func (c *writerConn) rollback(ctx context.Context) error {
	if _, err := c.conn.ExecContext(ctx, "ROLLBACK"); err != nil && !isNoTransaction(err) {
		return fmt.Errorf("store: rolling back: %w", err)
	}
	return nil
}

// isNoTransaction reports SQLite's complaint about a ROLLBACK with no
// transaction open (SQLite already rolled it back itself).
func isNoTransaction(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no transaction is active")
}

func (c *writerConn) close() error {
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
	return c.conn.Close()
}
