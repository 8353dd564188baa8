package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/jvm"
)

// LibsDirName is the folder of the project venv that holds Apache Kafka's
// broker and its dependencies, copied from Maven Central by
// `make kafka-libs` (tools/kafka/pom.xml names the version).
const LibsDirName = "kafka-libs"

// minJava is the oldest Java a Kafka 4 broker runs on.
const minJava = 17

// ErrKafkaMissing says that the broker's jars are not there, as opposed to
// a broker that failed to start.
var ErrKafkaMissing = errors.New("kafka broker jars not found")

// Config configures a broker. LibsDir and Dir are required.
type Config struct {
	// LibsDir holds the broker's jars (kafka_2.13 and its dependencies).
	LibsDir string
	// Dir holds server.properties, the log (broker.log) and the data. It is
	// the caller's: Stop leaves it.
	Dir string
	// Heap is the JVM's maximum heap; default 512m.
	Heap string
	// StartTimeout bounds formatting the storage and starting the broker
	// until it answers; default 2 minutes.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL;
	// default 20 seconds.
	StopGrace time.Duration
}

// Broker is one Apache Kafka server in KRaft combined mode (its own
// controller), listening on loopback.
type Broker struct {
	cfg       Config
	bootstrap string
	logPath   string
	pid       int
	exited    chan struct{}
	err       error
}

// Start formats a new cluster's storage under cfg.Dir and starts the
// broker on two free loopback ports, returning once it answers requests.
// A broker that does not come up is killed, and the error carries the tail
// of its log.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.LibsDir == "" || cfg.Dir == "" {
		return nil, errors.New("kafkatest: a libs folder and a state folder are required")
	}
	if cfg.Heap == "" {
		cfg.Heap = "512m"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 20 * time.Second
	}
	var err error
	if cfg.LibsDir, err = filepath.Abs(cfg.LibsDir); err != nil { // the JVM runs in cfg.Dir
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	java, err := jvm.Find(ctx, "", minJava)
	if err != nil {
		return nil, err
	}
	if jars, _ := filepath.Glob(filepath.Join(cfg.LibsDir, "kafka_2.13-*.jar")); len(jars) == 0 {
		return nil, fmt.Errorf("%w: no kafka_2.13 jar in %s (run 'make kafka-libs')", ErrKafkaMissing, cfg.LibsDir)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:       cfg,
		bootstrap: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		logPath:   filepath.Join(cfg.Dir, "broker.log"),
		exited:    make(chan struct{}),
	}
	props := filepath.Join(cfg.Dir, "server.properties")
	if err := os.WriteFile(props, []byte(serverProperties(ports[0], ports[1], filepath.Join(cfg.Dir, "data"))), 0o644); err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	logConf := filepath.Join(cfg.Dir, "log4j2.properties")
	if err := os.WriteFile(logConf, []byte(log4jProperties), 0o644); err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	defer logf.Close()

	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	jvm := []string{"-Xms64m", "-Xmx" + cfg.Heap, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + logConf,
		"-cp", filepath.Join(cfg.LibsDir, "*")}

	// A KRaft server needs its storage formatted with a cluster id first.
	format := exec.CommandContext(ctx, java, append(jvm, "kafka.tools.StorageTool", "format",
		"--cluster-id", clusterID(), "--config", props)...)
	format.Stdout, format.Stderr = logf, logf
	if err := format.Run(); err != nil {
		return nil, fmt.Errorf("kafkatest: format the broker's storage: %w\n--- last lines of %s ---\n%s", err, b.logPath, tail(b.logPath, 20))
	}

	cmd := exec.Command(java, append(jvm, "kafka.Kafka", props)...)
	cmd.Dir = cfg.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kafkatest: start the broker: %w", err)
	}
	b.pid = cmd.Process.Pid
	go func() {
		b.err = cmd.Wait()
		close(b.exited)
	}()
	if err := b.awaitReady(ctx); err != nil {
		b.kill()
		return nil, fmt.Errorf("kafkatest: the broker at %s did not come up: %w\n--- last lines of %s ---\n%s",
			b.bootstrap, err, b.logPath, tail(b.logPath, 30))
	}
	return b, nil
}

// Bootstrap is the broker's address, for kafka.bootstrap.servers.
func (b *Broker) Bootstrap() string { return b.bootstrap }

// LogPath is the broker's log file.
func (b *Broker) LogPath() string { return b.logPath }

// Done is closed when the broker's process has exited.
func (b *Broker) Done() <-chan struct{} { return b.exited }

// Stop asks the broker to shut down and kills it if it has not within the
// grace period or by ctx's end.
func (b *Broker) Stop(ctx context.Context) error {
	_ = syscall.Kill(-b.pid, syscall.SIGTERM)
	select {
	case <-b.exited:
		return nil
	case <-ctx.Done():
	case <-time.After(b.cfg.StopGrace):
	}
	b.kill()
	return fmt.Errorf("kafkatest: the broker ignored SIGTERM and was killed")
}

func (b *Broker) kill() {
	_ = syscall.Kill(-b.pid, syscall.SIGKILL)
	<-b.exited
}

// awaitReady waits until the broker answers a request: a KRaft broker
// handles requests only once its controller has admitted it, so an answer
// means topics can be created and written.
func (b *Broker) awaitReady(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-b.exited:
			return fmt.Errorf("it exited: %v", b.err)
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last probe: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-tick.C:
		}
		if last = Ping(ctx, b.bootstrap); last == nil {
			return nil
		}
	}
}

// serverProperties configures one combined broker and controller, as
// small as a test needs: one partition per topic, one replica, single
// partitions for Kafka's own topics and few threads (a test machine may
// have two cores).
func serverProperties(brokerPort, controllerPort int, dataDir string) string {
	lines := []string{
		"process.roles=broker,controller",
		"node.id=1",
		fmt.Sprintf("controller.quorum.voters=1@127.0.0.1:%d", controllerPort),
		fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", brokerPort, controllerPort),
		fmt.Sprintf("advertised.listeners=PLAINTEXT://127.0.0.1:%d", brokerPort),
		"controller.listener.names=CONTROLLER",
		"inter.broker.listener.name=PLAINTEXT",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"log.dirs=" + dataDir,
		"auto.create.topics.enable=true",
		"num.partitions=1",
		"default.replication.factor=1",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=1",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=1",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
		"num.network.threads=1",
		"num.io.threads=2",
		"background.threads=2",
		"num.recovery.threads.per.data.dir=1",
	}
	return strings.Join(lines, "\n") + "\n"
}

// log4jProperties keeps the broker's log to warnings, with the line that
// says it started.
const log4jProperties = `rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
`

// clusterID is a new cluster's id: 16 random bytes in URL-safe base64, the
// form Kafka's Uuid takes. Like Kafka's own Uuid.randomUuid it never starts
// with '-', which the storage tool would read as an option (one start in
// 64 failed with "argument --cluster-id: expected one argument").
func clusterID() string {
	for {
		var b [16]byte
		_, _ = rand.Read(b[:])
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id
		}
	}
}

// freePorts finds n distinct free loopback ports, holding each open until
// all are found.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kafkatest: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
