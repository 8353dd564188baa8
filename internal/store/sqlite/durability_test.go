package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store/storetest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_DIR")
	if dir == "" {
		t.Skip("helper for TestCrash_KilledProcessKeepsEveryCommittedEvent")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	if _, _, err := s.CreateRun(ctx, storetest.NewRun("r", "p", "a")); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	if _, err := s.Append(ctx, "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1)); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		out, err := s.Append(ctx, "r", storetest.Metric("a", "progress", float64(i)))
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

	s, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := storetest.Get(t, s, "r")
	if r.LastSequence < acknowledged {
		t.Fatalf("the database holds %d events; the killed process had committed %d", r.LastSequence, acknowledged)
	}
	evs, err := s.Events(context.Background(), "r", 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckSequences(t, evs, 1, r.LastSequence)
	if got := r.Nodes[0].Attempts[0].Metrics["progress"]; got != float64(r.LastSequence-4) {
		t.Errorf("the attempt's metric = %v; want the last stored value %d", got, r.LastSequence-4)
	}
	ids, err := s.Unfinished(context.Background())
	if err != nil || len(ids) != 1 {
		t.Errorf("Unfinished = %v, %v; want the killed run", ids, err)
	}
	t.Logf("killed after %d acknowledged events; %d stored", acknowledged, r.LastSequence)
}

func TestOpen_RefusesADatabaseFromANewerExecd(t *testing.T) {
	s, dir := open(t)
	s.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(context.Background(), dir); err == nil {
		s.Close()
		t.Fatal("Open accepted a schema it does not know")
	}
}

func TestOpen_RefusesADirectoryTheDriverWouldMisread(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a?b")); err == nil {
		t.Error("Open accepted a path with '?'")
	}
}
