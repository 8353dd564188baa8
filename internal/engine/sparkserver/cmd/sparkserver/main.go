// Command sparkserver runs the embedded Spark Connect server on its own, for
// a test run that shares one server across packages:
//
//	go run ./internal/engine/sparkserver/cmd/sparkserver -state .build/spark -remote-file .build/spark/remote &
//	TAURO_SPARK_REMOTE=$(cat .build/spark/remote) go test ./...
//
// It prints the connection string once the server answers, writes it to
// -remote-file if given, and stops the server on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/sparkserver"
)

func main() {
	state := flag.String("state", "", "state directory (log in STATE/spark/connect.log)")
	python := flag.String("python", ".venv/bin/python", "interpreter whose pyspark to run")
	sparkHome := flag.String("spark-home", "", "pyspark package directory (instead of -python)")
	remoteFile := flag.String("remote-file", "", "write the connection string to this file when ready")
	flag.Parse()
	if *state == "" {
		fmt.Fprintln(os.Stderr, "sparkserver: -state is required")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := sparkserver.Start(ctx, sparkserver.Config{SparkHome: *sparkHome, Python: *python, StateDir: *state, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.Remote())
	if *remoteFile != "" {
		if err := os.WriteFile(*remoteFile, []byte(s.Remote()+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
