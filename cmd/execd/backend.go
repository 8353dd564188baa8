package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
	"github.com/tauro-exec/tauro-exec/internal/streaming"
)

// backend is the Spark side of execd: the embedded server or a remote one,
// its health as the health service reports it, and the node backend. The
// projects' Python workers are the projectSet's.
type backend struct {
	*sparkbackend.Backend
	srv    *sparkserver.Server // nil with --spark-remote
	health *sparkserver.Health
	remote func() string
}

// newBackend starts the embedded Spark Connect server, or follows the remote
// one, and reports every health change to onHealth.
func newBackend(ctx context.Context, cfg serveConfig, log *slog.Logger, onHealth func(serving bool)) (*backend, error) {
	b := &backend{}
	if cfg.sparkRemote == "" {
		srv, err := startEmbeddedSpark(ctx, cfg.python, cfg.state, nil, log)
		if err != nil {
			return nil, err
		}
		b.srv, b.remote = srv, srv.Remote
		b.health = sparkserver.FollowEmbedded(srv, log, onHealth)
	} else {
		h, err := sparkserver.FollowRemote(ctx, cfg.sparkRemote, log, onHealth)
		if err != nil {
			return nil, fmt.Errorf("--spark-remote: %w", err)
		}
		b.health, b.remote = h, func() string { return cfg.sparkRemote }
	}
	b.Backend = sparkbackend.New(b.remote, b.health.Ready, log)
	b.SetProfile(cfg.profileNodes)
	b.SetStreams(streaming.Follower{})
	// A server execd did not start outlives it: runs keep a journal, and a
	// restarted execd takes them up where they were.
	b.SetDurable(cfg.sparkRemote != "")
	return b, nil
}

// startWorkers starts the pool of a project's Python node workers, with
// its sockets in socketDir; profile makes them report each call's phases
// and requests (--profile-nodes).
func startWorkers(ctx context.Context, c projectConf, remote, socketDir string, passEnv []string, profile bool, log *slog.Logger) (*pyworker.Pool, error) {
	python := c.Python
	if python == "" {
		python = defaultPython()
	}
	sockets, err := filepath.Abs(socketDir)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	pool, err := pyworker.Start(ctx, pyworker.Config{
		Python:      python,
		Project:     c.Folder,
		Dir:         c.WorkerDir,
		SocketDir:   sockets,
		Size:        c.Workers,
		SparkRemote: remote,
		PassEnv:     passEnv,
		Profile:     profile,
		Logger:      log.With("project", c.Name),
		ReleaseSession: func(ctx context.Context, s pyworker.SparkSession) error {
			return sparkconnect.ReleaseAbandoned(ctx, s.Remote, s.SessionID, s.UserID)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("starting %d Python node workers with %s (it needs tauro-exec[worker] installed; workers 0 runs SQL nodes only): %w", c.Workers, python, err)
	}
	log.Info("Python node workers ready", "project", c.Name, "workers", c.Workers, "python", python, "took", time.Since(began).Round(time.Millisecond))
	return pool, nil
}

// Close stops watching and, for the embedded server, stops it.
func (b *backend) Close() {
	b.health.Close()
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.srv.Stop(ctx)
	}
}
