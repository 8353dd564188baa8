package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

const ttl = 10 * time.Second

func heartbeat(t testing.TB, s store.Store, name string) (lapsed bool) {
	t.Helper()
	lapsed, err := s.Heartbeat(context.Background(), name, name+":50051", ttl)
	if err != nil {
		t.Fatalf("Heartbeat(%s): %v", name, err)
	}
	return lapsed
}

func testReplicas_ARunPassesToAnotherReplicaOnlyWhenItsOwnersHeartbeatsLapse(t *testing.T, f Factory) {
	c := newClock()
	s, _ := f.open(t, WithClock(c.Now))
	ctx := context.Background()
	heartbeat(t, s, "a")
	heartbeat(t, s, "b")
	r := NewRun("r", "p", "n")
	r.Owner = "a"
	if got := Create(t, s, r); got.Owner != "a" || got.Epoch != 1 {
		t.Fatalf("created run: owner %q epoch %d; want a's first lease", got.Owner, got.Epoch)
	}
	la := store.Lease{RunID: "r", Owner: "a", Epoch: 1}
	if _, err := s.AppendAs(ctx, la, RunState(run.Running, "")); err != nil {
		t.Fatalf("the owner's write: %v", err)
	}
	if _, err := s.Claim(ctx, "r", "b"); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("b claiming a live replica's run: %v; want ErrLeaseHeld", err)
	}
	if orphans, err := s.Orphans(ctx); err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans with a alive = %v, %v", orphans, err)
	}

	c.advance(ttl + time.Second) // a stops beating; b goes on
	heartbeat(t, s, "b")
	if orphans, err := s.Orphans(ctx); err != nil || !slices.Equal(orphans, []string{"r"}) {
		t.Fatalf("Orphans after a lapsed = %v, %v; want r", orphans, err)
	}
	lb := Claim(t, s, "r", "b")
	if lb.Epoch != 2 {
		t.Fatalf("b's lease = %+v; want epoch 2", lb)
	}
	before := Get(t, s, "r").LastSequence
	// a comes back from a pause: everything it writes for r is refused.
	if _, err := s.AppendAs(ctx, la, NodeState("n", run.NodeRunning, 1)); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a's append after b claimed: %v; want ErrFenced", err)
	}
	if err := s.JournalPut(ctx, la, "session", []byte("x")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a's journal write after b claimed: %v; want ErrFenced", err)
	}
	if err := s.JournalClear(ctx, la); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a's journal clear after b claimed: %v; want ErrFenced", err)
	}
	if got := Get(t, s, "r"); got.LastSequence != before || got.Owner != "b" || got.Epoch != 2 {
		t.Errorf("after a's refused writes: last %d (want %d), owner %s epoch %d", got.LastSequence, before, got.Owner, got.Epoch)
	}
	if lapsed := heartbeat(t, s, "a"); !lapsed {
		t.Error("a's heartbeat after its lease expired does not say it lapsed")
	}
	if _, err := s.AppendAs(ctx, lb, NodeState("n", run.NodeRunning, 1)); err != nil {
		t.Errorf("the new owner's write: %v", err)
	}
	hist, err := s.LeaseHistory(ctx, "r")
	if err != nil || len(hist) != 2 || hist[0].Owner != "a" || hist[0].Epoch != 1 || hist[1].Owner != "b" || hist[1].Epoch != 2 || !hist[1].Acquired.After(hist[0].Acquired) {
		t.Errorf("lease history = %+v, %v; want a then b", hist, err)
	}
}

func testReplicas_AReplicaClaimsItsOwnRunsAgainAndNobodyClaimsAnEndedRun(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	ctx := context.Background()
	heartbeat(t, s, "a")
	Create(t, s, NewRun("r", "p", "n"))
	if orphans, _ := s.Orphans(ctx); !slices.Equal(orphans, []string{"r"}) {
		t.Errorf("a run nobody owns is an orphan: %v", orphans)
	}
	l1 := Claim(t, s, "r", "a")
	l2 := Claim(t, s, "r", "a") // a restarted a, under the same name
	if l1.Epoch != 1 || l2.Epoch != 2 {
		t.Errorf("epochs %d, %d; want 1, 2", l1.Epoch, l2.Epoch)
	}
	if _, err := s.AppendAs(ctx, l1, RunState(run.Running, "")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("the earlier incarnation's write: %v; want ErrFenced", err)
	}
	AppendOK(t, s, "r", RunState(run.Cancelled, "x"))
	if _, err := s.Claim(ctx, "r", "a"); !errors.Is(err, store.ErrRunEnded) {
		t.Errorf("claiming an ended run: %v; want ErrRunEnded", err)
	}
	if orphans, _ := s.Orphans(ctx); len(orphans) != 0 {
		t.Errorf("an ended run is no orphan: %v", orphans)
	}
	// A repair by another replica makes it the owner in the same step.
	heartbeat(t, s, "b")
	r, _, err := s.PrepareRepair(ctx, "r", []string{"n"}, "", "b")
	if err != nil || r.Owner != "b" || r.Epoch != 3 {
		t.Fatalf("PrepareRepair by b = owner %q epoch %d, %v; want b under epoch 3", r.Owner, r.Epoch, err)
	}
	if _, err := s.AppendAs(ctx, store.Lease{RunID: "r", Owner: "b", Epoch: 3}, RunState(run.Running, "")); err != nil {
		t.Errorf("the repairing replica's write: %v", err)
	}
}

func testReplicas_ListShowsHeartbeatsAndTheRunsEachOwns(t *testing.T, f Factory) {
	c := newClock()
	s, _ := f.open(t, WithClock(c.Now))
	ctx := context.Background()
	heartbeat(t, s, "b")
	heartbeat(t, s, "a")
	for _, id := range []string{"r1", "r2", "r3"} {
		r := NewRun(id, "p", "n")
		r.Owner = "a"
		if id == "r2" {
			r.Owner = "b"
		}
		Create(t, s, r)
	}
	AppendOK(t, s, "r3", RunState(run.Cancelled, "gone"))
	list, err := s.ListReplicas(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListReplicas = %+v, %v", list, err)
	}
	a, b := list[0], list[1]
	if a.Name != "a" || a.Address != "a:50051" || !slices.Equal(a.Runs, []string{"r1"}) || !a.Expires.Equal(a.Heartbeat.Add(ttl)) || a.Started.IsZero() {
		t.Errorf("a = %+v; want its heartbeat and r1 (r3 ended)", a)
	}
	if b.Name != "b" || !slices.Equal(b.Runs, []string{"r2"}) {
		t.Errorf("b = %+v", b)
	}
	if _, err := s.Heartbeat(ctx, "", "x", ttl); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("a nameless heartbeat: %v", err)
	}
}

func testReplicas_ACancelAskedOfAnotherReplicaReachesTheOwnerOnce(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx := context.Background()
	r := NewRun("r", "p", "n")
	r.Owner = "b"
	Create(t, s, r)
	if err := s.RequestControl(ctx, "r", store.ControlStop, "enough"); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestControl(ctx, "r", store.ControlCancel, "really"); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestControl(ctx, "r", store.ControlStop, "softer"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TakeControlRequests(ctx, "a"); err != nil || len(got) != 0 {
		t.Errorf("a, which owns nothing, took %+v, %v", got, err)
	}
	got, err := s.TakeControlRequests(ctx, "b")
	if err != nil || len(got) != 1 || got[0] != (store.ControlRequest{RunID: "r", Kind: store.ControlCancel, Reason: "really"}) {
		t.Errorf("b took %+v, %v; want the cancel (a stop after it does not soften it)", got, err)
	}
	if got, _ := s.TakeControlRequests(ctx, "b"); len(got) != 0 {
		t.Errorf("taken twice: %+v", got)
	}
	AppendOK(t, s, "r", RunState(run.Cancelled, "really"))
	if err := s.RequestControl(ctx, "r", store.ControlCancel, "late"); !errors.Is(err, store.ErrRunEnded) {
		t.Errorf("a cancel of an ended run: %v; want ErrRunEnded", err)
	}
	if err := s.RequestControl(ctx, "nope", store.ControlCancel, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a cancel of no run: %v; want ErrNotFound", err)
	}
}

func testStartRun_AdmitsAgainstEveryRunExecutingAndWaitingOneDecisionAtATime(t *testing.T, f Factory) {
	s, key := f.open(t)
	ctx := context.Background()
	s2, err := f.reopen(ctx, key) // a second replica on the same database
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	admission := func(id string, priority int) store.Admission {
		return store.Admission{RunID: id, Pipeline: "p", Key: "k", MaxActive: 1, Writes: []string{"/out/" + id}, Priority: priority}
	}
	leases := map[string]store.Lease{}
	for i, id := range []string{"r1", "r2", "r3", "r4"} {
		r := NewRun(id, "p", "n")
		r.Owner = "a"
		Create(t, s, r)
		leases[id] = store.Lease{RunID: id, Owner: "a", Epoch: 1}
		if err := s.Queue(ctx, leases[id], admission(id, i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := Get(t, s, "r1"); got.State != run.Queued {
		t.Fatalf("a queued run is %s", got.State)
	}
	// At most one run of key k at a time.
	oneOfK := func(executing, _ []store.Admission) string {
		for _, x := range executing {
			if x.Key == "k" {
				return "run " + x.RunID + " of k is executing"
			}
		}
		return ""
	}
	// r1 and r2 race from two store instances: exactly one is admitted.
	type result struct {
		id, blocker string
		err         error
	}
	results := make(chan result, 2)
	for i, id := range []string{"r1", "r2"} {
		st := []store.Store{s, s2}[i]
		go func() {
			why, err := st.StartRun(ctx, leases[id], admission(id, i), oneOfK)
			results <- result{id, why, err}
		}()
	}
	started, blocked := "", ""
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("StartRun(%s): %v", r.id, r.err)
		}
		if r.blocker == "" {
			started = r.id
		} else {
			blocked = r.id
		}
	}
	if started == "" || blocked == "" {
		t.Fatalf("started %q, blocked %q; want one of r1, r2 each", started, blocked)
	}
	if got := Get(t, s, started); got.State != run.Running {
		t.Errorf("the admitted run is %s; want RUNNING", got.State)
	}
	if got := Get(t, s, blocked); got.State != run.Queued {
		t.Errorf("the blocked run is %s; want still QUEUED", got.State)
	}
	// decide sees the admitted run and the runs waiting, as queued.
	var executing, waiting []store.Admission
	if why, err := s.StartRun(ctx, leases["r3"], store.Admission{RunID: "r3", Key: "other"}, func(e, w []store.Admission) string {
		executing, waiting = e, w
		return ""
	}); err != nil || why != "" {
		t.Fatalf("StartRun(r3) = %q, %v", why, err)
	}
	if len(executing) != 1 || executing[0].RunID != started || executing[0].Key != "k" || executing[0].Pipeline != "p" ||
		!slices.Equal(executing[0].Writes, []string{"/out/" + started}) {
		t.Errorf("decide saw executing %+v; want the admitted run with its key and writes", executing)
	}
	if len(waiting) != 2 || waiting[0].RunID != blocked || waiting[1].RunID != "r4" || waiting[1].Priority != 3 || waiting[1].MaxActive != 1 || waiting[1].Created.IsZero() {
		t.Errorf("decide saw waiting %+v; want %s and r4 as they were queued, oldest first", waiting, blocked)
	}
	// A stale lease admits nothing.
	Claim(t, s, "r4", "a")
	if _, err := s.StartRun(ctx, leases["r4"], admission("r4", 3), func(_, _ []store.Admission) string { return "" }); !errors.Is(err, store.ErrFenced) {
		t.Errorf("StartRun under a stale lease: %v; want ErrFenced", err)
	}
	if err := s.Queue(ctx, leases["r4"], admission("r4", 3)); !errors.Is(err, store.ErrFenced) {
		t.Errorf("Queue under a stale lease: %v; want ErrFenced", err)
	}
}

func testReplicas_AnExperimentPassesToAnotherReplicaOnlyWhenItsDriversHeartbeatsLapse(t *testing.T, f Factory) {
	c := newClock()
	s, _ := f.open(t, WithClock(c.Now))
	ctx := context.Background()
	heartbeat(t, s, "a")
	heartbeat(t, s, "b")
	x := NewExperiment("x")
	x.Owner = "a"
	if got, _, err := s.CreateExperiment(ctx, x); err != nil || got.Owner != "a" {
		t.Fatalf("CreateExperiment = owner %q, %v", got.Owner, err)
	}
	if err := s.ClaimExperiment(ctx, "x", "b"); !errors.Is(err, store.ErrLeaseHeld) {
		t.Errorf("b claiming a live replica's experiment: %v; want ErrLeaseHeld", err)
	}
	if ids, err := s.OrphanExperiments(ctx); err != nil || len(ids) != 0 {
		t.Errorf("OrphanExperiments with a alive = %v, %v", ids, err)
	}
	c.advance(ttl + time.Second)
	heartbeat(t, s, "b")
	if ids, err := s.OrphanExperiments(ctx); err != nil || !slices.Equal(ids, []string{"x"}) {
		t.Errorf("OrphanExperiments after a lapsed = %v, %v; want x", ids, err)
	}
	if err := s.ClaimExperiment(ctx, "x", "b"); err != nil {
		t.Fatalf("b claiming a lapsed replica's experiment: %v", err)
	}
	if got, _ := s.GetExperiment(ctx, "x"); got.Owner != "b" {
		t.Errorf("the experiment's driver is %q; want b", got.Owner)
	}
	if _, err := s.AppendExperiment(ctx, "x", experiment.Event{Kind: experiment.StateChanged, State: experiment.Cancelled}); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimExperiment(ctx, "x", "b"); !errors.Is(err, store.ErrRunEnded) {
		t.Errorf("claiming an ended experiment: %v; want ErrRunEnded", err)
	}
}
