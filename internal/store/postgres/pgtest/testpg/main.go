// Command testpg runs one PostgreSQL cluster for a test run, in the
// foreground, until interrupted: `make test` starts it beside the Spark
// Connect server and the Kafka broker and hands it to every test binary
// as TAURO_POSTGRES_URL and TAURO_POSTGRES_PASSWORD_FILE.
//
//	testpg --ready-file FILE
//
// Once the database answers, the ready file holds two lines: its URL and
// the file that holds its password. The cluster lives in a temp folder,
// removed when it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testpg:", err)
		os.Exit(1)
	}
}

func run() error {
	readyFile := flag.String("ready-file", "", "write the database's URL and password file here once it answers")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	c, err := pgtest.Start(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("PostgreSQL at %s, up in %s (log: %s)\n", c.URL, time.Since(began).Round(time.Millisecond), c.LogPath())
	if *readyFile != "" {
		tmp := *readyFile + ".tmp"
		err := os.WriteFile(tmp, []byte(c.URL+"\n"+c.PasswordFile+"\n"), 0o600)
		if err == nil {
			err = os.Rename(tmp, *readyFile)
		}
		if err != nil {
			_ = c.Stop(context.Background())
			return err
		}
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Stop(stopCtx)
}
