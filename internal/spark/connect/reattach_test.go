package connect

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// memJournal keeps journal entries for the length of a test; the run store
// is the product's journal.
type memJournal struct {
	mu    sync.Mutex
	m     map[string][]byte
	saves int
}

func (j *memJournal) Load(_ context.Context, key string) ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[key], nil
}

func (j *memJournal) Save(_ context.Context, key string, value []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = map[string][]byte{}
	}
	j.m[key] = append([]byte(nil), value...)
	j.saves++
	return nil
}

// slowRows is 40 rows in two partitions, each row sleeping 150 ms: the write
// takes about three seconds.
const slowRows = "SELECT id, reflect('java.lang.Thread', 'sleep', CAST(150 AS BIGINT)) AS slept FROM range(0, 40, 1, 2)"

// deltaCommits counts the commits in a Delta table's history.
func deltaCommits(t *testing.T, s *Session, path string) int {
	t.Helper()
	return len(rows(t, s, "DESCRIBE HISTORY delta.`"+path+"`"))
}

func TestReopen_AnotherProcessTakesUpTheWriteTheFirstLeftRunning(t *testing.T) {
	remote := sparktest.Remote(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	journal := &memJournal{}
	first, err := Connect(ctx, remote, Config{RunID: "reopen", Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	res, err := first.RunSQL(ctx, NodeSpec{Name: "slow", SQL: slowRows}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "landed")
	out := OutputSpec{Key: "bronze.slow.landed", Format: "delta", Path: path, WriteMode: "append"}
	const step = "n/slow/1/write/0/bronze.slow.landed"

	// The first process dies a second into the write: its connection drops
	// without a word to the server, as a SIGKILL leaves it.
	time.AfterFunc(time.Second, func() { _ = first.conn.Close() })
	if _, err := first.WriteOutput(ctx, res.View, out, step); err == nil {
		t.Fatal("the write finished before the connection dropped; make it slower")
	}
	if b, _ := journal.Load(ctx, step); b == nil {
		t.Fatal("the connection dropped before the write was sent; the test takes up nothing")
	}
	id := first.Identity()

	second, err := Reopen(ctx, remote, id, Config{RunID: "reopen", Journal: journal})
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	t.Cleanup(func() {
		if err := second.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if second.ID() != id.Session {
		t.Errorf("reopened session %s, want %s", second.ID(), id.Session)
	}
	got, err := second.WriteOutput(ctx, res.View, out, step)
	if err != nil {
		t.Fatalf("taking the write up: %v", err)
	}
	if got.Rows != 40 {
		t.Errorf("the write reports %d rows, want 40", got.Rows)
	}
	if n := deltaCommits(t, second, path); n != 1 {
		t.Errorf("the table has %d commits, want 1: the write ran twice", n)
	}
	if n := rows(t, second, "SELECT count(*) FROM delta.`"+path+"`")[0][0]; n != int64(40) {
		t.Errorf("the table has %v rows, want 40", n)
	}

	// The step is done: asked again, it reports the same rows and runs nothing.
	again, err := second.WriteOutput(ctx, res.View, out, step)
	if err != nil || again.Rows != 40 {
		t.Fatalf("a done step again = %+v, %v; want its 40 rows", again, err)
	}
	if n := deltaCommits(t, second, path); n != 1 {
		t.Errorf("the table has %d commits after the done step was asked again, want 1", n)
	}
	// The session's views are the first process's.
	if n := rows(t, second, "SELECT count(*) FROM slow")[0][0]; n != int64(40) {
		t.Errorf("the session view slow has %v rows in the reopened session, want 40", n)
	}
}

func TestReopen_AReleasedSessionIsLost(t *testing.T) {
	remote := sparktest.Remote(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Connect(ctx, remote, Config{RunID: "released"})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Identity()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = Reopen(ctx, remote, id, Config{RunID: "released"})
	if !errors.Is(err, ErrSessionLost) {
		t.Fatalf("Reopen of a released session = %v, want ErrSessionLost", err)
	}
}

// journaledWrite is a session with a journal, the result view of five rows
// and a parquet output to write it to.
func journaledWrite(ctx context.Context, t *testing.T) (*Session, *memJournal, string, OutputSpec) {
	t.Helper()
	journal := &memJournal{}
	s := connect(t, nil)
	s.journal = journal
	res, err := s.RunSQL(ctx, NodeSpec{Name: "x", SQL: "SELECT id FROM range(5)"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, journal, res.View, OutputSpec{Key: "x", Format: "parquet", Path: filepath.Join(t.TempDir(), "x")}
}

func TestExecuteStep_AnOperationRecordedButNeverSentIsSentAndOneWithResponsesIsLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, journal, view, out := journaledWrite(ctx, t)

	// Killed between recording the write and sending it: the server never
	// saw the operation, so it is sent, once, under its recorded id.
	const unsent = "n/x/1/write/0/x"
	op := newUUID()
	if err := journal.Save(ctx, unsent, []byte(`{"operation_id":"`+op+`"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.WriteOutput(ctx, view, out, unsent)
	if err != nil || got.Rows != 5 {
		t.Fatalf("a recorded write the server never saw = %+v, %v; want it written, 5 rows", got, err)
	}
	if rec, _ := s.loadStep(ctx, unsent); rec == nil || !rec.Done || rec.OperationID != op {
		t.Errorf("the step's record %+v, want done under operation %s", rec, op)
	}

	// A write whose responses were read is not sent again when the server
	// no longer has it: it may have run.
	const read = "n/x/2/write/0/x"
	if err := journal.Save(ctx, read, []byte(`{"operation_id":"`+newUUID()+`","last_response_id":"`+newUUID()+`"}`)); err != nil {
		t.Fatal(err)
	}
	_, err = s.WriteOutput(ctx, view, out, read)
	if !errors.Is(err, ErrOperationLost) || !strings.Contains(err.Error(), "OPERATION_NOT_FOUND") {
		t.Fatalf("taking up a gone operation = %v, want ErrOperationLost naming OPERATION_NOT_FOUND", err)
	}
}

// A journaled step's operation is released once its every response has
// been read, without the step waiting for the release: taking the
// operation up again soon finds the server no longer has it.
func TestExecuteStep_AnEndedOperationIsReleasedAfterTheStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, journal, view, out := journaledWrite(ctx, t)
	const step = "n/x/1/write/0/x"
	if got, err := s.WriteOutput(ctx, view, out, step); err != nil || got.Rows != 5 {
		t.Fatalf("write = %+v, %v; want 5 rows", got, err)
	}
	rec, err := s.loadStep(ctx, step)
	if err != nil || rec == nil || !rec.Done || rec.LastResponseID == "" {
		t.Fatalf("the step's record %+v, %v; want it done after a response", rec, err)
	}
	// Recorded as read but not ended, the step takes the operation up
	// again: a released operation is gone (OPERATION_NOT_FOUND).
	deadline := time.Now().Add(10 * time.Second)
	for {
		again := *rec
		again.Done = false
		b, _ := json.Marshal(&again)
		if err := journal.Save(ctx, step, b); err != nil {
			t.Fatal(err)
		}
		_, err := s.WriteOutput(ctx, view, out, step)
		if errors.Is(err, ErrOperationLost) && strings.Contains(err.Error(), "OPERATION_NOT_FOUND") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("taking the ended operation up again 10 s on = %v; want it released (OPERATION_NOT_FOUND)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
