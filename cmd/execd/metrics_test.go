package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// scrape reads the metrics endpoint once.
func scrape(t *testing.T, addr string) metricSet {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

// metricSet is one scrape, by metric family name.
type metricSet map[string]*dto.MetricFamily

// matching returns the series of family name whose labels include labels.
func (m metricSet) matching(name string, labels map[string]string) []*dto.Metric {
	fam := m[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, s := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range labels {
			if have[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// value sums the counters or gauges of name with labels; an absent series
// counts 0, as a counter never incremented is.
func (m metricSet) value(name string, labels map[string]string) float64 {
	var v float64
	for _, s := range m.matching(name, labels) {
		switch {
		case s.Counter != nil:
			v += s.GetCounter().GetValue()
		case s.Gauge != nil:
			v += s.GetGauge().GetValue()
		case s.Untyped != nil:
			v += s.GetUntyped().GetValue()
		}
	}
	return v
}

// histogram sums the sample counts and sums of name's histograms with labels.
func (m metricSet) histogram(name string, labels map[string]string) (count uint64, sum float64) {
	for _, s := range m.matching(name, labels) {
		count += s.GetHistogram().GetSampleCount()
		sum += s.GetHistogram().GetSampleSum()
	}
	return count, sum
}

// scrapeUntil scrapes until ok accepts a scrape or ctx ends.
func scrapeUntil(ctx context.Context, t *testing.T, addr, what string, ok func(metricSet) error) metricSet {
	t.Helper()
	for {
		m := scrape(t, addr)
		err := ok(m)
		if err == nil {
			return m
		}
		select {
		case <-ctx.Done():
			t.Fatalf("metrics never showed %s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestMetrics_AScrapeBeforeDuringAndAfterARunShowsItsCountersMove(t *testing.T) {
	t.Setenv("NAP_MS", "5000") // the run stays RUNNING long enough to be seen
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	if d.metrics == "" {
		t.Fatalf("execd did not print its metrics address:\n%s", d.Logs())
	}
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)
	slow := map[string]string{"pipeline": "slow"}
	execute := map[string]string{"grpc_service": "tauro.exec.v1.ExecService", "grpc_method": "ExecutePipeline", "grpc_code": "OK"}
	watch := map[string]string{"grpc_service": "tauro.exec.v1.ExecService", "grpc_method": "WatchRun"}

	before := scrapeUntil(ctx, t, d.metrics, "Spark up", func(m metricSet) error {
		if m.value("tauro_exec_spark_up", nil) != 1 {
			return fmt.Errorf("tauro_exec_spark_up = %v", m.value("tauro_exec_spark_up", nil))
		}
		return nil
	})
	if fam := before["grpc_server_handled_total"]; fam == nil || len(before.matching("grpc_server_handled_total", execute)) != 1 {
		t.Errorf("grpc_server_handled_total has no zero series for ExecutePipeline before any call")
	}
	if n := before.value("grpc_server_handled_total", execute); n != 0 {
		t.Errorf("ExecutePipeline handled %v times before any call", n)
	}
	if n := before.value("tauro_exec_runs_started_total", slow); n != 0 {
		t.Errorf("runs started before any run: %v", n)
	}
	for _, name := range []string{"tauro_exec_queue_depth", "tauro_exec_runs_executing", "tauro_exec_watchers", "tauro_exec_spark_breaker_open"} {
		if before[name] == nil || before.value(name, nil) != 0 {
			t.Errorf("%s before any run: present %v, value %v; want 0", name, before[name] != nil, before.value(name, nil))
		}
	}
	if w := before.value("tauro_exec_python_workers", nil); w != 2 {
		t.Errorf("python workers busy+idle = %v; want the 2 of --workers", w)
	}
	if before["tauro_exec_spark_server_restarts_total"] != nil {
		t.Errorf("a restart counter for an embedded server execd did not start (--spark-remote)")
	}

	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	// The watchers gauge can move before the interceptor counts the
	// WatchRun call as started (seen once under load): wait for both.
	during := scrapeUntil(ctx, t, d.metrics, "the run executing while it is watched", func(m metricSet) error {
		if x, w := m.value("tauro_exec_runs_executing", nil), m.value("tauro_exec_watchers", nil); x != 1 || w != 1 {
			return fmt.Errorf("runs_executing %v, watchers %v; want 1 and 1", x, w)
		}
		if n := m.value("grpc_server_started_total", watch); n != 1 {
			return fmt.Errorf("WatchRun started %v times; want 1", n)
		}
		return nil
	})
	if n := during.value("tauro_exec_runs_started_total", slow); n != 1 {
		t.Errorf("runs started during the run: %v; want 1", n)
	}
	if n := during.value("grpc_server_handled_total", execute); n != 1 {
		t.Errorf("ExecutePipeline handled %v times; want 1", n)
	}
	if n := during.value("tauro_exec_runs_finished_total", slow); n != 0 {
		t.Errorf("runs finished while the only one runs: %v", n)
	}

	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("watch: %v", err)
		}
	}
	after := scrapeUntil(ctx, t, d.metrics, "the run's end", func(m metricSet) error {
		if f, x, w := m.value("tauro_exec_runs_finished_total", nil), m.value("tauro_exec_runs_executing", nil), m.value("tauro_exec_watchers", nil); f != 1 || x != 0 || w != 0 {
			return fmt.Errorf("runs_finished %v, runs_executing %v, watchers %v; want 1, 0, 0", f, x, w)
		}
		return nil
	})
	if n := after.value("tauro_exec_runs_finished_total", map[string]string{"project": "sqlproj", "pipeline": "slow", "state": "SUCCEEDED"}); n != 1 {
		t.Errorf("runs finished SUCCEEDED: %v; want 1\n%s", n, d.Logs())
	}
	count, sum := after.histogram("tauro_exec_node_duration_seconds", map[string]string{"pipeline": "slow", "state": "SUCCEEDED"})
	if count != 3 {
		t.Errorf("node duration samples for pipeline slow: %d; want its 3 nodes", count)
	}
	if sum < 5 {
		t.Errorf("node durations add up to %.2fs; the nap alone sleeps 5s", sum)
	}
	if n := after.value("grpc_server_handled_total", map[string]string{"grpc_method": "WatchRun", "grpc_code": "OK"}); n != 1 {
		t.Errorf("WatchRun handled OK %v times; want 1", n)
	}
	if h, _ := after.histogram("grpc_server_handling_seconds", map[string]string{"grpc_method": "ExecutePipeline"}); h != 1 {
		t.Errorf("ExecutePipeline handling-time samples: %d; want 1", h)
	}

	// The listener serves /metrics and nothing else.
	resp, err := http.Get("http://" + d.metrics + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / on the metrics listener: %s; want 404", resp.Status)
	}
}

func TestMetrics_OffWithoutTheFlag(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0")
	if d.metrics != "" {
		t.Errorf("execd serves metrics on %s without --metrics-listen", d.metrics)
	}
}
