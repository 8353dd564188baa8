package backend_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// A reset of a Kafka-fed node's checkpoint starts the new query where the
// old one had committed: its source says startingOffsets: earliest, so a
// query starting afresh would read the topic again from its start and
// land the first records twice.
func TestKafka_AResetCheckpointKeepsTheSinkAndReadsOnlyWhatTheOldCheckpointHadNotCommitted(t *testing.T) {
	const first, second = 100, 30
	dir, _, _ := kafkaProject(t,
		"produce: {type: batch, nodes: [send], requires_dates: false}\nproduce_more: {type: batch, nodes: [send_more], requires_dates: false}\ns: {type: streaming, nodes: [load]}\n",
		produceJSON("send", "raw.events.first", 1, first)+produceJSON("send_more", "raw.events.more", first+1, first+second)+
			"load: {sql: \"SELECT id, name, amount FROM events\", input: [events], output: [silver.events.clean], streaming: {trigger: {type: available_now}}}\n",
		"events: {format: kafka, options: {kafka.bootstrap.servers: \"${BOOTSTRAP}\", subscribe: \"${TOPIC}\", startingOffsets: earliest}, parse_json: true, json_schema: \"id BIGINT, name STRING, amount DOUBLE\"}\n",
		"raw.events.first: {format: kafka, options: {kafka.bootstrap.servers: \"${BOOTSTRAP}\", topic: \"${TOPIC}\"}}\n"+
			"raw.events.more: {format: kafka, options: {kafka.bootstrap.servers: \"${BOOTSTRAP}\", topic: \"${TOPIC}\"}}\n"+
			"silver.events.clean: {format: delta}\n")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	table := "delta.`" + filepath.Join(dir, "out", "silver", "events", "clean") + "`"

	runToSuccess(ctx, t, eng, "produce")
	runToSuccess(ctx, t, eng, "s")
	runToSuccess(ctx, t, eng, "produce_more")

	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s", ResetCheckpoint: []string{"load"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	if done, _ := eng.Get(ctx, r.ID); done.State != run.Succeeded {
		t.Fatalf("the reset run ended %s: %s", done.State, done.Message)
	}
	var said []string
	for _, ev := range evs {
		if ev.Kind == run.NodeMessage && ev.Cleared != "" {
			said = append(said, ev.Message)
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], "kept the sink's data") || !strings.Contains(said[0], "starts after batch 0") {
		t.Errorf("the run records its reset as %q, want once, after batch 0", said)
	}
	if got := ints(ctx, t, nil, "SELECT count(*), count(DISTINCT id) FROM "+table); got[0] != first+second || got[1] != first+second {
		t.Errorf("after the reset the table holds %d rows with %d distinct ids, want %d of each: the reset reprocessed committed records or lost some",
			got[0], got[1], first+second)
	}
}

// A full refresh is done once per run: the run records it before the
// query starts, and neither a retry of the node nor a repair of the run
// deletes the sink again, whatever was written there since.
func TestStream_AFullRefreshIsDoneOnceEvenWhenTheNodeFailsAfterItAndTheRunIsRepaired(t *testing.T) {
	dir := streamProject(t,
		"land: {sql: \"SELECT id, day, amount FROM orders\", input: [orders], output: [silver.orders.landed], streaming: {trigger: {type: available_now}}}\n",
		"orders: {format: file_stream, path: in, options: {header: true, format: csv}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.landed: {format: delta}\n")
	writeFiles(t, dir, map[string]string{"in/a.csv": csvFile("2025-01-01", 1, 20)})
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	table := "delta.`" + filepath.Join(dir, "out", "silver", "orders", "landed") + "`"
	runToSuccess(ctx, t, eng, "s")

	// The source folder is gone: the refresh clears, then the query
	// cannot start, on both attempts (max_retries: 1).
	in := filepath.Join(dir, "in")
	if err := os.Rename(in, in+".away"); err != nil {
		t.Fatal(err)
	}
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s", FullRefresh: []string{"land"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	if done, _ := eng.Get(ctx, r.ID); done.State != run.Failed {
		t.Fatalf("the refresh run without its source ended %s: %s", done.State, done.Message)
	}
	if n := clears(evs); n != 1 {
		t.Fatalf("the failed run cleared %d times, want once (its retry does not clear again)", n)
	}

	// Written after the clear: a repair that cleared again would lose it.
	if err := os.Rename(in+".away", in); err != nil {
		t.Fatal(err)
	}
	spark := sparktest.Session(ctx, t)
	if df, err := spark.Sql(ctx, "CREATE TABLE "+table+" (id INT, day STRING, amount DOUBLE) USING delta"); err != nil {
		t.Fatal(err)
	} else if _, err := df.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if df, err := spark.Sql(ctx, "INSERT INTO "+table+" VALUES (-1, 'kept', 0.0)"); err != nil {
		t.Fatal(err)
	} else if _, err := df.Collect(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := eng.Repair(ctx, r.ID, ""); err != nil {
		t.Fatal(err)
	}
	evs = follow(ctx, t, eng, r.ID, nil)
	if done, _ := eng.Get(ctx, r.ID); done.State != run.Succeeded {
		t.Fatalf("the repair ended %s: %s", done.State, done.Message)
	}
	if n := clears(evs); n != 1 {
		t.Errorf("the run's events record %d clears after the repair, want the first one only", n)
	}
	if got := ints(ctx, t, nil, "SELECT count(*), count_if(id = -1) FROM "+table); got[0] != 21 || got[1] != 1 {
		t.Errorf("after the repair the table holds %d rows, %d of them written after the clear; want the 20 of the source and that 1", got[0], got[1])
	}
}

// clears counts the events that record a clear.
func clears(evs []run.Event) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == run.NodeMessage && ev.Cleared != "" {
			n++
		}
	}
	return n
}
