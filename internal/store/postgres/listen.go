package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

// channelOf is where the replicas sharing the store's schema announce
// what they appended. Notifications reach every connection to the
// database that listens, whatever its schema: a channel per schema keeps
// stores in other schemas of the database (another deployment, a
// parallel test) from waking watchers here for ids that only look alike.
func channelOf(ctx context.Context, db *sql.DB) (string, error) {
	var schema sql.NullString // NULL when no schema of the search path exists
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", fmt.Errorf("reading the current schema: %w", err)
	}
	if !schema.Valid || schema.String == "public" {
		return "tauro_exec_events", nil
	}
	sum := sha256.Sum256([]byte(schema.String))
	return "tauro_exec_events_" + hex.EncodeToString(sum[:8]), nil // a plain identifier, whatever the schema's name
}

// notice is a notification's payload: ids only; the tables hold the rest.
type notice struct {
	From        string   `json:"f"`
	Runs        []string `json:"r,omitempty"`
	Experiments []string `json:"x,omitempty"`
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

// Notify announces, in the writing transaction (so it is delivered at
// commit, and only then), the runs and experiments it appended to.
func (b *backend) Notify(ctx context.Context, q sqlstore.Querier, runs, experiments []string) error {
	for _, n := range split(notice{From: b.replica, Runs: runs, Experiments: experiments}) {
		payload, err := json.Marshal(n)
		if err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, `SELECT pg_notify(?, ?)`, b.channel, string(payload)); err != nil {
			return err
		}
	}
	return nil
}

// split cuts n into notices that each fit a notification.
func split(n notice) []notice {
	var out []notice
	cur := notice{From: n.From}
	size := len(n.From) + 16
	add := func(id string, experiment bool) {
		if size+len(id)+4 > maxPayload {
			out = append(out, cur)
			cur, size = notice{From: n.From}, len(n.From)+16
		}
		if experiment {
			cur.Experiments = append(cur.Experiments, id)
		} else {
			cur.Runs = append(cur.Runs, id)
		}
		size += len(id) + 4
	}
	for _, id := range n.Runs {
		add(id, false)
	}
	for _, id := range n.Experiments {
		add(id, true)
	}
	return append(out, cur)
}

// listen follows the other replicas' notifications and wakes the watchers
// of what they name, until the store closes. After a lost connection it
// wakes every watcher: what was committed while it was away is in the
// tables, and the watchers read it there.
func (b *backend) listen(s *sqlstore.Store, first chan<- struct{}) {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	// first is closed once the first LISTEN has taken effect, or failed.
	var once sync.Once
	listening := func() { once.Do(func() { close(first) }) }
	defer listening()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, s, listening)
		listening()
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("the store's listener lost its connection; watchers read the tables until it is back", "err", redact(err, b.conn.Password), "retry_in", backoff)
		s.PokeAll()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenOnce holds one listening connection until it fails.
func (b *backend) listenOnce(ctx context.Context, s *sqlstore.Store, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, b.conn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+b.channel); err != nil {
		return err
	}
	// Anything committed before LISTEN took effect was not announced to
	// this connection.
	s.PokeAll()
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var msg notice
		if json.Unmarshal([]byte(n.Payload), &msg) != nil || msg.From == b.replica {
			continue
		}
		for _, id := range msg.Runs {
			s.Poke(id)
		}
		for _, id := range msg.Experiments {
			s.PokeExperiment(id)
		}
	}
}

func randomName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "execd-" + hex.EncodeToString(b[:])
}
