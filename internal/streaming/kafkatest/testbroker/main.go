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
	"errors"
	"flag"
	"path/filepath"

	"github.com/tauro-exec/tauro-exec/internal/streaming/kafkatest"
	"github.com/tauro-exec/tauro-exec/internal/testserve"
)

func main() {
	libs := flag.String("libs", filepath.Join(".venv", kafkatest.LibsDirName), "folder of the broker's jars (make kafka-libs)")
	state := flag.String("state", "", "folder for the broker's configuration, log and data (required)")
	readyFile := flag.String("ready-file", "", "write the broker's host:port here once it answers")
	flag.Parse()
	testserve.Main("testbroker", *readyFile, func(ctx context.Context) (testserve.Server, []string, error) {
		if *state == "" {
			return nil, nil, errors.New("--state is required")
		}
		b, err := kafkatest.Start(ctx, kafkatest.Config{LibsDir: *libs, Dir: *state})
		if err != nil {
			return nil, nil, err
		}
		return b, []string{b.Bootstrap()}, nil
	})
}
