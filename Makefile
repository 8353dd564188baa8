# tauro-exec. The README explains the targets; the two a newcomer needs are
# `make demo` and `make test`. Every install step is idempotent and cached.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO      ?= go
TOOL    := $(GO) tool -modfile=tools/go.mod
PYTHON  ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
BIN     := bin
PROTODEPS := .build/protodeps
PYGEN   := clients/python/src/tauro_exec/_proto
TSDIR   := clients/typescript
TSGEN   := $(TSDIR)/src/gen

.PHONY: all build web generate check-generated check-tree lint venv npm spark-jars kafka-libs testbroker testpg testmlflow postgres java grpcurl chromium test test-go test-fuzz test-python test-typescript test-web test-cluster spark-cluster bench bench-peer demo clean

all: build

build: web
	$(GO) build -o $(BIN)/execd ./cmd/execd

# ---- environment -----------------------------------------------------------

# The venv is rebuilt only when the lock file changes.
venv: $(VENV)/.installed spark-jars
$(VENV)/.installed: clients/python/requirements.lock clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed")'
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r clients/python/requirements.lock
	$(VPY) -m pip install -q --no-deps -e clients/python
	touch $@

# The TypeScript client's packages (and protoc-gen-es, which `make generate`
# runs), exactly as package-lock.json pins them; reinstalled only when the
# lock changes. npm keeps downloads in its own cache (~/.npm).
TS_STAMP := $(TSDIR)/node_modules/.installed
npm: $(TS_STAMP)
$(TS_STAMP): $(TSDIR)/package-lock.json $(TSDIR)/package.json
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is needed for the TypeScript client: apt-get install nodejs npm" >&2; exit 1; }
	cd $(TSDIR) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

# ---- web view --------------------------------------------------------------

# The web view (internal/webui/app, TypeScript built by Vite) is built into
# internal/webui/dist/app, which execd embeds; build outputs stay out of git.
# It calls execd through the TypeScript client (clients/typescript, whose
# packages `make npm` installs). npm ci runs only when a lock changes, the
# build only when a source does. Without the bundle Go still builds, and
# execd serves a page that says to run `make web`.
WEB_APP := internal/webui/app
WEB_OUT := internal/webui/dist/app
WEB_SRC := $(shell find $(WEB_APP)/src $(WEB_APP)/public $(TSDIR)/src -type f 2>/dev/null) \
  $(WEB_APP)/index.html $(WEB_APP)/vite.config.ts $(WEB_APP)/tsconfig.json $(WEB_APP)/package.json

web: $(WEB_OUT)/index.html
$(WEB_APP)/node_modules/.installed: $(WEB_APP)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20.19+ and npm are needed to build the web view: apt-get install nodejs npm" >&2; exit 1; }
	cd $(WEB_APP) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@
$(WEB_OUT)/index.html: $(WEB_APP)/node_modules/.installed $(TS_STAMP) $(WEB_SRC)
	cd $(WEB_APP) && ./node_modules/.bin/tsc --noEmit -p . && ./node_modules/.bin/vite build --logLevel warn
	touch $@

# Jars the embedded Spark Connect server adds to pyspark's own (sparkserver
# passes every jar in $(SPARK_JARS_DIR) to spark-submit --jars): Delta Lake
# built for Spark 4.2 with the runtime dependencies Spark does not ship (its
# POM marks Spark provided), Spark's Avro source, and Spark's Kafka connector
# with the compile dependencies of its POM that pyspark's jars/ lacks
# (kafka-clients and commons-pool2 at the versions Spark 4.2.0 builds with;
# kafka-clients' own compression and logging jars are in pyspark already).
# They must be on --jars: a connector added to a session as an artifact is
# not on the executors' classpath. Fetched once with Maven, whose ~/.m2 cache
# keeps them; the stamp names the list, so a change refetches.
SPARK_JARS_DIR := $(VENV)/spark-jars
SPARK_JARS := io.delta:delta-spark_4.2_2.13:4.4.0 io.delta:delta-storage:4.4.0 \
  io.delta:delta-kernel-api:4.4.0 io.delta:delta-kernel-defaults:4.4.0 \
  io.delta:delta-kernel-unitycatalog:4.4.0 io.unitycatalog:unitycatalog-client:0.6.0 \
  io.unitycatalog:unitycatalog-hadoop:0.6.0 com.fasterxml.jackson.datatype:jackson-datatype-jdk8:2.21.2 \
  org.apache.spark:spark-avro_2.13:4.2.0 \
  org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0 org.apache.spark:spark-token-provider-kafka-0-10_2.13:4.2.0 \
  org.apache.kafka:kafka-clients:3.9.2 org.apache.commons:commons-pool2:2.13.1
SPARK_JARS_STAMP := $(SPARK_JARS_DIR)/.fetched-$(shell printf '%s' '$(SPARK_JARS)' | cksum | cut -d' ' -f1)
MVN_COPY := org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy

spark-jars: $(SPARK_JARS_STAMP)
$(SPARK_JARS_STAMP): | $(VENV)/.installed
	@command -v mvn >/dev/null || { echo "Maven (mvn) is needed once to fetch Spark's Delta Lake, Avro and Kafka jars: apt-get install maven" >&2; exit 1; }
	rm -rf $(SPARK_JARS_DIR).tmp && mkdir -p $(SPARK_JARS_DIR).tmp
	for a in $(SPARK_JARS); do mvn -q -B $(MVN_COPY) -Dartifact=$$a -DoutputDirectory=$(abspath $(SPARK_JARS_DIR)).tmp; done
	rm -rf $(SPARK_JARS_DIR) && mv $(SPARK_JARS_DIR).tmp $(SPARK_JARS_DIR) && touch $@

# Apache Kafka's broker for the tests that need one (tools/kafka/pom.xml
# names the version), with its runtime dependencies, copied from Maven
# Central once; the stamp names the POM's checksum, so a change refetches.
KAFKA_LIBS_DIR := $(VENV)/kafka-libs
KAFKA_LIBS_STAMP := $(KAFKA_LIBS_DIR)/.fetched-$(shell cksum < tools/kafka/pom.xml | cut -d' ' -f1)
MVN_COPY_DEPS := org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies

kafka-libs: $(KAFKA_LIBS_STAMP)
$(KAFKA_LIBS_STAMP):
	@command -v mvn >/dev/null || { echo "Maven (mvn) is needed once to fetch the tests' Kafka broker: apt-get install maven" >&2; exit 1; }
	rm -rf $(KAFKA_LIBS_DIR).tmp
	mvn -q -B -f tools/kafka/pom.xml $(MVN_COPY_DEPS) -DincludeScope=runtime -DoutputDirectory=$(abspath $(KAFKA_LIBS_DIR)).tmp
	rm -rf $(KAFKA_LIBS_DIR) && mv $(KAFKA_LIBS_DIR).tmp $(KAFKA_LIBS_DIR) && touch $@

# The command that runs the test run's broker (internal/streaming/kafkatest).
testbroker:
	$(GO) build -o $(BIN)/testbroker ./internal/streaming/kafkatest/testbroker

# The command that runs the test run's PostgreSQL (internal/store/postgres/pgtest).
testpg:
	$(GO) build -o $(BIN)/testpg ./internal/store/postgres/pgtest/testpg

# The command that runs the test run's MLflow tracking server
# (internal/mlops/mlflowtest), the venv's pinned mlflow.
testmlflow:
	$(GO) build -o $(BIN)/testmlflow ./internal/mlops/mlflowtest/testmlflow

# PostgreSQL's server for the tests of the PostgreSQL store and of several
# replicas: Debian's package, installed when missing (as Chromium is).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { echo "installing Debian's postgresql for the store tests"; apt-get update -q && apt-get install -y -q postgresql; }

java:
	@command -v java >/dev/null || { echo "Java 17+ is needed for Spark: apt-get install openjdk-17-jre-headless" >&2; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  [ "$${v:-0}" -ge 17 ] || { echo "Java 17+ is needed for Spark, found $$v" >&2; exit 1; }

# ---- code generation -------------------------------------------------------

# validate.proto comes from the protovalidate module pinned in tools/go.mod.
$(PROTODEPS)/buf/validate/validate.proto: tools/go.mod
	mkdir -p $(PROTODEPS)/buf
	$(GO) mod download -modfile=tools/go.mod github.com/bufbuild/protovalidate
	ln -sfn "$$(cd tools && $(GO) list -m -f '{{.Dir}}' github.com/bufbuild/protovalidate)/proto/protovalidate/buf/validate" $(PROTODEPS)/buf/validate
	touch -h $@

lint: $(PROTODEPS)/buf/validate/validate.proto
	$(TOOL) buf lint

generate: $(PROTODEPS)/buf/validate/validate.proto venv $(TS_STAMP)
	$(TOOL) buf lint
	rm -rf gen $(PYGEN) $(TSGEN)
	$(TOOL) buf generate
	mkdir -p $(PYGEN)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VPY) -m grpc_tools.protoc -I proto -I $(PROTODEPS) \
	  --python_out=$(PYGEN) --mypy_out=$(PYGEN) \
	  --grpc_python_out=$(PYGEN) --mypy_grpc_out=$(PYGEN) \
	  tauro/exec/v1/exec.proto tauro/exec/v1/worker.proto buf/validate/validate.proto
	$(VPY) clients/python/scripts/localize_imports.py $(PYGEN)

# CI proves the committed generated code is what `make generate` makes.
check-generated: generate
	@git diff --exit-code --stat -- gen $(PYGEN) $(TSGEN) || { echo "generated code is stale: run 'make generate' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen $(PYGEN) $(TSGEN))" || { git status --porcelain -- gen $(PYGEN) $(TSGEN); echo "generated code is stale: run 'make generate' and commit" >&2; exit 1; }

# ---- tests -----------------------------------------------------------------

# Build outputs and large blobs stay out of git: a tracked file over 1 MiB
# fails the run unless it is test data (under a testdata/ folder).
check-tree:
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' -- 2>/dev/null | awk '$$1 > 1048576 && $$2 !~ /(^|\/)testdata\//'); \
	  [ -z "$$big" ] || { echo "tracked files over 1 MiB outside testdata/ (build outputs belong in bin/, ignored):" >&2; echo "$$big" >&2; exit 1; }

SPARK_TEST := .build/spark-test
KAFKA_TEST := .build/kafka-test
PG_TEST := .build/postgres-test
MLFLOW_TEST := .build/mlflow-test

# One Spark Connect server (its UI on, TAURO_SPARK_UI, for the tests that
# read Spark's own record of what ran), one Kafka broker (KRaft, its own controller, a
# fresh cluster each run), one PostgreSQL cluster (a temp folder, a free
# loopback port) and one MLflow tracking server (SQLite and artifacts in
# $(MLFLOW_TEST), a free loopback port) serve the whole test run: Go
# integration tests and the Python client's tests reach them through
# TAURO_SPARK_REMOTE, TAURO_KAFKA_BOOTSTRAP, TAURO_POSTGRES_URL (with the
# password in TAURO_POSTGRES_PASSWORD_FILE) and TAURO_MLFLOW_URI. All start
# at once; all are stopped on exit.
test: check-tree check-generated test-fuzz java postgres build testbroker testpg testmlflow venv npm spark-jars kafka-libs grpcurl
	@mkdir -p $(SPARK_TEST) && rm -f $(SPARK_TEST)/remote $(SPARK_TEST)/ui
	@rm -rf $(KAFKA_TEST) $(PG_TEST) $(MLFLOW_TEST) && mkdir -p $(KAFKA_TEST) $(PG_TEST) $(MLFLOW_TEST)
	@echo "starting the test run's Spark Connect server (log: $(SPARK_TEST)/spark/connect.log), Kafka broker (log: $(KAFKA_TEST)/broker.log), PostgreSQL and MLflow (log: $(MLFLOW_TEST)/mlflow.log)"
	$(BIN)/execd spark-server --state $(SPARK_TEST) --ui-file $(SPARK_TEST)/ui --ready-file $(SPARK_TEST)/remote >$(SPARK_TEST)/server.out 2>&1 & \
	  pid=$$!; \
	  $(BIN)/testbroker --libs $(KAFKA_LIBS_DIR) --state $(KAFKA_TEST) --ready-file $(KAFKA_TEST)/bootstrap >$(KAFKA_TEST)/testbroker.out 2>&1 & \
	  kpid=$$!; \
	  $(BIN)/testpg --ready-file $(PG_TEST)/ready >$(PG_TEST)/testpg.out 2>&1 & \
	  ppid=$$!; \
	  $(BIN)/testmlflow --state $(MLFLOW_TEST) --ready-file $(MLFLOW_TEST)/uri >$(MLFLOW_TEST)/testmlflow.out 2>&1 & \
	  mpid=$$!; trap 'kill $$pid $$kpid $$ppid $$mpid 2>/dev/null; wait $$pid $$kpid $$ppid $$mpid 2>/dev/null' EXIT; \
	  for i in $$(seq 1 360); do [ -s $(SPARK_TEST)/remote ] && break; kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
	  [ -s $(SPARK_TEST)/remote ] || { echo "Spark Connect did not start:" >&2; tail -40 $(SPARK_TEST)/server.out >&2; exit 1; }; \
	  for i in $$(seq 1 240); do [ -s $(KAFKA_TEST)/bootstrap ] && break; kill -0 $$kpid 2>/dev/null || break; sleep 0.5; done; \
	  [ -s $(KAFKA_TEST)/bootstrap ] || { echo "the Kafka broker did not start:" >&2; tail -40 $(KAFKA_TEST)/testbroker.out >&2; exit 1; }; \
	  for i in $$(seq 1 120); do [ -s $(PG_TEST)/ready ] && break; kill -0 $$ppid 2>/dev/null || break; sleep 0.5; done; \
	  [ -s $(PG_TEST)/ready ] || { echo "PostgreSQL did not start:" >&2; tail -40 $(PG_TEST)/testpg.out >&2; exit 1; }; \
	  for i in $$(seq 1 240); do [ -s $(MLFLOW_TEST)/uri ] && break; kill -0 $$mpid 2>/dev/null || break; sleep 0.5; done; \
	  [ -s $(MLFLOW_TEST)/uri ] || { echo "the MLflow tracking server did not start:" >&2; tail -40 $(MLFLOW_TEST)/testmlflow.out >&2; exit 1; }; \
	  export TAURO_SPARK_REMOTE=$$(cat $(SPARK_TEST)/remote) TAURO_SPARK_UI=$$(cat $(SPARK_TEST)/ui) TAURO_KAFKA_BOOTSTRAP=$$(cat $(KAFKA_TEST)/bootstrap) TAURO_REQUIRE_SPARK=1 \
	    TAURO_POSTGRES_URL=$$(sed -n 1p $(PG_TEST)/ready) TAURO_POSTGRES_PASSWORD_FILE=$$(sed -n 2p $(PG_TEST)/ready) TAURO_REQUIRE_POSTGRES=1 \
	    TAURO_MLFLOW_URI=$$(cat $(MLFLOW_TEST)/uri) TAURO_REQUIRE_MLFLOW=1 \
	    EXECD=$(abspath $(BIN)/execd) GRPCURL=$(abspath $(BIN)/grpcurl); \
	  echo "Spark Connect at $${TAURO_SPARK_REMOTE%%/;*} (its token is in $(SPARK_TEST)/remote), Kafka at $$TAURO_KAFKA_BOOTSTRAP, PostgreSQL at $$TAURO_POSTGRES_URL, MLflow at $$TAURO_MLFLOW_URI"; \
	  $(MAKE) --no-print-directory test-go test-python test-typescript test-web
	@# The servers are stopped (the trap above) before the cluster starts:
	@# the two never run at once.
	$(MAKE) --no-print-directory test-cluster

# A focused set of integration tests on a local standalone Spark cluster
# (execd spark-cluster: a master, two workers of one core each, a Connect
# server whose jobs run on their executors), through --spark-remote: the
# sales example's batch pipeline over two date windows (Delta replaceWhere)
# and its Python pipeline, cancel, a killed execd taking up a write in
# flight and a streaming query, then a check that every executor ran tasks.
# The tests read where tasks ran from the driver's REST API. The server ends
# each reattachable call after 4 s, so every longer write is taken up again
# (ReattachExecute) as it would be after 2 minutes by default. They mostly
# wait on Spark, so they run side by side (the Python test beside the Go
# ones, and the Go ones with t.Parallel on the cluster).
CLUSTER_TEST := .build/spark-cluster
CLUSTER_GO_TESTS := ^(TestCluster_Sales.*|TestResume_.*|TestExecd_StreamKilledMidRun.*|TestExecd_CancelRunStopsARunningNode)$$
test-cluster: java build venv spark-jars grpcurl
	@rm -rf $(CLUSTER_TEST) && mkdir -p $(CLUSTER_TEST)
	@echo "starting the test Spark cluster (logs: $(CLUSTER_TEST)/spark/)"
	began=$$(date +%s); \
	  $(BIN)/execd spark-cluster --state $(CLUSTER_TEST) --workers 2 --ready-file $(CLUSTER_TEST)/remote --ui-file $(CLUSTER_TEST)/ui \
	    --conf spark.connect.execute.reattachable.senderMaxStreamDuration=4s >$(CLUSTER_TEST)/cluster.out 2>&1 & \
	  pid=$$!; trap 'kill $${pypid:-} $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; \
	  for i in $$(seq 1 600); do [ -s $(CLUSTER_TEST)/remote ] && break; kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
	  [ -s $(CLUSTER_TEST)/remote ] || { echo "the Spark cluster did not start:" >&2; tail -40 $(CLUSTER_TEST)/cluster.out >&2; exit 1; }; \
	  export TAURO_SPARK_REMOTE=$$(cat $(CLUSTER_TEST)/remote) TAURO_SPARK_CLUSTER_REMOTE=$$(cat $(CLUSTER_TEST)/remote) \
	    TAURO_SPARK_CLUSTER_UI=$$(cat $(CLUSTER_TEST)/ui) TAURO_REQUIRE_SPARK=1 \
	    EXECD=$(abspath $(BIN)/execd) GRPCURL=$(abspath $(BIN)/grpcurl); \
	  echo "Spark cluster up in $$(( $$(date +%s) - began ))s: Connect at $${TAURO_SPARK_REMOTE%%/;*}, driver UI $$TAURO_SPARK_CLUSTER_UI"; \
	  (cd clients/python && ../../$(VPY) -m pytest -q tests/test_example.py) >$(CLUSTER_TEST)/pytest.out 2>&1 & \
	  pypid=$$!; \
	  $(GO) test -count=1 -timeout 15m -run '$(CLUSTER_GO_TESTS)' ./cmd/execd; \
	  wait $$pypid || { cat $(CLUSTER_TEST)/pytest.out; exit 1; }; tail -3 $(CLUSTER_TEST)/pytest.out; \
	  $(GO) test -count=1 -run '^TestCluster_EveryExecutorRanTasks$$' -v ./cmd/execd; \
	  echo "the cluster tests took $$(( $$(date +%s) - began ))s, the cluster's start included"

# A local standalone cluster to try --spark-remote against, until Ctrl-C:
# its address with the token is in .build/spark-cluster/remote.
spark-cluster: java build venv spark-jars
	@mkdir -p $(CLUSTER_TEST)
	$(BIN)/execd spark-cluster --state $(CLUSTER_TEST) --workers $(or $(WORKERS),2) --ready-file $(CLUSTER_TEST)/remote --ui-file $(CLUSTER_TEST)/ui

# The gRPC tests drive execd with the real grpcurl, pinned in tools/go.mod.
grpcurl:
	GOBIN=$(abspath $(BIN)) $(GO) install -modfile=tools/go.mod github.com/fullstorydev/grpcurl/cmd/grpcurl

# skipcheck prints go test's usual lines, then every skipped test and why;
# under make test (TAURO_REQUIRE_SPARK=1) a skip fails unless
# tools/skipcheck/allowed-skips lists the test.
test-go:
	$(GO) vet ./...
	$(GO) test -C tools -count=1 ./skipcheck && $(GO) build -C tools -o $(abspath $(BIN))/skipcheck ./skipcheck
	$(GO) test -json -race -count=1 -timeout 30m ./... | $(BIN)/skipcheck -allowed tools/skipcheck/allowed-skips

# Brief fuzzing on every run: a panic on any input fails the build. The
# budgets are counts of inputs (about ten seconds each here), not durations:
# with a duration, Go 1.26's fuzz coordinator can fail a clean run with
# "context deadline exceeded" as time runs out (golang/go#75804).
FUZZ_LOAD ?= 3000x
FUZZ_PARSE ?= 30000x
FUZZ_RESOLVE ?= 100000x
FUZZ_HANDLERS ?= 3000x
test-fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZ_LOAD) ./internal/engine/config
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZ_PARSE) ./internal/engine/config
	$(GO) test -run='^$$' -fuzz='^FuzzResolve$$' -fuzztime=$(FUZZ_RESOLVE) ./internal/engine/plan
	$(GO) test -run='^$$' -fuzz='^FuzzHandlers$$' -fuzztime=$(FUZZ_HANDLERS) ./cmd/execd

test-python: venv
	cd clients/python && ../../$(VPY) -m mypy --strict src/tauro_exec --exclude '_proto/'
	cd clients/python && ../../$(VPY) -m pytest -q -rfEs tests

# The TypeScript client: type-checked and compiled with tsc, then its tests
# (node's own runner) drive a real execd ($EXECD) on the test run's Spark
# ($TAURO_SPARK_REMOTE), as `make test` exports them.
test-typescript: $(TS_STAMP)
	rm -rf $(TSDIR)/dist
	cd $(TSDIR) && node_modules/.bin/tsc -p tsconfig.json && node_modules/.bin/tsc -p tsconfig.test.json
	cd $(TSDIR) && node --test --test-concurrency=1 dist/test/*.test.js

# The browser test drives the web view of a real execd (on the run's Spark)
# in headless Chromium, Debian's package, through playwright-core: no browser
# is downloaded. Screenshots go to .build/web-test.
chromium:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser test"; apt-get update -q && apt-get install -y -q chromium; }

test-web: build chromium
	cd $(WEB_APP) && node --test --test-concurrency=1 test/

# Benchmarks that need Spark start their own server unless TAURO_SPARK_REMOTE
# names one. The Python-vs-SQL node comparison runs three rounds: one round
# of a 50-node pipeline is seconds long and noisy on a small machine. The
# peer benchmark (bench/peer) runs execd against the same work written by
# hand, over Spark Connect and on classic Spark, in interleaved rounds
# (PEER_ROUNDS, default 5; PEER_WORKLOADS picks workloads).
# The store benchmarks include PostgreSQL's (from an event committed on one
# replica to a watcher on another), and the throughput benchmark runs tiny
# runs through one execd on SQLite and one and three replicas on
# PostgreSQL; both start a throwaway PostgreSQL cluster of their own.
bench: java postgres build venv spark-jars
	$(GO) test -run='^$$' -bench=. -skip='PythonNodeOverhead|ExpectationOverhead' -benchmem -count=1 ./internal/...
	$(GO) test -run='^$$' -bench='PythonNodeOverhead' -benchtime=3x -count=1 ./internal/spark/backend
	$(GO) test -run='^$$' -bench='ExpectationOverhead' -benchtime=10x -count=1 -v ./internal/spark/backend
	EXECD=$(abspath $(BIN)/execd) $(GO) test -run='^$$' -bench='Throughput' -benchtime=2x -count=1 ./cmd/execd
	$(MAKE) --no-print-directory bench-peer

bench-peer: java build venv spark-jars
	$(VPY) bench/peer/peer.py --execd $(abspath $(BIN)/execd)
	$(VPY) bench/peer/scale.py --execd $(abspath $(BIN)/execd)

# ---- demo ------------------------------------------------------------------

demo: java build venv spark-jars
	$(VPY) examples/demo.py $(DEMO_ARGS)

clean:
	rm -rf $(BIN) .build $(WEB_OUT)
