package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/store/storetest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// Runs hold pipeline parameters and error messages: the database, its WAL
// and its shared-memory file are for execd's user alone, whatever the
// umask, and files an older execd left readable are narrowed.
func TestOpen_TheDatabaseFilesAreTheOwnersOnly(t *testing.T) {
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "state")
	db := filepath.Join(dir, sqlite.FileName)
	s, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Create(t, s, storetest.NewRun("run-1", "p", "a"))
	s.Close()
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		_ = os.Chmod(p, 0o664) // as an execd before file modes mattered left them
	}

	s, err = sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Create(t, s, storetest.NewRun("run-2", "p", "a")) // the WAL and shm files exist while the store is open
	want := map[string]os.FileMode{dir: 0o700, db: 0o600, db + "-wal": 0o600, db + "-shm": 0o600}
	for path, mode := range want {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), mode)
		}
	}
}
