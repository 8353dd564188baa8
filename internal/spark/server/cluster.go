package server

// A local standalone Spark cluster made of the pinned pyspark install: a
// master, workers that each offer a core and some memory to executors, and
// a Spark Connect server whose driver runs its jobs on those executors.
// The tests run a focused set of pipelines on it, and `execd spark-cluster`
// is a documented way to try --spark-remote against a real multi-process
// Spark. The pyspark wheel carries the standalone Master and Worker classes
// (bin/spark-class) but none of sbin's start scripts, so each daemon is
// started here as the scripts would.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClusterConfig configures a local standalone cluster. Only StateDir is
// required.
type ClusterConfig struct {
	// SparkHome, Python, JavaHome, Jars, JarsDir, Token and Logger are as
	// in Config; the Connect server runs with the same jars, Delta Lake's
	// settings and a random token.
	SparkHome string
	Python    string
	JavaHome  string
	Jars      []string
	JarsDir   string
	Token     string
	Logger    *slog.Logger
	// StateDir holds the cluster's logs (spark/master.log,
	// spark/worker-N.log, spark/connect.log), the workers' folders and the
	// Connect server's warehouse.
	StateDir string
	// Workers is how many workers start; default 2.
	Workers int
	// WorkerCores and WorkerMemory are what each worker offers executors;
	// defaults 1 and "1g". Each worker runs one executor of the Connect
	// server's application, of ExecutorMemory (default WorkerMemory).
	WorkerCores    int
	WorkerMemory   string
	ExecutorMemory string
	// DaemonMemory is the heap of the master and of each worker
	// (SPARK_DAEMON_MEMORY); default "256m".
	DaemonMemory string
	// Conf is passed to the Connect server over the cluster's settings.
	Conf map[string]string
	// StartTimeout bounds the whole start, until every executor has
	// registered; default 4 minutes.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL, per
	// process; default 15 seconds.
	StopGrace time.Duration
}

// Cluster is a running local standalone cluster.
type Cluster struct {
	cfg       ClusterConfig
	log       *slog.Logger
	master    *process
	workers   []*process
	connect   *Server
	masterURL string
	masterUI  string
	driverUI  string
	appID     string
	died      chan string // names a member that exited
}

// StartCluster starts the master, the workers and the Connect server, and
// returns once the Connect server has answered a query and every worker's
// executor has registered with its driver. A cluster that fails to come up
// is stopped, and the error carries the tail of the failing log.
func StartCluster(ctx context.Context, cfg ClusterConfig) (c *Cluster, err error) {
	if cfg.StateDir == "" {
		return nil, errors.New("sparkcluster: a state directory is required")
	}
	cfg = clusterDefaults(cfg)
	if cfg.Workers < 1 || cfg.Workers > 16 {
		return nil, fmt.Errorf("sparkcluster: %d workers: use 1 to 16", cfg.Workers)
	}
	if cfg.WorkerCores < 1 {
		return nil, fmt.Errorf("sparkcluster: %d cores per worker: use at least 1", cfg.WorkerCores)
	}
	java, err := CheckJava(ctx, cfg.JavaHome)
	if err != nil {
		return nil, err
	}
	home := cfg.SparkHome
	if home == "" {
		if home, err = FindSparkHome(ctx, cfg.Python); err != nil {
			return nil, err
		}
	} else if err := checkSparkHome(home); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.StateDir, "spark")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sparkcluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	c = &Cluster{cfg: cfg, log: cfg.Logger, died: make(chan string, cfg.Workers+2)}
	defer func() {
		if err != nil {
			stopCtx, stop := context.WithTimeout(context.Background(), time.Minute)
			defer stop()
			_ = c.Stop(stopCtx)
		}
	}()
	env := daemonEnv(home, java, cfg)
	class := filepath.Join(home, "bin", "spark-class")

	ports, err := freePorts(2 + cfg.Workers + 1)
	if err != nil {
		return nil, err
	}
	masterPort, masterUIPort, driverUIPort := ports[0], ports[1], ports[len(ports)-1]
	c.masterURL = "spark://" + hostPort(masterPort)
	c.masterUI = "http://" + hostPort(masterUIPort)
	c.master, err = c.startDaemon("master", env, class, "org.apache.spark.deploy.master.Master",
		"--host", "127.0.0.1", "--port", strconv.Itoa(masterPort), "--webui-port", strconv.Itoa(masterUIPort))
	if err != nil {
		return nil, err
	}
	// The workers and the Connect server start side by side once the
	// master answers: the driver's first job waits for every executor
	// (spark.scheduler.minRegisteredResourcesRatio below).
	if err := c.awaitMaster(ctx); err != nil {
		return nil, err
	}
	for i := range cfg.Workers {
		work := filepath.Join(cfg.StateDir, "work", fmt.Sprintf("worker-%d", i+1))
		if err := os.MkdirAll(work, 0o700); err != nil {
			return nil, fmt.Errorf("sparkcluster: %w", err)
		}
		w, err := c.startDaemon(fmt.Sprintf("worker-%d", i+1), env, class, "org.apache.spark.deploy.worker.Worker",
			"--host", "127.0.0.1", "--cores", strconv.Itoa(cfg.WorkerCores), "--memory", cfg.WorkerMemory,
			"--webui-port", strconv.Itoa(ports[2+i]), "--work-dir", work, c.masterURL)
		if err != nil {
			return nil, err
		}
		c.workers = append(c.workers, w)
	}

	c.driverUI = "http://" + hostPort(driverUIPort)
	// The driver's UI serves the REST API that shows where tasks ran.
	conf := UIConf(driverUIPort)
	maps.Copy(conf, map[string]string{
		"spark.master":          c.masterURL,
		"spark.executor.memory": cfg.ExecutorMemory,
		"spark.executor.cores":  strconv.Itoa(cfg.WorkerCores),
		"spark.cores.max":       strconv.Itoa(cfg.WorkerCores * cfg.Workers),
		"spark.port.maxRetries": "0", // the port chosen, or fail
		// Python UDFs and foreachBatch functions run on the executors with
		// the project's Python.
		"spark.pyspark.python": cfg.Python,
		// Tasks go to both executors from the first job: the scheduler
		// waits for every executor before the first job, not for locality.
		"spark.scheduler.minRegisteredResourcesRatio":       "1.0",
		"spark.scheduler.maxRegisteredResourcesWaitingTime": "60s",
	})
	maps.Copy(conf, cfg.Conf)
	c.connect, err = Start(ctx, Config{
		SparkHome: home, Python: cfg.Python, JavaHome: cfg.JavaHome, StateDir: cfg.StateDir,
		Conf: conf, Jars: cfg.Jars, JarsDir: cfg.JarsDir, Token: cfg.Token, Logger: cfg.Logger,
		StartTimeout: cfg.StartTimeout, StopGrace: cfg.StopGrace,
	})
	if err != nil {
		return nil, err
	}
	go func() {
		<-c.connect.Done()
		c.died <- "connect"
	}()
	if err := c.awaitWorkers(ctx); err != nil {
		return nil, err
	}
	if err := c.awaitExecutors(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func clusterDefaults(cfg ClusterConfig) ClusterConfig {
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.WorkerCores == 0 {
		cfg.WorkerCores = 1
	}
	if cfg.WorkerMemory == "" {
		cfg.WorkerMemory = "1g"
	}
	if cfg.ExecutorMemory == "" {
		cfg.ExecutorMemory = cfg.WorkerMemory
	}
	if cfg.DaemonMemory == "" {
		cfg.DaemonMemory = "256m"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 4 * time.Minute
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// daemonEnv is the environment of the master and the workers, and through
// the workers of the executors they launch.
func daemonEnv(home, java string, cfg ClusterConfig) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "SPARK_") || k == "JAVA_HOME" || k == "PYSPARK_PYTHON"
	})
	return append(env, "SPARK_HOME="+home, "SPARK_LOCAL_IP=127.0.0.1",
		"JAVA_HOME="+filepath.Dir(filepath.Dir(resolve(java))),
		"SPARK_DAEMON_MEMORY="+cfg.DaemonMemory,
		"SPARK_NO_DAEMONIZE=1",
		"PYSPARK_PYTHON="+cfg.Python)
}

// startDaemon starts one JVM of the cluster in a process group of its own,
// its output in spark/NAME.log. Like the Connect server it gets a
// parent-death signal, so a cluster never outlives the process that runs
// it; the signal is tied to the thread that forks, which therefore stays
// locked to a goroutine until the JVM is gone.
func (c *Cluster) startDaemon(name string, env []string, class string, args ...string) (*process, error) {
	logPath := filepath.Join(c.cfg.StateDir, "spark", name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sparkcluster: open log: %w", err)
	}
	cmd := exec.Command(class, args...)
	cmd.Dir = filepath.Join(c.cfg.StateDir, "spark")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, exited: make(chan struct{}), name: name}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		logf.Close()
		if err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.wait()
		select {
		case c.died <- name:
		default:
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("sparkcluster: start %s: %w", name, err)
	}
	c.log.Info("starting Spark "+name, "pid", p.pid, "log", logPath)
	return p, nil
}

// masterState is the part of the master's /json answer read here.
type masterState struct {
	Status  string `json:"status"`
	Workers []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"workers"`
}

// awaitMaster waits until the master is ALIVE.
func (c *Cluster) awaitMaster(ctx context.Context) error {
	var last string
	return c.poll(ctx, "the master", func() (bool, error) {
		var st masterState
		if err := getJSON(ctx, c.masterUI+"/json/", &st); err != nil {
			last = err.Error()
			return false, nil
		}
		last = "master " + st.Status
		return st.Status == "ALIVE", nil
	}, func() string { return last })
}

// awaitWorkers waits until the master is ALIVE with every worker ALIVE.
func (c *Cluster) awaitWorkers(ctx context.Context) error {
	var last string
	return c.poll(ctx, "every worker to register with the master", func() (bool, error) {
		var st masterState
		if err := getJSON(ctx, c.masterUI+"/json/", &st); err != nil {
			last = err.Error()
			return false, nil
		}
		alive := 0
		for _, w := range st.Workers {
			if w.State == "ALIVE" {
				alive++
			}
		}
		last = fmt.Sprintf("master %s, %d of %d workers alive", st.Status, alive, len(c.workers))
		return st.Status == "ALIVE" && alive == len(c.workers), nil
	}, func() string { return last })
}

// awaitExecutors waits until the Connect server's application has an
// executor on every worker.
func (c *Cluster) awaitExecutors(ctx context.Context) error {
	var last string
	return c.poll(ctx, "an executor on every worker", func() (bool, error) {
		if c.appID == "" {
			id, err := ApplicationID(ctx, c.driverUI)
			if err != nil {
				last = err.Error()
				return false, nil
			}
			c.appID = id
		}
		ex, err := Executors(ctx, c.driverUI, c.appID)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d of %d executors", len(ex), len(c.workers))
		return len(ex) >= len(c.workers), nil
	}, func() string { return last })
}

// poll calls ready every 250 ms until it says so, a member dies or ctx
// ends.
func (c *Cluster) poll(ctx context.Context, what string, ready func() (bool, error), last func() string) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := ready()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case name := <-c.died:
			return fmt.Errorf("sparkcluster: Spark %s exited while waiting for %s\n--- last lines of its log ---\n%s",
				name, what, c.memberTail(name))
		case <-ctx.Done():
			return fmt.Errorf("sparkcluster: waiting for %s: %w (%s)", what, ctx.Err(), last())
		case <-t.C:
		}
	}
}

func (c *Cluster) memberTail(name string) string {
	if name == "connect" && c.connect != nil {
		return tail(c.connect.LogPath(), 30)
	}
	return tail(filepath.Join(c.cfg.StateDir, "spark", name+".log"), 30)
}

// Remote is the Connect server's address with its token, as Server.Remote.
func (c *Cluster) Remote() string { return c.connect.Remote() }

// MasterURL is spark://127.0.0.1:PORT.
func (c *Cluster) MasterURL() string { return c.masterURL }

// MasterUI is the master's web UI (its /json/ lists the workers).
func (c *Cluster) MasterUI() string { return c.masterUI }

// DriverUI is the Connect server's Spark UI, whose REST API
// (/api/v1/applications/...) tells which executor ran which tasks.
func (c *Cluster) DriverUI() string { return c.driverUI }

// Died is sent the name of a member that exited ("master", "worker-1",
// "connect") while the cluster was up. The Connect server is restarted by
// its supervisor; the others are not.
func (c *Cluster) Died() <-chan string { return c.died }

// Stop stops the Connect server, then the workers (and their executors),
// then the master, each SIGTERM first and SIGKILL after the grace period,
// and waits until their process groups are empty.
func (c *Cluster) Stop(ctx context.Context) error {
	var errs []error
	if c.connect != nil {
		errs = append(errs, c.connect.Stop(ctx))
	}
	for _, w := range slices.Backward(c.workers) {
		stopGroup(w, c.cfg.StopGrace, c.log)
	}
	if c.master != nil {
		stopGroup(c.master, c.cfg.StopGrace, c.log)
	}
	return errors.Join(errs...)
}

// stopGroup stops p's process group: SIGTERM, then SIGKILL after grace,
// and waits until the group is empty (a worker's executors are in it).
func stopGroup(p *process, grace time.Duration, log *slog.Logger) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		log.Warn("Spark process ignored SIGTERM; killing it", "name", p.name, "pid", p.pid)
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(-p.pid, 0) != nil {
			return
		}
		p.signal(syscall.SIGKILL)
	}
	log.Warn("processes of a Spark daemon outlived SIGKILL", "name", p.name, "pgid", p.pid)
}

// ApplicationID returns the id of the application a driver's UI serves.
func ApplicationID(ctx context.Context, driverUI string) (string, error) {
	var apps []struct {
		ID string `json:"id"`
	}
	if err := getJSON(ctx, driverUI+"/api/v1/applications", &apps); err != nil {
		return "", err
	}
	if len(apps) == 0 {
		return "", fmt.Errorf("%s lists no application yet", driverUI)
	}
	return apps[0].ID, nil
}

// Executor is one executor of an application as its driver's REST API
// reports it.
type Executor struct {
	ID          string `json:"id"`
	HostPort    string `json:"hostPort"`
	Active      bool   `json:"isActive"`
	TotalTasks  int    `json:"totalTasks"`
	FailedTasks int    `json:"failedTasks"`
}

// Executors lists the application's active executors, the driver left out.
func Executors(ctx context.Context, driverUI, appID string) ([]Executor, error) {
	var all []Executor
	if err := getJSON(ctx, driverUI+"/api/v1/applications/"+appID+"/executors", &all); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(e Executor) bool { return e.ID == "driver" || !e.Active }), nil
}

func getJSON(ctx context.Context, url string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}
