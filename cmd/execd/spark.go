package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// defaultPython finds the interpreter whose pyspark runs Spark: $TAURO_PYTHON,
// else the repo's .venv (made by `make venv`) above the working directory or
// the executable, else python3.
func defaultPython() string {
	if p := os.Getenv("TAURO_PYTHON"); p != "" {
		return p
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			p := filepath.Join(d, ".venv", "bin", "python")
			if _, err := os.Stat(p); err == nil {
				return p
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "python3"
}

// startEmbeddedSpark starts the local Spark Connect server execd uses when
// no --spark-remote is given.
func startEmbeddedSpark(ctx context.Context, python, stateDir string, conf map[string]string, log *slog.Logger) (*sparkserver.Server, error) {
	if python == "" {
		python = defaultPython()
	}
	log.Info("starting the embedded Spark Connect server", "python", python, "log", filepath.Join(stateDir, "spark", "connect.log"))
	start := time.Now()
	srv, err := sparkserver.Start(ctx, sparkserver.Config{Python: python, StateDir: stateDir, Conf: conf, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("Spark Connect is up", "remote", sparkurl.Redact(srv.Remote()), "took", time.Since(start).Round(time.Millisecond))
	return srv, nil
}

// sparkServer runs only the embedded Spark Connect server, in the
// foreground, until interrupted. The test targets start one this way and
// share it across every test of a run. Its address with the token goes to
// the ready file, readable only by its owner; stdout shows it without.
func sparkServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("spark-server", flag.ContinueOnError)
	state := fs.String("state", ".tauro-exec", "folder for the server's log, warehouse and scratch space")
	python := fs.String("python", "", "Python interpreter with pyspark (default: the repo's .venv)")
	readyFile := fs.String("ready-file", "", "write the sc:// address, with the server's token, here once the server answers (mode 0600)")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	srv, err := startEmbeddedSpark(ctx, *python, abs, nil, log)
	if err != nil {
		return err
	}
	fmt.Println(sparkurl.Redact(srv.Remote()))
	if *readyFile != "" {
		if err := writeRemote(*readyFile, srv.Remote()); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Stop(stopCtx)
}

// writeRemote leaves a server's address, token included, in path, readable
// by its owner only, whole or not at all.
func writeRemote(path, remote string) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // WriteFile keeps the mode of a file that exists
	if err := os.WriteFile(tmp, []byte(remote+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
