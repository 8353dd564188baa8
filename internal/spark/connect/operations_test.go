package connect

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	observing "github.com/tauro-exec/tauro-exec/internal/engine/observe"
)

func TestRunSQL_NotesTheIdOfEverySparkOperationItSends(t *testing.T) {
	s := connect(t, nil)
	var (
		mu  sync.Mutex
		ids []string
	)
	ctx := observing.WithSparkOperations(context.Background(), func(id string) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, id)
	})
	out := filepath.Join(t.TempDir(), "nums")
	_, err := s.RunSQL(ctx, NodeSpec{Name: "nums", SQL: "SELECT id FROM range(3)",
		Outputs: []OutputSpec{{Key: "nums", Format: "parquet", Path: out}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// At least the view's creation and the write, each its own operation.
	if len(ids) < 2 {
		t.Fatalf("noted operations %q; want one per ExecutePlan, at least 2", ids)
	}
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("operation id %q is not the UUID sent to Spark: %v", id, err)
		}
	}
	if distinct := slices.Compact(slices.Sorted(slices.Values(ids))); len(distinct) != len(ids) {
		t.Errorf("an operation was noted twice: %q", ids)
	}
}
