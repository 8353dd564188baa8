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

	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
	"github.com/tauro-exec/tauro-exec/internal/testserve"
)

func main() {
	readyFile := flag.String("ready-file", "", "write the database's URL and password file here once it answers")
	flag.Parse()
	testserve.Main("testpg", *readyFile, func(ctx context.Context) (testserve.Server, []string, error) {
		c, err := pgtest.Start(ctx)
		if err != nil {
			return nil, nil, err
		}
		return c, []string{c.URL, c.PasswordFile}, nil
	})
}
