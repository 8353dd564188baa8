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
	"errors"
	"flag"

	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
	"github.com/tauro-exec/tauro-exec/internal/testserve"
)

func main() {
	state := flag.String("state", "", "folder for the server's database, artifacts and log (required)")
	readyFile := flag.String("ready-file", "", "write the server's tracking URI here once it answers")
	flag.Parse()
	testserve.Main("testmlflow", *readyFile, func(ctx context.Context) (testserve.Server, []string, error) {
		if *state == "" {
			return nil, nil, errors.New("--state is required")
		}
		s, err := mlflowtest.Start(ctx, *state)
		if err != nil {
			return nil, nil, err
		}
		return s, []string{s.URI()}, nil
	})
}
