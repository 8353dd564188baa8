package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func testCreateRun_StoresPendingRunWithNodesAndFirstEvent(t *testing.T, f Factory) {
	clk := newClock()
	s, _ := f.open(t, WithClock(clk.Now))
	r := NewRun("r1", "sales", "extract", "transform", "load")
	r.RequestID = "req-1"
	r.Params.Hyperparams = map[string]any{"lr": 0.1, "layers": []any{"a", "b"}}
	r.State = run.Succeeded // ignored: a new run is PENDING
	r.Nodes[1].State = run.NodeFailed

	stored := Create(t, s, r)

	if stored.State != run.Pending || stored.LastSequence != 1 || stored.RequestID != "req-1" {
		t.Errorf("stored = state %s, last %d, request %q; want PENDING, 1, req-1", stored.State, stored.LastSequence, stored.RequestID)
	}
	if stored.CreateTime.IsZero() || !stored.StartTime.IsZero() || !stored.EndTime.IsZero() {
		t.Errorf("times = %v/%v/%v; want only a create time", stored.CreateTime, stored.StartTime, stored.EndTime)
	}
	var names []string
	for _, n := range stored.Nodes {
		names = append(names, n.Name)
		if n.State != run.NodePending || n.Attempt != 0 || len(n.Attempts) != 0 {
			t.Errorf("node %s = %s attempt %d; want PENDING, 0", n.Name, n.State, n.Attempt)
		}
	}
	if !slices.Equal(names, []string{"extract", "transform", "load"}) {
		t.Errorf("nodes = %v; want the given order", names)
	}
	if got := stored.Params.Hyperparams["lr"]; got != 0.1 {
		t.Errorf("hyperparams lr = %v", got)
	}
	if got := Get(t, s, "r1"); !got.CreateTime.Equal(stored.CreateTime) || len(got.Nodes) != 3 {
		t.Errorf("GetRun differs from CreateRun's answer: %+v", got)
	}

	evs, err := s.Events(context.Background(), "r1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Sequence != 1 || evs[0].Kind != run.RunStateChanged || evs[0].RunState != run.Pending {
		t.Errorf("first events = %+v; want one run_state PENDING with sequence 1", evs)
	}
}

func testCreateRun_EmptyIDGetsOne(t *testing.T, f Factory) {
	s, _ := f.open(t)
	stored := Create(t, s, NewRun("", "p", "a"))
	if stored.ID == "" {
		t.Fatal("no id assigned")
	}
}

func testCreateRun_SameRequestIDReturnsTheExistingRun(t *testing.T, f Factory) {
	s, _ := f.open(t)
	first := NewRun("r1", "p", "a")
	first.RequestID = "req"
	Create(t, s, first)

	again := NewRun("r2", "other", "b")
	again.RequestID = "req"
	stored, created, err := s.CreateRun(context.Background(), again)
	if err != nil || created {
		t.Fatalf("CreateRun again = created %v, %v; want the existing run", created, err)
	}
	if stored.ID != "r1" || stored.Params.Pipeline != "p" {
		t.Errorf("got run %s of %s; want r1 of p", stored.ID, stored.Params.Pipeline)
	}
	if _, err := s.GetRun(context.Background(), "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("r2 exists (%v); a repeated request must not create a run", err)
	}
}

func testCreateRun_ConcurrentCallsWithOneRequestIDCreateOneRun(t *testing.T, f Factory) {
	s, _ := f.open(t)
	const callers = 32
	ids := make([]string, callers)
	createdCount := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			r := NewRun(fmt.Sprintf("r%d", i), "p", "a")
			r.RequestID = "same"
			stored, created, err := s.CreateRun(context.Background(), r)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[i] = stored.ID
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if createdCount != 1 {
		t.Errorf("%d runs created; want 1", createdCount)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("callers got different runs: %v", ids)
		}
	}
	runs, _, err := s.ListRuns(context.Background(), store.ListFilter{}, 0, "")
	if err != nil || len(runs) != 1 {
		t.Errorf("ListRuns = %d runs, %v; want 1", len(runs), err)
	}
}

func testCreateRun_TakenIDIsAlreadyExists(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r1", "p", "a"))
	_, _, err := s.CreateRun(context.Background(), NewRun("r1", "p", "a"))
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("err = %v; want ErrAlreadyExists", err)
	}
}

func testCreateRun_RefusesInputItCouldNotKeepOrReadBack(t *testing.T, f Factory) {
	deep := map[string]any{}
	cur := deep
	for range 20000 {
		next := map[string]any{}
		cur["x"] = next
		cur = next
	}
	tests := []struct {
		name string
		edit func(*run.Run)
	}{
		{"id with a control character", func(r *run.Run) { r.ID = "a\nb" }},
		{"id that is not UTF-8", func(r *run.Run) { r.ID = "a\xffb" }},
		{"id too long", func(r *run.Run) { r.ID = strings.Repeat("x", 200) }},
		{"request id too long", func(r *run.Run) { r.RequestID = strings.Repeat("x", 200) }},
		{"node listed twice", func(r *run.Run) { r.Nodes = append(r.Nodes, run.Node{Name: "a"}) }},
		{"empty node name", func(r *run.Run) { r.Nodes = append(r.Nodes, run.Node{}) }},
		{"NaN hyperparameter", func(r *run.Run) { r.Params.Hyperparams = map[string]any{"x": math.NaN()} }},
		{"unencodable hyperparameter", func(r *run.Run) { r.Params.Hyperparams = map[string]any{"x": make(chan int)} }},
		{"hyperparameters nested too deep to read back", func(r *run.Run) { r.Params.Hyperparams = deep }},
		{"parameters too large", func(r *run.Run) { r.Params.ModelVersion = strings.Repeat("v", 2<<20) }},
		{"too many nodes", func(r *run.Run) {
			for i := range 20 {
				r.Nodes = append(r.Nodes, run.Node{Name: fmt.Sprint("n", i)})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := f.open(t, WithLimits(store.Limits{MaxNodes: 10}))
			r := NewRun("r1", "p", "a")
			tt.edit(&r)
			_, _, err := s.CreateRun(context.Background(), r)
			if !errors.Is(err, store.ErrInvalidArgument) {
				t.Fatalf("err = %v; want ErrInvalidArgument", err)
			}
			runs, _, _ := s.ListRuns(context.Background(), store.ListFilter{}, 0, "")
			if len(runs) != 0 {
				t.Errorf("a refused run was stored: %+v", runs)
			}
		})
	}
}

func testGetRun_UnknownRunIsNotFound(t *testing.T, f Factory) {
	s, _ := f.open(t)
	if _, err := s.GetRun(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v; want ErrNotFound", err)
	}
	if _, err := s.RunByRequestID(context.Background(), "", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RunByRequestID err = %v; want ErrNotFound", err)
	}
}

func testRunByRequestID_FindsTheRun(t *testing.T, f Factory) {
	s, _ := f.open(t)
	r := NewRun("r1", "p", "a")
	r.RequestID = "req"
	Create(t, s, r)
	got, err := s.RunByRequestID(context.Background(), "", "req")
	if err != nil || got.ID != "r1" || len(got.Nodes) != 1 {
		t.Errorf("RunByRequestID = %+v, %v", got, err)
	}
}

// listAll pages through ListRuns and returns the ids in order.
func listAll(t *testing.T, s store.Store, f store.ListFilter, pageSize int) (ids []string, pages int) {
	t.Helper()
	token := ""
	for {
		runs, next, err := s.ListRuns(context.Background(), f, pageSize, token)
		if err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
		pages++
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if next == "" {
			return ids, pages
		}
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		token = next
	}
}

func testListRuns_PagesNewestFirst(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	for i := range 7 {
		Create(t, s, NewRun(fmt.Sprintf("r%d", i), "p", "a"))
	}
	ids, pages := listAll(t, s, store.ListFilter{}, 3)
	if want := []string{"r6", "r5", "r4", "r3", "r2", "r1", "r0"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v; want %v", ids, want)
	}
	if pages != 3 {
		t.Errorf("%d pages; want 3", pages)
	}
	runs, _, err := s.ListRuns(context.Background(), store.ListFilter{}, 3, "")
	if err != nil || len(runs[0].Nodes) != 1 {
		t.Errorf("listed runs carry no nodes: %+v, %v", runs, err)
	}
}

func testListRuns_OrdersRunsCreatedAtTheSameTimeByID(t *testing.T, f Factory) {
	same := newClock().Now()
	s, _ := f.open(t, WithClock(func() time.Time { return same }))
	for _, id := range []string{"b", "c", "a"} {
		Create(t, s, NewRun(id, "p", "n"))
	}
	if ids, _ := listAll(t, s, store.ListFilter{}, 1); !slices.Equal(ids, []string{"c", "b", "a"}) {
		t.Errorf("ids = %v; want c, b, a", ids)
	}
}

func testListRuns_RunsCreatedWhilePagingDoNotShiftPages(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	for i := range 4 {
		Create(t, s, NewRun(fmt.Sprintf("r%d", i), "p", "a"))
	}
	first, next, err := s.ListRuns(context.Background(), store.ListFilter{}, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	Create(t, s, NewRun("r9", "p", "a"))
	second, _, err := s.ListRuns(context.Background(), store.ListFilter{}, 2, next)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{first[0].ID, first[1].ID, second[0].ID, second[1].ID}
	if !slices.Equal(got, []string{"r3", "r2", "r1", "r0"}) {
		t.Errorf("pages = %v", got)
	}
}

func testListRuns_FiltersByPipelineAndStates(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	for i := range 6 {
		pipeline := "sales"
		if i%2 == 1 {
			pipeline = "hr"
		}
		id := fmt.Sprintf("r%d", i)
		Create(t, s, NewRun(id, pipeline, "a"))
		if i >= 3 {
			AppendOK(t, s, id, RunState(run.Running, ""))
		}
	}
	tests := []struct {
		name   string
		filter store.ListFilter
		want   []string
	}{
		{"pipeline", store.ListFilter{Pipeline: "sales"}, []string{"r4", "r2", "r0"}},
		{"state", store.ListFilter{States: []run.State{run.Running}}, []string{"r5", "r4", "r3"}},
		{"several states", store.ListFilter{States: []run.State{run.Running, run.Pending}}, []string{"r5", "r4", "r3", "r2", "r1", "r0"}},
		{"both", store.ListFilter{Pipeline: "hr", States: []run.State{run.Pending}}, []string{"r1"}},
		{"nothing matches", store.ListFilter{Pipeline: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ids, _ := listAll(t, s, tt.filter, 1); !slices.Equal(ids, tt.want) {
				t.Errorf("ids = %v; want %v", ids, tt.want)
			}
		})
	}
}

func testListRuns_RefusesATokenForOtherFiltersOrNotMadeByIt(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	for i := range 3 {
		Create(t, s, NewRun(fmt.Sprintf("r%d", i), "sales", "a"))
	}
	lf := store.ListFilter{Pipeline: "sales", States: []run.State{run.Pending, run.Running}}
	_, token, err := s.ListRuns(context.Background(), lf, 1, "")
	if err != nil || token == "" {
		t.Fatalf("ListRuns = %q, %v", token, err)
	}
	// The same filter with its states in another order is the same filter.
	same := store.ListFilter{Pipeline: "sales", States: []run.State{run.Running, run.Pending, run.Running}}
	if _, _, err := s.ListRuns(context.Background(), same, 1, token); err != nil {
		t.Errorf("token refused for the same filter: %v", err)
	}
	for name, tt := range map[string]struct {
		f     store.ListFilter
		token string
	}{
		"other pipeline":       {store.ListFilter{Pipeline: "hr", States: lf.States}, token},
		"other states":         {store.ListFilter{Pipeline: "sales"}, token},
		"garbage":              {lf, "not-a-token!"},
		"valid base64 of junk": {lf, "eyJ2Ijo5fQ"},
		"too long":             {lf, strings.Repeat("A", 5000)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.ListRuns(context.Background(), tt.f, 1, tt.token); !errors.Is(err, store.ErrBadPageToken) {
				t.Errorf("err = %v; want ErrBadPageToken", err)
			}
		})
	}
}

func testListRuns_PageSizeDefaultsTo50AndRefusesNegative(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	for i := range 55 {
		Create(t, s, NewRun(fmt.Sprintf("r%02d", i), "p", "a"))
	}
	runs, next, err := s.ListRuns(context.Background(), store.ListFilter{}, 0, "")
	if err != nil || len(runs) != 50 || next == "" {
		t.Errorf("default page = %d runs, next %q, %v; want 50 and a token", len(runs), next, err)
	}
	runs, next, err = s.ListRuns(context.Background(), store.ListFilter{}, 5000, "")
	if err != nil || len(runs) != 55 || next != "" {
		t.Errorf("huge page = %d runs, next %q, %v; want all 55 and no token", len(runs), next, err)
	}
	if _, _, err := s.ListRuns(context.Background(), store.ListFilter{}, -1, ""); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("negative page size: err = %v", err)
	}
	if _, _, err := s.ListRuns(context.Background(), store.ListFilter{States: []run.State{"BOGUS"}}, 0, ""); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("unknown state: err = %v", err)
	}
}
