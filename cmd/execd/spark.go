package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
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
	uiFile := fs.String("ui-file", "", "turn the driver's web UI on, on a free loopback port, and write its http:// address here, before the ready file")
	var conf confFlag
	fs.Var(&conf, "conf", "KEY=VALUE for the server (repeatable), over execd's defaults, e.g. spark.sql.artifact.isolation.enabled=true")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	if *uiFile != "" {
		ui, err := sparkserver.FreeUIConf()
		if err != nil {
			return err
		}
		if conf == nil {
			conf = confFlag{}
		}
		maps.Copy(conf, ui)
	}
	srv, err := startEmbeddedSpark(ctx, *python, abs, conf, log)
	if err != nil {
		return err
	}
	fmt.Println(sparkurl.Redact(srv.Remote()))
	if *uiFile != "" {
		ui, err := srv.UI(ctx)
		if err != nil {
			return errors.Join(err, srv.Stop(context.WithoutCancel(ctx)))
		}
		fmt.Println("Spark UI at", ui)
		if err := writeRemote(*uiFile, ui); err != nil {
			return err
		}
	}
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

// sparkCluster runs a local standalone Spark cluster in the foreground
// until interrupted: a master, --workers workers and a Spark Connect server
// whose jobs run on their executors. Its address with the token goes to
// the ready file (mode 0600); stdout shows it without, with the master's
// and the driver's web UIs.
func sparkCluster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("spark-cluster", flag.ContinueOnError)
	state := fs.String("state", ".tauro-exec-cluster", "folder for the cluster's logs, work folders and warehouse")
	python := fs.String("python", "", "Python interpreter with pyspark (default: the repo's .venv)")
	readyFile := fs.String("ready-file", "", "write the Connect server's sc:// address, with its token, here once every executor has registered (mode 0600)")
	uiFile := fs.String("ui-file", "", "write the Connect server's Spark UI address here (its REST API shows where tasks ran)")
	workers := fs.Int("workers", 2, "workers, each running one executor")
	cores := fs.Int("worker-cores", 1, "cores each worker offers")
	memory := fs.String("worker-memory", "1g", "memory each worker offers, and each executor's")
	var conf confFlag
	fs.Var(&conf, "conf", "KEY=VALUE for the Connect server (repeatable), e.g. spark.connect.execute.manager.detachedTimeout=60s")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see 'execd spark-cluster -h'", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	py := *python
	if py == "" {
		py = defaultPython()
	}
	began := time.Now()
	c, err := sparkserver.StartCluster(ctx, sparkserver.ClusterConfig{
		Python: py, StateDir: abs, Workers: *workers, WorkerCores: *cores, WorkerMemory: *memory,
		Conf: conf, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("Spark cluster is up", "master", c.MasterURL(), "workers", *workers, "took", time.Since(began).Round(time.Millisecond))
	fmt.Println(sparkurl.Redact(c.Remote()))
	fmt.Println("master", c.MasterURL(), "ui", c.MasterUI())
	fmt.Println("driver ui", c.DriverUI())
	if *uiFile != "" {
		if err := writeRemote(*uiFile, c.DriverUI()); err != nil {
			return err
		}
	}
	if *readyFile != "" {
		if err := writeRemote(*readyFile, c.Remote()); err != nil {
			return err
		}
	}
	var stopErr error
	select {
	case <-ctx.Done():
	case name := <-c.Died():
		stopErr = fmt.Errorf("Spark %s exited; stopping the cluster", name)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(stopErr, c.Stop(stopCtx))
}

// confFlag collects repeated KEY=VALUE flags.
type confFlag map[string]string

func (c *confFlag) String() string { return fmt.Sprint(map[string]string(*c)) }

func (c *confFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q: use KEY=VALUE", v)
	}
	if *c == nil {
		*c = confFlag{}
	}
	(*c)[strings.TrimSpace(k)] = val
	return nil
}
