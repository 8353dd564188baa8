// Command testbroker runs one Apache Kafka broker for a test run, in the
// foreground, until interrupted: `make test` starts it beside the Spark
// Connect server and hands its address to every test binary as
// TAURO_KAFKA_BOOTSTRAP.
//
//	testbroker --libs .venv/kafka-libs --state DIR --ready-file FILE
//
// Once the broker answers, its address (host:port) is printed and written
// to the ready file. The state folder holds the broker's configuration,
// log (broker.log) and data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/streaming/kafkatest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testbroker:", err)
		os.Exit(1)
	}
}

func run() error {
	libs := flag.String("libs", filepath.Join(".venv", kafkatest.LibsDirName), "folder of the broker's jars (make kafka-libs)")
	state := flag.String("state", "", "folder for the broker's configuration, log and data (required)")
	readyFile := flag.String("ready-file", "", "write the broker's host:port here once it answers")
	flag.Parse()
	if *state == "" {
		return fmt.Errorf("--state is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	began := time.Now()
	b, err := kafkatest.Start(ctx, kafkatest.Config{LibsDir: *libs, Dir: *state})
	if err != nil {
		return err
	}
	fmt.Printf("Kafka broker at %s, up in %s (log: %s)\n", b.Bootstrap(), time.Since(began).Round(time.Millisecond), b.LogPath())
	if *readyFile != "" {
		tmp := *readyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(b.Bootstrap()+"\n"), 0o644); err != nil {
			_ = b.Stop(context.Background())
			return err
		}
		if err := os.Rename(tmp, *readyFile); err != nil {
			_ = b.Stop(context.Background())
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-b.Done():
		return fmt.Errorf("the broker exited; see %s", b.LogPath())
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Stop(stopCtx)
}
