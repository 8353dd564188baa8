package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/health"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mirror"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	"github.com/tauro-exec/tauro-exec/internal/service"
	"github.com/tauro-exec/tauro-exec/internal/webui"
)

// serveConfig is what `execd serve` is told.
type serveConfig struct {
	project        string
	projectsFile   string
	env            string
	listen         string
	state          string
	sparkRemote    string
	python         string
	workers        int
	maxRuns        int
	sparkReadyFile string
	workerDir      string
	profileNodes   bool
	logLevel       string
	shutdown       time.Duration
	keepRuns       retention
	security       securityFlags
	envAllow       string
	corsOrigins    string
	metricsListen  string
	store          storeFlags
}

func serve(ctx context.Context, args []string) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.project, "project", ".", "tauro project folder (the one with settings_yml.json or settings_json.json), when execd serves one")
	fs.StringVar(&cfg.projectsFile, "projects", "", "YAML file naming each project execd serves (folder, env, python, workers, worker_dir); read again when it changes or on SIGHUP")
	fs.StringVar(&cfg.env, "env", "dev", "environment used when a request names none (a project's env in --projects overrides it)")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:50051", "address to serve on: gRPC, gRPC-Web and Connect share it")
	fs.StringVar(&cfg.state, "state", "", "folder for run state and logs (default: PROJECT/.tauro-exec, or .tauro-exec beside the --projects file)")
	fs.StringVar(&cfg.sparkRemote, "spark-remote", "", "Spark Connect URL sc://host:port[/;params]; empty starts an embedded local server")
	fs.StringVar(&cfg.python, "python", "", "Python interpreter with pyspark and tauro-exec[worker], for the embedded Spark server and the node workers (default: .venv/bin/python of the repo, else python3)")
	fs.IntVar(&cfg.workers, "workers", 2, "Python node workers to run for each project; 0 runs SQL nodes only")
	fs.StringVar(&cfg.sparkReadyFile, "spark-ready-file", "", "write the embedded Spark Connect server's address, with its token, here (mode 0600) once execd serves")
	fs.IntVar(&cfg.maxRuns, "max-concurrent-runs", engine.DefaultMaxConcurrentRuns, "runs executing at once; more wait QUEUED (default: the machine's cores, at least 2)")
	fs.BoolVar(&cfg.profileNodes, "profile-nodes", false, "report each node attempt's phases and Spark Connect requests as execd.phase.* and execd.calls.* metrics, and its Python worker's as worker.phase.* and worker.calls.*")
	fs.StringVar(&cfg.workerDir, "worker-dir", "", "working directory of the Python node workers (default: the project folder)")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Var(&cfg.keepRuns, "keep-runs", "delete runs that ended longer ago than this (e.g. 30d, 12h), checked hourly; 0 keeps every run")
	fs.DurationVar(&cfg.shutdown, "shutdown-timeout", 30*time.Second, "how long a graceful stop waits for runs to record their end")
	fs.StringVar(&cfg.envAllow, "env-allow", "", "comma-separated environment variables ${VAR} and worker_env may read (NAME, or PREFIX* for a prefix); empty allows all")
	fs.StringVar(&cfg.metricsListen, "metrics-listen", "", "address to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9464); empty serves none")
	fs.StringVar(&cfg.corsOrigins, "cors-origins", "", "comma-separated origins (scheme://host[:port], or * for any) whose web pages may call execd with gRPC-Web or Connect; empty allows none")
	cfg.security.register(fs)
	cfg.store.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see 'execd serve -h'", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cors, err := parseCORSOrigins(cfg.corsOrigins)
	if err != nil {
		return err
	}

	if err := cfg.resolveProjects(fs); err != nil {
		return err
	}
	if strings.ContainsRune(cfg.python, filepath.Separator) {
		// Workers run in the project folder: a relative path must not move with them.
		if cfg.python, err = filepath.Abs(cfg.python); err != nil {
			return err
		}
	}
	if cfg.maxRuns < 1 || cfg.maxRuns > 1000 {
		return fmt.Errorf("--max-concurrent-runs %d: use 1 to 1000", cfg.maxRuns)
	}
	if cfg.workers < 0 || cfg.workers > 64 {
		return fmt.Errorf("--workers %d: use 0 to 64", cfg.workers)
	}
	if cfg.state == "" {
		cfg.state = filepath.Join(cfg.project, ".tauro-exec")
		if cfg.projectsFile != "" {
			cfg.state = filepath.Join(filepath.Dir(cfg.projectsFile), ".tauro-exec")
		}
	}
	if err := privateDir(cfg.state, log); err != nil {
		return fmt.Errorf("--state: %w", err)
	}
	unlock, err := lockState(cfg.state)
	if err != nil {
		return err
	}
	defer unlock()

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	defer lis.Close()
	sec, err := cfg.security.decide(lis, fs, log)
	if err != nil {
		return err
	}
	tel, err := startTelemetry(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log)
	environ := config.NewEnvironment(os.LookupEnv, splitList(cfg.envAllow))

	replica := cfg.store.replicaName(lis.Addr().String())
	if cfg.store.leaseTTL < 3*time.Second || cfg.store.leaseTTL > 10*time.Minute {
		return fmt.Errorf("--lease-ttl %s: use 3s to 10m", cfg.store.leaseTTL)
	}
	st, err := openStore(ctx, cfg.store, cfg.state, replica, log)
	if err != nil {
		return err
	}
	defer st.Close()

	hs := health.NewServer()
	healthy := newHealthState(hs)
	if cfg.store.url != "" {
		hctx, stopFollowing := context.WithCancel(ctx)
		defer stopFollowing()
		go followStore(hctx, st, 2*time.Second, healthy, log)
	}
	backend, err := newBackend(ctx, cfg, log, healthy.sparkServing)
	if err != nil {
		return err
	}
	defer backend.Close()
	projects, err := serveProjects(ctx, cfg, backend, environ, log)
	if err != nil {
		return err
	}
	defer projects.Close()
	backend.SetPythonFor(projects.python)
	backend.exportMetrics(tel.Metrics(), projects)
	if cfg.projectsFile == "" {
		// Runs recorded before execd named projects are this one's.
		if n, err := st.AdoptUnnamed(ctx, projects.Names()[0]); err != nil {
			return err
		} else if n > 0 {
			log.Info("runs recorded before projects were named joined the project", "project", projects.Names()[0], "runs", n)
		}
	}

	// The runs of pipelines whose mlops block is on go to MLflow from their
	// event logs; the mirror outlives the engine's stop so that the ends
	// it records are sent too, and what is left is sent by the next execd.
	mir := mirror.New(mirror.Options{Store: st, Replica: replica, Logger: log})
	backend.SetTracker(mir)
	mctx, stopMirror := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMirror()
	go mir.Run(mctx)

	opts := engine.Options{Projects: projects, Store: st, Backend: backend, Logger: log,
		Environ: environ, MaxConcurrentRuns: cfg.maxRuns, Observer: tel.Observer(),
		Replica: replica, Address: lis.Addr().String(), LeaseTTL: cfg.store.leaseTTL, Tracker: mir}
	if projects.hasWorkers() { // the workers' optimiser proposes experiments' trials
		opts.Suggester = projects
	}
	eng := engine.New(opts)
	tel.Metrics().Engine(eng.Load, st.Watchers)
	if err := eng.Recover(ctx); err != nil {
		return err
	}
	svc := service.New(eng).WithProjectCatalog(projects)
	srv, err := service.NewServer(svc, hs, log, append(sec.opts, service.WithRedaction(environ.Redact),
		service.WithServerOptions(tel.ServerOptions()...))...)
	if err != nil {
		return err
	}
	tel.Registered(srv)
	router, err := rpcRouter(srv, cors)
	if err != nil {
		return err
	}
	// The web view takes every path the services do not: it calls them on
	// its own origin, so it needs no CORS.
	router.Handle("/", webui.Handler())
	web := httpServer(router, sec.tls, log)
	go reloadOnHangup(ctx, sec.tokens, projects, log)
	if cfg.projectsFile != "" {
		go projects.follow(ctx, 2*time.Second)
	}
	if cfg.keepRuns > 0 {
		pctx, stopPruning := context.WithCancel(ctx)
		defer stopPruning()
		go pruneRuns(pctx, st, time.Duration(cfg.keepRuns), log)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- serveHTTP(web, lis) }()
	log.Info("execd serving", "listen", lis.Addr().String(), "protocols", "grpc,grpc-web,connect", "cors_origins", cors.String(),
		"projects", strings.Join(projects.Names(), ","), "state", cfg.state)
	// The address goes to stdout too, so scripts that listen on :0 can find
	// execd. The embedded Spark's address carries its token: it goes only to
	// --spark-ready-file, for a script that shares that Spark (a second
	// execd with --spark-remote, pyspark reading the outputs).
	if backend.srv != nil && cfg.sparkReadyFile != "" {
		if err := writeRemote(cfg.sparkReadyFile, backend.srv.Remote()); err != nil {
			return fmt.Errorf("--spark-ready-file: %w", err)
		}
	}
	fmt.Printf("execd listening on %s\n", lis.Addr())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("execd stopping: active runs become INTERRUPTED")
	hs.Shutdown()
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdown)
	defer cancel()
	if err := eng.Close(stopCtx); err != nil {
		log.Warn("runs did not record their end in time", "err", err)
	}
	// The runs' ends are recorded and sent: open watches end now, each
	// telling its client where to pick up on the next execd, instead of
	// holding the stop until the shutdown timeout.
	svc.EndWatches()
	if err := drain(stopCtx, web, srv); err != nil {
		log.Warn("calls still open at the shutdown timeout were cut", "err", err)
	}
	return <-serveErr
}

// lockState makes execd the only daemon on a state folder: two would each
// mark the other's running runs INTERRUPTED and run them twice. The lock is
// the kernel's, so a killed daemon leaves none behind.
func lockState(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "execd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another execd"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who += " (pid " + pid + ")"
			}
			return nil, fmt.Errorf("--state %s is in use by %s; stop it or give this one its own --state", dir, who)
		}
		return nil, fmt.Errorf("--state: locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// retention is --keep-runs: a Go duration, or whole days as "30d".
type retention time.Duration

func (r *retention) String() string { return time.Duration(*r).String() }

func (r *retention) Set(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: use whole days (30d) or a duration (12h)", v)
		}
		*r = retention(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q: use whole days (30d) or a duration (12h)", v)
	}
	*r = retention(d)
	return nil
}

// pruneRuns deletes runs that ended more than keep ago, now and every hour.
func pruneRuns(ctx context.Context, st store.Store, keep time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := st.PruneRuns(ctx, time.Now().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning old runs failed; trying again in an hour", "err", err)
		case n > 0:
			log.Info("pruned old runs", "runs", n, "ended before", time.Now().Add(-keep).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// privateDir makes dir, or narrows it, to 0700: it holds the run store,
// logs that quote SQL, and the workers' sockets.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Info("making the state folder private to execd's user", "dir", dir, "was", fi.Mode().Perm().String())
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// reloadOnHangup reads the tokens file and the projects file again on each
// SIGHUP.
func reloadOnHangup(ctx context.Context, tokens *service.Tokens, projects *projectSet, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if projects.file != "" {
			if err := projects.Reload(ctx); err != nil {
				log.Error("projects file not reloaded; the projects read before stay served", "err", err)
			} else {
				log.Info("projects file reloaded", "projects", strings.Join(projects.Names(), ","))
			}
		}
		if tokens == nil {
			continue
		}
		if err := tokens.Reload(); err != nil {
			log.Error("tokens file not reloaded; the tokens read before stay in use", "err", err)
			continue
		}
		log.Info("tokens file reloaded", "tokens", tokens.Len())
	}
}

// resolveProjects checks --project and --projects: one or the other, as
// absolute paths.
func (cfg *serveConfig) resolveProjects(fs *flag.FlagSet) error {
	if cfg.projectsFile != "" {
		projectSet := false
		fs.Visit(func(f *flag.Flag) { projectSet = projectSet || f.Name == "project" })
		if projectSet {
			return errors.New("--project and --projects both given; a projects file names every project, --project is the shorthand for one")
		}
		file, err := filepath.Abs(cfg.projectsFile)
		if err != nil {
			return err
		}
		cfg.projectsFile = file
		return nil
	}
	project, err := filepath.Abs(cfg.project)
	if err != nil {
		return err
	}
	if st, err := os.Stat(project); err != nil || !st.IsDir() {
		return fmt.Errorf("--project %s is not a folder", cfg.project)
	}
	cfg.project = project
	if cfg.workerDir != "" {
		if cfg.workerDir, err = filepath.Abs(cfg.workerDir); err != nil {
			return err
		}
	}
	return nil
}

// serveProjects starts serving the projects: the projects file's, or the
// one of --project. With a file, a project that fails to load is served
// broken and the others serve; the one project of --project must start.
func serveProjects(ctx context.Context, cfg serveConfig, b *backend, environ *config.Environment, log *slog.Logger) (*projectSet, error) {
	ps := &projectSet{file: cfg.projectsFile, log: log,
		def: projectDefaults{env: cfg.env, python: cfg.python, workers: cfg.workers}}
	ps.start = func(ctx context.Context, c projectConf) (*pyworker.Pool, error) {
		if ps.file != "" {
			if _, err := config.LoadFrom(c.Folder, c.Env, environ); err != nil {
				return nil, fmt.Errorf("its settings do not load: %w", err)
			}
		}
		passEnv := workerEnv(c, environ, log)
		if c.Workers == 0 {
			return nil, nil
		}
		sockets := filepath.Join(cfg.state, "workers")
		if ps.file != "" {
			sockets = filepath.Join(sockets, c.Name)
		}
		return startWorkers(ctx, c, b.remote(), sockets, passEnv, cfg.profileNodes, log)
	}
	if ps.file == "" {
		c := projectConf{Name: engine.ProjectNameOf(cfg.project), Folder: cfg.project, Env: cfg.env,
			Python: cfg.python, Workers: cfg.workers, WorkerDir: cfg.workerDir}
		pool, err := ps.start(ctx, c)
		if err != nil {
			return nil, err
		}
		ps.served = map[string]*servedProject{c.Name: {conf: c, pool: pool}}
		return ps, nil
	}
	want, err := parseProjects(ps.file, ps.def)
	if err != nil {
		return nil, err
	}
	ps.apply(ctx, want)
	return ps, nil
}
