package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

// storeFlags say where execd keeps its record.
type storeFlags struct {
	url          string
	passwordFile string
	replica      string
	leaseTTL     time.Duration
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "store", "", "where runs are recorded: empty for the embedded SQLite file in --state, or postgres://USER@HOST:PORT/DBNAME[?sslmode=...] shared by several replicas (the password comes from --store-password-file or PGPASSWORD, never the URL)")
	fs.StringVar(&f.passwordFile, "store-password-file", "", "file whose first line is the PostgreSQL password (default: the PGPASSWORD variable)")
	fs.StringVar(&f.replica, "replica", "", "this replica's name among those sharing --store, unique to one process at a time; a replica restarted under its name takes its runs up at once (default: HOST:PORT of --listen, or \"local\" without --store)")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", engine.DefaultLeaseTTL, "how long after a replica's last heartbeat its runs stay its own; then another replica takes them up")
}

// replicaName is the flag's name, or the default for the store.
func (f storeFlags) replicaName(listen string) string {
	switch {
	case f.replica != "":
		return f.replica
	case f.url == "":
		return engine.DefaultReplica
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(listen)
	return host + ":" + port
}

// openStore opens the store the flags name. Its errors never repeat the
// URL, which may be a mistyped one holding a password.
func openStore(ctx context.Context, f storeFlags, state, replica string, log *slog.Logger) (*sqlstore.Store, error) {
	switch {
	case f.url == "":
		return sqlite.Open(ctx, state)
	case postgres.IsURL(f.url):
		s, err := postgres.Open(ctx, postgres.Config{URL: f.url, PasswordFile: f.passwordFile, Replica: replica, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		log.Info("recording runs in PostgreSQL", "database", databaseOf(f.url))
		return s, nil
	default:
		return nil, errors.New("--store: use postgres://USER@HOST:PORT/DBNAME, or leave it out for the embedded SQLite file in --state")
	}
}

// databaseOf names the database of a store URL without its user or any
// parameter.
func databaseOf(storeURL string) string {
	u, err := url.Parse(storeURL)
	if err != nil {
		return "?"
	}
	return u.Host + u.Path
}

// healthState is what the health service reports: serving while Spark is
// ready and the store answers.
type healthState struct {
	hs    *health.Server
	mu    sync.Mutex
	spark bool
	store bool
}

func newHealthState(hs *health.Server) *healthState {
	h := &healthState{hs: hs, store: true}
	h.report()
	return h
}

func (h *healthState) sparkServing(ok bool) { h.set(&h.spark, ok) }
func (h *healthState) storeServing(ok bool) { h.set(&h.store, ok) }

func (h *healthState) set(field *bool, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*field = ok
	h.report()
}

// report is called with h.mu held.
func (h *healthState) report() {
	s := healthpb.HealthCheckResponse_NOT_SERVING
	if h.spark && h.store {
		s = healthpb.HealthCheckResponse_SERVING
	}
	h.hs.SetServingStatus("", s)
	h.hs.SetServingStatus("tauro.exec.v1.ExecService", s)
}

// followStore pings a shared store every interval and reports whether it
// answers, until ctx ends: a replica that cannot reach the database is not
// serving.
func followStore(ctx context.Context, st *sqlstore.Store, interval time.Duration, h *healthState, log *slog.Logger) {
	up := true
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		err := st.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if ok := err == nil; ok != up {
			up = ok
			h.storeServing(ok)
			if ok {
				log.Info("the store answers again")
			} else {
				log.Warn("the store does not answer; not serving until it does", "err", err)
			}
		}
	}
}
