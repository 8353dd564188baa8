package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// Health follows whether a Spark Connect server can take new work: the
// embedded server's as its supervisor reports it, or a remote server's by
// probing it. Every change is passed to the onChange given at start.
type Health struct {
	healthy  atomic.Bool
	embedded bool
	onChange func(serving bool)
	log      *slog.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// FollowEmbedded mirrors srv's health until srv ends or Close is called.
func FollowEmbedded(srv *Server, log *slog.Logger, onChange func(serving bool)) *Health {
	h := newHealth(true, log, onChange)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.followEmbedded(ctx, srv) }()
	return h
}

// FollowRemote probes the server at remote (sc://host:port[/;params]) once,
// waiting up to 30 s, then every two seconds until Close. A server that is
// not up yet is not an error: runs wait for it.
func FollowRemote(ctx context.Context, remote string, log *slog.Logger, onChange func(serving bool)) (*Health, error) {
	r, err := sparkurl.Parse(remote)
	if err != nil {
		return nil, err
	}
	h := newHealth(false, log, onChange)
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = Ping(pingCtx, remote)
	cancel()
	if err != nil {
		log.Warn("Spark Connect is not answering yet; runs wait for it", "remote", sparkurl.Redact(remote), "err", err)
	}
	h.set(err == nil)
	wctx, wcancel := context.WithCancel(context.Background())
	h.cancel = wcancel
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.followRemote(wctx, r.Addr, remote) }()
	return h, nil
}

func newHealth(embedded bool, log *slog.Logger, onChange func(bool)) *Health {
	if log == nil {
		log = slog.Default()
	}
	if onChange == nil {
		onChange = func(bool) {}
	}
	return &Health{embedded: embedded, log: log, onChange: onChange}
}

// Ready says why new work cannot start now, or nil.
func (h *Health) Ready() error {
	if h.healthy.Load() {
		return nil
	}
	if h.embedded {
		return errors.New("the embedded Spark Connect server is down and restarting; try again shortly")
	}
	return errors.New("the Spark Connect server is not reachable")
}

// Close stops following.
func (h *Health) Close() {
	h.cancel()
	h.wg.Wait()
}

func (h *Health) set(up bool) {
	h.healthy.Store(up)
	h.onChange(up)
}

func (h *Health) followEmbedded(ctx context.Context, srv *Server) {
	for {
		up, changed := srv.Health()
		if up != h.healthy.Load() {
			h.log.Info("embedded Spark Connect health changed", "serving", up, "restarts", srv.Restarts())
		}
		h.set(up)
		select {
		case <-changed:
		case <-srv.Done():
			h.set(false)
			return
		case <-ctx.Done():
			return
		}
	}
}

// followRemote dials the server every two seconds, and runs a real query
// when it comes back, since a listening port is not yet a working server.
// Querying on every tick would open a server session each time.
func (h *Health) followRemote(ctx context.Context, addr, remote string) {
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
			if !h.healthy.Load() {
				pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
				up = Ping(pctx, remote) == nil
				pcancel()
			}
		}
		if up != h.healthy.Load() {
			h.log.Info("Spark Connect health changed", "serving", up)
			h.set(up)
		}
	}
}
