package server

// The JVM itself: its command line and environment, starting it and
// waiting until it answers, and stopping its process group.

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// launch starts the JVM and waits until it answers a query.
func (s *Server) launch(ctx context.Context) (*process, error) {
	s.mu.Lock()
	port := s.port
	s.mu.Unlock()

	// The log can quote the SQL a pipeline ran.
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sparkserver: open log: %w", err)
	}
	defer logf.Close()
	_ = logf.Chmod(0o600)
	fmt.Fprintf(logf, "%s %s port %d\n", launchMarker, time.Now().Format(time.RFC3339), port)

	// The JVM reads the file as it starts; it is gone once the server answers.
	secrets := filepath.Join(filepath.Dir(s.logPath), "connect.properties")
	if err := writeSecretConf(secrets, map[string]string{tokenConf: s.cfg.Token}); err != nil {
		return nil, fmt.Errorf("sparkserver: %w", err)
	}
	defer os.Remove(secrets)
	driver := filepath.Join(filepath.Dir(s.logPath), "connect_driver.py")
	if err := os.WriteFile(driver, []byte(driverScript), 0o600); err != nil {
		return nil, fmt.Errorf("sparkserver: %w", err)
	}

	cmd := exec.Command(filepath.Join(s.sparkHome, "bin", "spark-submit"), s.args(port, secrets, driver)...)
	cmd.Dir = filepath.Dir(s.logPath)
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sparkserver: start spark-submit: %w", err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{}), name: "Spark Connect server"}
	go p.wait()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	s.log.Info("starting Spark Connect server", "port", port, "pid", p.pid, "log", s.logPath)

	if err := s.awaitReady(ctx, p, port); err != nil {
		p.signal(syscall.SIGKILL)
		<-p.exited
		return nil, fmt.Errorf("sparkserver: Spark Connect server on port %d did not come up: %w\n--- last lines of %s ---\n%s",
			port, err, s.logPath, tail(s.logPath, 30))
	}
	s.log.Info("Spark Connect server is up", "remote", sparkurl.Redact(s.remote(port)), "took", time.Since(began).Round(time.Millisecond))
	return p, nil
}

func (s *Server) awaitReady(ctx context.Context, p *process, port int) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("it exited: %v", p.err)
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last probe: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-tick.C:
		}
		if !listening(port) {
			continue
		}
		if last == nil {
			s.log.Debug("Spark Connect port is open", "port", port)
		}
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
		last = Ping(pctx, s.remote(port))
		pcancel()
		if last == nil {
			return nil
		}
	}
}

// tokenConf is the server setting that makes Spark Connect require a
// bearer token.
const tokenConf = "spark.connect.authenticate.token"

// writeSecretConf writes conf as a Java properties file only its owner can
// read: spark-submit --properties-file keeps the values off the command
// line, where every local user could read them with ps.
func writeSecretConf(path string, conf map[string]string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // it may have existed
		f.Close()
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		fmt.Fprintf(f, "%s=%s\n", k, conf[k])
	}
	return f.Close()
}

// driverScript is the driver spark-submit runs: it opens the Spark
// session, whose Connect plugin serves Spark Connect, and keeps it open
// until its JVM is gone. The server is not Spark's own SparkConnectServer
// main class because that class turns per-session class loaders on for
// every session. Spark caches the code it generates for a query per class
// loader, so execd, which opens a session per run, had every run's queries
// compiled again (two Janino compilations per query shape) and run cold in
// the JVM, where a long-lived session's were compiled once. Every session
// now shares Spark's class loader, and jars or files a session adds are
// every session's (execd adds none); the setting
// spark.sql.artifact.isolation.enabled=true in Conf turns the isolation
// back on.
const driverScript = `# The driver of execd's embedded Spark Connect server (see process.go).
import os
import time

from pyspark.sql import SparkSession

jvm = os.getppid()
SparkSession.builder.getOrCreate()
while os.getppid() == jvm:
    time.sleep(1)
`

func (s *Server) args(port int, propertiesFile, driver string) []string {
	conf := map[string]string{
		"spark.master":                       "local[*]",
		"spark.app.name":                     "tauro-exec",
		"spark.driver.memory":                "1g",
		"spark.ui.enabled":                   "false",
		"spark.driver.host":                  "127.0.0.1",
		"spark.driver.bindAddress":           "127.0.0.1",
		"spark.sql.shuffle.partitions":       "4",
		"spark.sql.warehouse.dir":            filepath.Join(filepath.Dir(s.logPath), "warehouse"),
		"spark.local.dir":                    filepath.Join(filepath.Dir(s.logPath), "tmp"),
		"spark.connect.grpc.binding.address": "127.0.0.1",
		// See driverScript.
		"spark.sql.artifact.isolation.enabled":                "false",
		"spark.sql.artifact.isolation.alwaysApplyClassloader": "false",
	}
	if HasDelta(s.jars) {
		maps.Copy(conf, deltaConf)
	}
	maps.Copy(conf, s.cfg.Conf)
	// The port is the supervisor's to choose.
	conf["spark.connect.grpc.binding.port"] = fmt.Sprint(port)
	if plugins := conf["spark.plugins"]; !slices.Contains(strings.Split(plugins, ","), ConnectPlugin) {
		conf["spark.plugins"] = strings.Trim(ConnectPlugin+","+plugins, ",")
	}

	delete(conf, tokenConf) // only ever in the properties file
	args := []string{"--properties-file", propertiesFile}
	if len(s.jars) > 0 {
		args = append(args, "--jars", strings.Join(s.jars, ","))
	}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		args = append(args, "--conf", k+"="+conf[k])
	}
	return append(args, driver)
}

func (s *Server) env() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, k := range []string{"SPARK_HOME=", "JAVA_HOME=", "SPARK_LOCAL_IP=", "SPARK_REMOTE=", "SPARK_CONNECT_MODE_ENABLED=", "SPARK_LOCAL_REMOTE=", "PYSPARK_PYTHON=", "PYSPARK_DRIVER_PYTHON=", "SPARK_CONNECT_AUTHENTICATE_TOKEN="} {
			if strings.HasPrefix(kv, k) {
				return true
			}
		}
		return false
	})
	env = append(env, "SPARK_HOME="+s.envHome, "SPARK_LOCAL_IP=127.0.0.1",
		"JAVA_HOME="+filepath.Dir(filepath.Dir(resolve(s.java))),
		// Python UDFs and foreachBatch functions run in Python workers the
		// server starts; they must be the project's Python, with its pyspark.
		"PYSPARK_PYTHON="+s.cfg.Python, "PYSPARK_DRIVER_PYTHON="+s.cfg.Python)
	return env
}

// terminate stops p's process group: SIGTERM, then SIGKILL after the grace
// period. The JVM runs short-lived helper processes that outlive it by a
// moment, so the group is killed until it is empty.
func (s *Server) terminate(p *process) {
	s.setHealthy(false)
	stopGroup(p, s.cfg.StopGrace, s.log)
}

type process struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{}
	err    error
	name   string // for messages
}

func (p *process) wait() {
	p.err = p.cmd.Wait()
	close(p.exited)
}

// signal sends sig to the process group; the JVM leads it.
func (p *process) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.pid, sig)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("sparkserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", hostPort(port), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}
