package backend_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
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
