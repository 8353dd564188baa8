// Command testmlflow runs one MLflow tracking server for a test run, in the
// foreground, until interrupted: `make test` starts it beside the Spark
// Connect server, the Kafka broker and PostgreSQL and hands it to every
// test binary as TAURO_MLFLOW_URI.
//
//	testmlflow --state DIR --ready-file FILE
//
// Once the server answers, its tracking URI is printed and written to the
// ready file. The state folder holds its database, artifacts and log.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testmlflow:", err)
		os.Exit(1)
	}
}

func run() error {
	state := flag.String("state", "", "folder for the server's database, artifacts and log (required)")
	readyFile := flag.String("ready-file", "", "write the server's tracking URI here once it answers")
	flag.Parse()
	if *state == "" {
		return fmt.Errorf("--state is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	began := time.Now()
	s, err := mlflowtest.Start(ctx, *state)
	if err != nil {
		return err
	}
	fmt.Printf("MLflow at %s, up in %s (log: %s)\n", s.URI(), time.Since(began).Round(time.Millisecond), s.LogPath())
	if *readyFile != "" {
		tmp := *readyFile + ".tmp"
		err := os.WriteFile(tmp, []byte(s.URI()+"\n"), 0o644)
		if err == nil {
			err = os.Rename(tmp, *readyFile)
		}
		if err != nil {
			_ = s.Stop(context.Background())
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-s.Done():
		return fmt.Errorf("the tracking server exited; see %s", s.LogPath())
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Stop(stopCtx)
}
