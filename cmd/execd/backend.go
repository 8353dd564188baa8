package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
)

// backend is the Spark side of execd: the embedded server or a remote one,
// its health as the health service reports it, and the node backend.
type backend struct {
	*sparkbackend.Backend
	srv    *sparkserver.Server // nil with --spark-remote
	pool   *pyworker.Pool      // nil with --workers 0
	health *sparkserver.Health
}

// newBackend starts the embedded Spark Connect server, or follows the remote
// one, and reports every health change to onHealth.
func newBackend(ctx context.Context, cfg serveConfig, log *slog.Logger, onHealth func(serving bool)) (*backend, error) {
	b := &backend{}
	var remote func() string
	if cfg.sparkRemote == "" {
		srv, err := startEmbeddedSpark(ctx, cfg.python, cfg.state, nil, log)
		if err != nil {
			return nil, err
		}
		b.srv, remote = srv, srv.Remote
		b.health = sparkserver.FollowEmbedded(srv, log, onHealth)
	} else {
		h, err := sparkserver.FollowRemote(ctx, cfg.sparkRemote, log, onHealth)
		if err != nil {
			return nil, fmt.Errorf("--spark-remote: %w", err)
		}
		b.health, remote = h, func() string { return cfg.sparkRemote }
	}
	b.Backend = sparkbackend.New(remote, b.health.Ready, log)
	b.SetProfile(cfg.profileNodes)
	// A server execd did not start outlives it: runs keep a journal, and a
	// restarted execd takes them up where they were.
	b.SetDurable(cfg.sparkRemote != "")
	if cfg.workers > 0 {
		pool, err := startWorkers(ctx, cfg, remote(), log)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.pool = pool
		b.SetPython(pool)
	}
	return b, nil
}

// startWorkers starts the pool of Python node workers.
func startWorkers(ctx context.Context, cfg serveConfig, remote string, log *slog.Logger) (*pyworker.Pool, error) {
	python := cfg.python
	if python == "" {
		python = defaultPython()
	}
	sockets, err := filepath.Abs(filepath.Join(cfg.state, "workers"))
	if err != nil {
		return nil, err
	}
	dir := cfg.workerDir
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
	}
	began := time.Now()
	pool, err := pyworker.Start(ctx, pyworker.Config{
		Python:      python,
		Project:     cfg.project,
		Dir:         dir,
		SocketDir:   sockets,
		Size:        cfg.workers,
		SparkRemote: remote,
		PassEnv:     cfg.workerEnv,
		Logger:      log,
		ReleaseSession: func(ctx context.Context, s pyworker.SparkSession) error {
			return sparkconnect.ReleaseAbandoned(ctx, s.Remote, s.SessionID, s.UserID)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("starting %d Python node workers with %s (it needs tauro-exec[worker] installed; --workers 0 runs SQL nodes only): %w", cfg.workers, python, err)
	}
	log.Info("Python node workers ready", "workers", cfg.workers, "python", python, "took", time.Since(began).Round(time.Millisecond))
	return pool, nil
}

// projectWorkerEnv is the project's worker_env global setting: names of
// execd's environment variables the Python workers get beyond the few
// every worker has. It is read once, at start, for --env; names
// --env-allow does not allow are left out.
func projectWorkerEnv(cfg serveConfig, environ *config.Environment, log *slog.Logger) []string {
	proj, err := config.LoadFrom(cfg.project, cfg.env, environ)
	if err != nil {
		log.Warn("the project does not load yet, so its worker_env is not read; Python workers get only the base environment", "err", err)
		return nil
	}
	raw, ok := proj.Global.Get("worker_env")
	if !ok {
		return nil
	}
	list, ok := raw.([]any)
	var names []string
	for _, v := range list {
		name, isString := v.(string)
		if !isString || name == "" {
			ok = false
			break
		}
		if !environ.Allowed(name) {
			log.Warn("worker_env names a variable --env-allow does not allow; workers do not get it", "name", name)
			continue
		}
		environ.Lookup(name) // its value is hidden from clients, as a ${VAR}'s is
		names = append(names, name)
	}
	if !ok {
		log.Warn("global setting worker_env must be a list of variable names; workers get only the base environment", "found", raw)
		return nil
	}
	return names
}

// Close stops watching and, for the embedded server, stops it.
func (b *backend) Close() {
	b.health.Close()
	if b.pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.pool.Close(ctx)
	}
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.srv.Stop(ctx)
	}
}
