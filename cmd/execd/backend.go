package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/pyworker"
	"github.com/tauro-exec/tauro-exec/internal/engine/sparkexec"
	"github.com/tauro-exec/tauro-exec/internal/engine/sparkrun"
	"github.com/tauro-exec/tauro-exec/internal/engine/sparkserver"
)

// backend is the Spark side of execd: the embedded server or a remote one,
// its health as the health service reports it, and the node backend.
type backend struct {
	*sparkexec.Backend
	srv     *sparkserver.Server // nil with --spark-remote
	pool    *pyworker.Pool      // nil with --workers 0
	healthy atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newBackend starts the embedded Spark Connect server, or watches the remote
// one, and reports every health change to onHealth.
func newBackend(ctx context.Context, cfg serveConfig, log *slog.Logger, onHealth func(serving bool)) (*backend, error) {
	b := &backend{}
	wctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	var remote func() string
	if cfg.sparkRemote == "" {
		srv, err := startEmbeddedSpark(ctx, cfg.python, cfg.state, nil, log)
		if err != nil {
			cancel()
			return nil, err
		}
		b.srv = srv
		remote = srv.Remote
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.followEmbedded(wctx, log, onHealth) }()
	} else {
		addr, err := hostPort(cfg.sparkRemote)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("--spark-remote: %w", err)
		}
		remote = func() string { return cfg.sparkRemote }
		pingCtx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		err = sparkserver.Ping(pingCtx, addr)
		pcancel()
		if err != nil {
			log.Warn("Spark Connect is not answering yet; runs wait for it", "remote", cfg.sparkRemote, "err", err)
		}
		b.setHealthy(err == nil, onHealth)
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.followRemote(wctx, addr, log, onHealth) }()
	}
	b.Backend = sparkexec.New(remote, b.ready, log)
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
		Logger:      log,
		ReleaseSession: func(ctx context.Context, s pyworker.SparkSession) error {
			return sparkrun.ReleaseAbandoned(ctx, s.Remote, s.SessionID, s.UserID)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("starting %d Python node workers with %s (it needs tauro-exec[worker] installed; --workers 0 runs SQL nodes only): %w", cfg.workers, python, err)
	}
	log.Info("Python node workers ready", "workers", cfg.workers, "python", python, "took", time.Since(began).Round(time.Millisecond))
	return pool, nil
}

func (b *backend) setHealthy(h bool, onHealth func(bool)) {
	b.healthy.Store(h)
	onHealth(h)
}

func (b *backend) ready() error {
	if b.healthy.Load() {
		return nil
	}
	if b.srv != nil {
		return errors.New("the embedded Spark Connect server is down and restarting; try again shortly")
	}
	return errors.New("the Spark Connect server is not reachable")
}

// followEmbedded mirrors the supervised server's health.
func (b *backend) followEmbedded(ctx context.Context, log *slog.Logger, onHealth func(bool)) {
	for {
		h, changed := b.srv.Health()
		if h != b.healthy.Load() {
			log.Info("embedded Spark Connect health changed", "serving", h, "restarts", b.srv.Restarts())
		}
		b.setHealthy(h, onHealth)
		select {
		case <-changed:
		case <-b.srv.Done():
			b.setHealthy(false, onHealth)
			return
		case <-ctx.Done():
			return
		}
	}
}

// followRemote checks the remote server: a TCP dial every two seconds, and a
// real query when it comes back, since a listening port is not yet a
// working server. Querying on every tick would open a server session each
// time.
func (b *backend) followRemote(ctx context.Context, addr string, log *slog.Logger, onHealth func(bool)) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		up := err == nil
		if up {
			_ = conn.Close()
			if !b.healthy.Load() {
				pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
				up = sparkserver.Ping(pctx, addr) == nil
				pcancel()
			}
		}
		if up != b.healthy.Load() {
			log.Info("Spark Connect health changed", "serving", up)
			b.setHealthy(up, onHealth)
		}
	}
}

// Close stops watching and, for the embedded server, stops it.
func (b *backend) Close() {
	b.cancel()
	b.wg.Wait()
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

// hostPort takes host:port out of sc://host:port[/;params].
func hostPort(remote string) (string, error) {
	rest, ok := strings.CutPrefix(remote, "sc://")
	if !ok {
		return "", fmt.Errorf("%q is not a Spark Connect URL; use sc://host:port", remote)
	}
	hp, _, _ := strings.Cut(rest, "/")
	if _, _, err := net.SplitHostPort(hp); err != nil {
		hp = net.JoinHostPort(hp, "15002")
	}
	return hp, nil
}
