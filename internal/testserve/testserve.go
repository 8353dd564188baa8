// Package testserve is what every test-server command (testbroker, testpg,
// testmlflow) does around its server: `make test` starts each in the
// background, waits for its ready file, hands what the file says to the
// test binaries, and stops it with SIGTERM when the run ends.
package testserve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Server is a running test server.
type Server interface {
	Stop(ctx context.Context) error
	// LogPath is the server's log, named when it fails.
	LogPath() string
}

// exiter is a Server that can exit on its own (a process it supervises).
type exiter interface {
	Done() <-chan struct{}
}

// Main starts a server with start, which returns it and the lines a test
// needs to reach it (an address first); writes those lines to readyFile
// (when set) once the server answers, whole or not at all, readable by the
// owner only, as they may name a password's file; then serves until
// SIGINT or SIGTERM, or until the server exits by itself, which is an
// error. It exits the process: 0 after a clean stop, 1 with the error on
// stderr.
func Main(name, readyFile string, start func(ctx context.Context) (Server, []string, error)) {
	if err := serve(name, readyFile, start); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serve(name, readyFile string, start func(ctx context.Context) (Server, []string, error)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	s, lines, err := start(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s: up at %s in %s (log: %s)\n", name, lines[0], time.Since(began).Round(time.Millisecond), s.LogPath())
	if readyFile != "" {
		if err := writeReady(readyFile, lines); err != nil {
			return errors.Join(err, s.Stop(context.WithoutCancel(ctx)))
		}
	}
	var exited <-chan struct{}
	if e, ok := s.(exiter); ok {
		exited = e.Done()
	}
	select {
	case <-ctx.Done():
	case <-exited:
		return fmt.Errorf("the server exited; see %s", s.LogPath())
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Stop(stopCtx)
}

// writeReady writes lines to path through a temporary file and a rename,
// so a reader never sees half of them.
func writeReady(path string, lines []string) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // WriteFile keeps the mode of a file that exists
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
