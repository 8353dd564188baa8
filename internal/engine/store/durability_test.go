package store_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func TestReopen_AfterCloseKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	interruptedFixture(t, s)
	want := map[string]run.Run{}
	wantEvents := map[string][]run.Event{}
	for _, id := range []string{"r1", "r2", "r3"} {
		want[id] = get(t, s, id)
		wantEvents[id], _ = s.Events(ctx, id, 0, 0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != store.ErrClosed {
		t.Errorf("second Close = %v; want ErrClosed", err)
	}
	if _, err := s.GetRun(ctx, "r1"); err != store.ErrClosed {
		t.Errorf("GetRun after Close = %v; want ErrClosed", err)
	}

	s2, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for id, w := range want {
		if got := get(t, s2, id); !reflect.DeepEqual(got, w) {
			t.Errorf("run %s after reopening:\n got %+v\nwant %+v", id, got, w)
		}
		if got, _ := s2.Events(ctx, id, 0, 0); !reflect.DeepEqual(got, wantEvents[id]) {
			t.Errorf("events of %s changed after reopening", id)
		}
	}
	// Sequences continue where they stopped.
	if out := appendOK(t, s2, "r2", message("c", "again")); out[0].Sequence != want["r2"].LastSequence+1 {
		t.Errorf("next sequence = %d; want %d", out[0].Sequence, want["r2"].LastSequence+1)
	}
}

func TestReopen_WithoutCloseSeesEveryCommittedEvent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	create(t, s, newRun("r", "p", "a"))
	for i := range 50 {
		appendOK(t, s, "r", message("a", fmt.Sprint(i)))
	}
	// No Close: a second store opens the file as a restarted daemon would.
	s2, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	evs, err := s2.Events(ctx, "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSequences(t, evs, 1, 51)
}

// The crash test runs this in a child process, which appends until it is
// killed and prints each sequence once Append has returned.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_DIR")
	if dir == "" {
		t.Skip("helper for TestCrash_KilledProcessKeepsEveryCommittedEvent")
	}
	ctx := context.Background()
	s, err := store.Open(ctx, dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	if _, _, err := s.CreateRun(ctx, newRun("r", "p", "a")); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	if _, err := s.Append(ctx, "r", runState(run.Running, ""), nodeState("a", run.NodeRunning, 1)); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		out, err := s.Append(ctx, "r", metric("a", "progress", float64(i)))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(out[0].Sequence)
	}
}

func TestCrash_KilledProcessKeepsEveryCommittedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
	cmd.Env = append(os.Environ(), "STORE_CRASH_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acknowledged int64
	lines := bufio.NewScanner(stdout)
	for acknowledged < 1000 && lines.Scan() {
		n, err := strconv.ParseInt(lines.Text(), 10, 64)
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("child: %s", lines.Text())
		}
		acknowledged = n
	}
	// SIGKILL in the middle of the appends: no Close, no deferred code.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if acknowledged < 1000 {
		t.Fatalf("child stopped after %d events", acknowledged)
	}

	s, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := get(t, s, "r")
	if r.LastSequence < acknowledged {
		t.Fatalf("the database holds %d events; the killed process had committed %d", r.LastSequence, acknowledged)
	}
	evs, err := s.Events(context.Background(), "r", 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	checkSequences(t, evs, 1, r.LastSequence)
	if got := r.Nodes[0].Attempts[0].Metrics["progress"]; got != float64(r.LastSequence-4) {
		t.Errorf("the attempt's metric = %v; want the last stored value %d", got, r.LastSequence-4)
	}
	ids, err := s.Recover(context.Background())
	if err != nil || len(ids) != 1 {
		t.Errorf("Recover = %v, %v; want the killed run", ids, err)
	}
	t.Logf("killed after %d acknowledged events; %d stored", acknowledged, r.LastSequence)
}

func TestOpen_RefusesADatabaseFromANewerExecd(t *testing.T) {
	s, dir := open(t)
	s.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := store.Open(context.Background(), dir); err == nil {
		s.Close()
		t.Fatal("Open accepted a schema it does not know")
	}
}

func TestOpen_RefusesADirectoryTheDriverWouldMisread(t *testing.T) {
	if _, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "a?b")); err == nil {
		t.Error("Open accepted a path with '?'")
	}
}
