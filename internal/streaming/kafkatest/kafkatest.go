// Package kafkatest gives integration tests an Apache Kafka broker. If
// TAURO_KAFKA_BOOTSTRAP is set, tests use that broker (`make test` starts
// one per test run with the testbroker command); otherwise the first test
// that asks starts one from the project venv's kafka-libs, shared by the
// rest of the test binary's tests and stopped by Stop.
//
// A test is skipped only when Java or the broker's jars are missing, and
// fails instead when TAURO_REQUIRE_SPARK=1, as in CI: the Kafka tests are
// Spark integration tests.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/jvm"
)

// Environment variables that steer the tests.
const (
	EnvBootstrap = "TAURO_KAFKA_BOOTSTRAP" // host:port of a running broker
	EnvRequire   = "TAURO_REQUIRE_SPARK"   // "1": a missing Java or broker fails the test
)

var (
	once     sync.Once
	broker   *Broker
	stateDir string
	startErr error
)

// Bootstrap returns the test broker's address, for kafka.bootstrap.servers,
// starting a broker on first use.
func Bootstrap(tb testing.TB) string {
	tb.Helper()
	if b := os.Getenv(EnvBootstrap); b != "" {
		return b
	}
	once.Do(start)
	if startErr != nil {
		missing := errors.Is(startErr, ErrKafkaMissing) || errors.Is(startErr, jvm.ErrMissing)
		if missing && os.Getenv(EnvRequire) != "1" {
			tb.Skipf("no Kafka broker for integration tests (%v); set %s=1 to make this an error", startErr, EnvRequire)
		}
		tb.Fatalf("start a Kafka broker: %v", startErr)
	}
	return broker.Bootstrap()
}

// Topic is a topic name no other test uses, on a broker that lives for the
// whole test run: the test's name and a random suffix.
func Topic(tb testing.TB) string {
	tb.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Trim(topicUnsafe.ReplaceAllString(tb.Name(), "-"), "-")
	if len(name) > 180 {
		name = name[:180]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

// topicUnsafe matches what a Kafka topic name may not hold (letters,
// digits, '.', '_' and '-' only).
var topicUnsafe = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Stop stops the broker this test binary started, if it started one:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		kafkatest.Stop()
//		os.Exit(code)
//	}
func Stop() {
	if broker != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := broker.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "kafkatest:", err)
		}
		cancel()
	}
	if stateDir != "" {
		_ = os.RemoveAll(stateDir)
	}
}

func start() {
	libs, err := LibsDir()
	if err != nil {
		startErr = err
		return
	}
	if stateDir, startErr = os.MkdirTemp("", "tauro-kafka-test-"); startErr != nil {
		return
	}
	broker, startErr = Start(context.Background(), Config{LibsDir: libs, Dir: stateDir})
}

// LibsDir returns the kafka-libs folder of the project venv, found above
// the working directory.
func LibsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the test directory", ErrKafkaMissing)
		}
		dir = parent
	}
	libs := filepath.Join(dir, ".venv", LibsDirName)
	if _, err := os.Stat(libs); err != nil {
		return "", fmt.Errorf("%w: no %s (run 'make kafka-libs')", ErrKafkaMissing, libs)
	}
	return libs, nil
}
