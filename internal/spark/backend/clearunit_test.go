package backend

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// writeCheckpoint writes the offsets and commits logs of a checkpoint as
// Spark does: a version line, the batch's metadata, then a line per source.
func writeCheckpoint(t *testing.T, dir string, offsets map[string][]string, commits []string) {
	t.Helper()
	for _, sub := range []string{"offsets", "commits"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for batch, lines := range offsets {
		body := "v1\n{\"batchWatermarkMs\":0}\n"
		for _, l := range lines {
			body += l + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "offsets", batch), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, batch := range commits {
		if err := os.WriteFile(filepath.Join(dir, "commits", batch), []byte("v1\n{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCommittedOffsets_AreTheEndOffsetsOfTheLastCommittedBatchNotOfOneOnlyPlanned(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoint(t, dir, map[string][]string{
		"0": {`{"a":{"0":10}}`},
		"1": {`{"a":{"0":25}}`},
		"2": {`{"a":{"0":40}}`}, // planned, never committed
	}, []string{"0", "1", ".1.crc"})
	offsets, batch, err := committedOffsets(dir)
	if err != nil || batch != 1 || len(offsets) != 1 || offsets[0] != `{"a":{"0":25}}` {
		t.Fatalf("committedOffsets = %q, %d, %v; want batch 1's offsets", offsets, batch, err)
	}
	if _, batch, err := committedOffsets(filepath.Join(dir, "missing")); err != nil || batch != -1 {
		t.Errorf("a missing checkpoint: batch %d, %v; want -1 and no error", batch, err)
	}
}

func TestStartAt_GivesEachKafkaSourceTheOffsetsOfTheTopicsItSubscribesTo(t *testing.T) {
	sources := []plan.StreamSource{
		{Key: "a", Format: "kafka", Options: map[string]string{"subscribe": "ta", "startingOffsets": "earliest"}},
		{Key: "dim", Static: true},
		{Key: "b", Format: "kafka", Options: map[string]string{"subscribe": "tb, tc"}},
	}
	got, err := startAt(sources, []string{`{"tb":{"0":3},"tc":{"1":4}}`, `{"ta":{"0":7}}`})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Options["startingOffsets"] != `{"ta":{"0":7}}` || got[2].Options["startingOffsets"] != `{"tb":{"0":3},"tc":{"1":4}}` {
		t.Errorf("startingOffsets: a %q, b %q", got[0].Options["startingOffsets"], got[2].Options["startingOffsets"])
	}
	if sources[0].Options["startingOffsets"] != "earliest" {
		t.Errorf("the plan's own source options were changed: %v", sources[0].Options)
	}
	if _, err := startAt(sources, []string{`{"other":{"0":1}}`}); err == nil {
		t.Errorf("offsets of a topic no source subscribes to were given to one")
	}
}
