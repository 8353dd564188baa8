package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/spark-connect-go/spark/sql"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/streaming/kafkatest"
)

// kafkaProject writes a project with the given pipelines, nodes, inputs
// and outputs; ${BOOTSTRAP} and ${TOPIC} in them are the test broker and
// a topic of the test's own.
func kafkaProject(t *testing.T, pipelines, nodes, inputs, outputs string) (dir, bootstrap, topic string) {
	t.Helper()
	bootstrap, topic = kafkatest.Bootstrap(t), kafkatest.Topic(t)
	fill := strings.NewReplacer("${BOOTSTRAP}", bootstrap, "${TOPIC}", topic).Replace
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nmax_retries: 0\n",
		"pipelines.yaml":    pipelines,
		"nodes.yaml":        fill(nodes),
		"input.yaml":        fill(inputs),
		"output.yaml":       fill(outputs),
	})
	return dir, bootstrap, topic
}

// runToSuccess runs pipeline and fails the test unless the run succeeds;
// it returns the run's events.
func runToSuccess(ctx context.Context, t *testing.T, eng *engine.Engine, pipeline string) []run.Event {
	t.Helper()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: pipeline}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	if done.State != run.Succeeded {
		msg := done.Message
		for _, n := range done.Nodes {
			if n.Error != nil {
				msg += "; " + n.Name + ": " + n.Error.Message
			}
		}
		t.Fatalf("run of %s %s: %s", pipeline, done.State, msg)
	}
	return evs
}

// produceJSON is a batch node that writes ids from..to to output key as
// JSON records keyed by id, through Spark's Kafka writer.
func produceJSON(node, key string, from, to int) string {
	return fmt.Sprintf(`%s: {sql: "SELECT CAST(id AS STRING) AS key, to_json(named_struct('id', id, 'name', concat('n', CAST(id AS STRING)), 'amount', id * 1.5)) AS value FROM range(%d, %d)", output: [%s]}
`, node, from, to+1, key)
}

func TestKafka_StreamFromATopicIntoDeltaReadsEveryRecordOnceAcrossRuns(t *testing.T) {
	const first, second = 500, 120
	dir, bootstrap, topic := kafkaProject(t,
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

	began := time.Now()
	runToSuccess(ctx, t, eng, "produce")
	t.Logf("produced %d records in %s", first, time.Since(began).Round(time.Millisecond))
	if got := readTopic(ctx, t, bootstrap, topic, "SELECT count(*), count(DISTINCT key) FROM records"); got[0] != first || got[1] != first {
		t.Fatalf("the batch write left %d records with %d distinct keys in the topic, want %d", got[0], got[1], first)
	}

	began = time.Now()
	evs := runToSuccess(ctx, t, eng, "s")
	t.Logf("streamed them into Delta in %s", time.Since(began).Round(time.Millisecond))
	if !sawState(evs, "load", run.NodeStreaming) || !sawProgress(evs, "load") {
		t.Errorf("the node was never STREAMING with progress")
	}
	// A batch that read rows says which offsets of the topic it read and
	// what the Delta sink wrote.
	for _, ev := range evs {
		if p := ev.Progress; ev.Kind == run.NodeProgress && p.InputRows > 0 {
			if len(p.Sources) != 1 || !strings.Contains(p.Sources[0].EndOffset, topic) || p.Sources[0].InputRows != p.InputRows ||
				p.Sink == nil || !strings.Contains(p.Sink.Description, "Delta") {
				t.Errorf("batch %d's detail: sources %+v, sink %+v", p.BatchID, p.Sources, p.Sink)
			}
			break
		}
	}
	// Every record parsed: its id, the name and amount derived from it.
	got := ints(ctx, t, nil, "SELECT count(*), count_if(name = concat('n', CAST(id AS STRING)) AND amount = id * 1.5 AND id BETWEEN 1 AND "+
		fmt.Sprint(first)+") FROM "+table)
	if got[0] != first || got[1] != first {
		t.Fatalf("the Delta table holds %d rows, %d with the values written; want %d", got[0], got[1], first)
	}

	// More records arrive; the next run resumes from the checkpoint's
	// offsets and adds only them.
	runToSuccess(ctx, t, eng, "produce_more")
	began = time.Now()
	runToSuccess(ctx, t, eng, "s")
	t.Logf("streamed %d more in %s", second, time.Since(began).Round(time.Millisecond))
	if got := ints(ctx, t, nil, "SELECT count(*), count(DISTINCT id) FROM "+table); got[0] != first+second || got[1] != first+second {
		t.Errorf("after the second run the Delta table holds %d rows with %d distinct ids, want %d of each: a record was read twice or lost",
			got[0], got[1], first+second)
	}
}

func TestKafka_StreamFromADeltaTableIntoATopicWritesEveryRowOnce(t *testing.T) {
	const rows = 300
	dir, bootstrap, topic := kafkaProject(t,
		"seed: {type: batch, nodes: [items], requires_dates: false}\ns: {type: streaming, nodes: [publish]}\n",
		fmt.Sprintf("items: {sql: \"SELECT id, concat('item-', CAST(id AS STRING)) AS name FROM range(0, %d)\", output: [bronze.items.raw]}\n", rows)+
			"publish: {sql: \"SELECT CAST(id AS STRING) AS key, to_json(struct(*)) AS value FROM items_stream\", input: [items_stream], output: [raw.items.kafka], streaming: {trigger: {type: available_now}}}\n",
		"items_stream: {format: delta_stream, path: out/bronze/items/raw}\n",
		"bronze.items.raw: {format: delta}\n"+
			"raw.items.kafka: {format: kafka, options: {kafka.bootstrap.servers: \"${BOOTSTRAP}\", topic: \"${TOPIC}\"}}\n")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	runToSuccess(ctx, t, eng, "seed")
	began := time.Now()
	evs := runToSuccess(ctx, t, eng, "s")
	t.Logf("streamed %d Delta rows into Kafka in %s", rows, time.Since(began).Round(time.Millisecond))
	if !sawState(evs, "publish", run.NodeStreaming) {
		t.Errorf("the node was never STREAMING")
	}

	got := readTopic(ctx, t, bootstrap, topic, `SELECT count(*), count(DISTINCT key),
		count_if(CAST(key AS STRING) = get_json_object(CAST(value AS STRING), '$.id')
		         AND get_json_object(CAST(value AS STRING), '$.name') = concat('item-', CAST(key AS STRING)))
		FROM records`)
	if got[0] != rows || got[1] != rows || got[2] != rows {
		t.Errorf("the topic holds %d records with %d distinct keys, %d carrying their row; want %d of each", got[0], got[1], got[2], rows)
	}
}

// readTopic runs query over every record of topic, the view records read
// with a batch read of Spark's Kafka source, and returns its one row.
func readTopic(ctx context.Context, t *testing.T, bootstrap, topic, query string) []int64 {
	t.Helper()
	return ints(ctx, t, func(spark sql.SparkSession) error {
		df, err := spark.Read().Format("kafka").
			Option("kafka.bootstrap.servers", bootstrap).Option("subscribe", topic).
			Option("startingOffsets", "earliest").Option("endingOffsets", "latest").Load("")
		if err != nil {
			return err
		}
		return df.CreateOrReplaceTempView(ctx, "records")
	}, query)
}

// ints runs query in a session of its own, after prepare (if any), and
// returns the integers of its one row.
func ints(ctx context.Context, t *testing.T, prepare func(sql.SparkSession) error, query string) []int64 {
	t.Helper()
	spark := sparktest.Session(ctx, t) // the server's token needs the test's own channel
	if prepare != nil {
		if err := prepare(spark); err != nil {
			t.Fatal(err)
		}
	}
	res, err := spark.Sql(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := res.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for i := range rows[0].Len() {
		n, ok := rows[0].At(i).(int64)
		if !ok {
			t.Fatalf("%s gave %v", query, rows[0].Values())
		}
		out = append(out, n)
	}
	return out
}
