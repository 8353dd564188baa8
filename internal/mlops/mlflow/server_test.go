package mlflow

// Tests against a real tracking server (mlflowtest): the test run's, or
// one this test binary starts.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
)

func TestMain(m *testing.M) { os.Exit(mlflowtest.Main(m)) }

func serverClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{URI: mlflowtest.URI(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// unique is a name no other test, nor an earlier run on the same server,
// uses.
func unique(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.Name() + "-" + hex.EncodeToString(b[:])
}

func tagMap(tags []Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

func paramMap(params []Param) map[string]string {
	m := map[string]string{}
	for _, p := range params {
		m[p.Key] = p.Value
	}
	return m
}

func TestServer_GetOrCreateExperimentTwiceGivesOne(t *testing.T) {
	c, ctx := serverClient(t), context.Background()
	name := unique(t)
	first, err := c.GetOrCreateExperiment(ctx, name, "the first description")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.GetOrCreateExperiment(ctx, name, "the first description")
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == "" || again.ID != first.ID || again.Name != name {
		t.Fatalf("two calls gave experiments %q and %q named %q", first.ID, again.ID, again.Name)
	}
	if got := tagMap(again.Tags)[TagNote]; got != "the first description" {
		t.Errorf("description %q", got)
	}
	// A changed description is the experiment's new note.
	if _, err := c.GetOrCreateExperiment(ctx, name, "the second"); err != nil {
		t.Fatal(err)
	}
	read, err := c.experimentByName(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if read.ID != first.ID || tagMap(read.Tags)[TagNote] != "the second" {
		t.Errorf("after a new description: experiment %s with tags %v", read.ID, read.Tags)
	}
}

func TestServer_NestedRunsSearchedBack(t *testing.T) {
	c, ctx := serverClient(t), context.Background()
	exp, err := c.GetOrCreateExperiment(ctx, unique(t), "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UnixMilli()
	parent, err := c.CreateRun(ctx, RunSpec{ExperimentID: exp.ID, Name: "daily_sales 2025-01-01", User: "tester", StartTime: start,
		Tags: []Tag{{Key: "tauro.run_id", Value: "run-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if parent.Info.RunID == "" || parent.Info.Status != StatusRunning || parent.Info.StartTime != start || parent.Info.UserID != "tester" {
		t.Fatalf("created %+v", parent.Info)
	}
	if err := c.LogBatch(ctx, parent.Info.RunID, Batch{Params: []Param{{Key: "window", Value: "2025-01"}}}); err != nil {
		t.Fatal(err)
	}

	type child struct {
		name   string
		status RunStatus
		lr     string
		losses []float64
	}
	children := []child{
		{"train", StatusFinished, "0.1", []float64{0.9, 0.5, 0.25}},
		{"score", StatusFailed, "0.01", []float64{math.NaN(), 2}},
	}
	ids := map[string]string{}
	for _, ch := range children {
		r, err := c.CreateRun(ctx, RunSpec{ExperimentID: exp.ID, Name: ch.name, ParentRunID: parent.Info.RunID,
			Tags: []Tag{{Key: "tauro.node", Value: ch.name}}})
		if err != nil {
			t.Fatal(err)
		}
		ids[ch.name] = r.Info.RunID
		b := Batch{Params: []Param{{Key: "lr", Value: ch.lr}}, Tags: []Tag{{Key: "tauro.attempt", Value: "1"}}}
		for step, v := range ch.losses {
			b.Metrics = append(b.Metrics, Metric{Key: "loss", Value: v, Timestamp: start + int64(step), Step: int64(step)})
		}
		if err := c.LogBatch(ctx, r.Info.RunID, b); err != nil {
			t.Fatal(err)
		}
		if info, err := c.UpdateRun(ctx, r.Info.RunID, ch.status, start+1000); err != nil || info.Status != ch.status || info.EndTime != start+1000 {
			t.Fatalf("UpdateRun(%s): %+v, %v", ch.status, info, err)
		}
	}
	if _, err := c.UpdateRun(ctx, parent.Info.RunID, StatusFinished, 0); err != nil {
		t.Fatal(err)
	}

	found, err := c.SearchRuns(ctx, []string{exp.ID}, fmt.Sprintf("tags.%s = '%s'", TagParentRunID, parent.Info.RunID))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 {
		t.Fatalf("%d children found, want 2", len(found))
	}
	for _, ch := range children {
		i := slices.IndexFunc(found, func(r Run) bool { return r.Info.RunName == ch.name })
		if i < 0 {
			t.Errorf("no child %q among %d", ch.name, len(found))
			continue
		}
		r := found[i]
		if r.Info.RunID != ids[ch.name] || r.Info.Status != ch.status || r.Info.EndTime != start+1000 {
			t.Errorf("%s: %+v", ch.name, r.Info)
		}
		tags := tagMap(r.Data.Tags)
		if tags[TagParentRunID] != parent.Info.RunID || tags["tauro.node"] != ch.name || tags["tauro.attempt"] != "1" {
			t.Errorf("%s: tags %v", ch.name, tags)
		}
		if p := paramMap(r.Data.Params); len(p) != 1 || p["lr"] != ch.lr {
			t.Errorf("%s: params %v", ch.name, p)
		}
		last := len(ch.losses) - 1
		if len(r.Data.Metrics) != 1 || r.Data.Metrics[0].Value != ch.losses[last] || r.Data.Metrics[0].Step != int64(last) {
			t.Errorf("%s: latest metrics %+v, want loss %v at step %d", ch.name, r.Data.Metrics, ch.losses[last], last)
		}
		history, err := c.MetricHistory(ctx, r.Info.RunID, "loss")
		if err != nil {
			t.Fatal(err)
		}
		if len(history) != len(ch.losses) {
			t.Fatalf("%s: %d values of loss, want %d", ch.name, len(history), len(ch.losses))
		}
		for _, m := range history {
			want := ch.losses[m.Step]
			if (m.Value != want && !(math.IsNaN(want) && math.IsNaN(m.Value))) || m.Timestamp != start+m.Step {
				t.Errorf("%s: loss at step %d is %v at %d, want %v at %d", ch.name, m.Step, m.Value, m.Timestamp, want, start+m.Step)
			}
		}
	}

	p, err := c.GetRun(ctx, parent.Info.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Info.Status != StatusFinished || p.Info.EndTime < start || paramMap(p.Data.Params)["window"] != "2025-01" ||
		tagMap(p.Data.Tags)["tauro.run_id"] != "run-1" || tagMap(p.Data.Tags)[TagParentRunID] != "" {
		t.Errorf("parent: %+v", p)
	}
}

func TestServer_LargeBatchArrivesOnceInParts(t *testing.T) {
	c, ctx := serverClient(t), context.Background()
	exp, err := c.GetOrCreateExperiment(ctx, unique(t), "")
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, RunSpec{ExperimentID: exp.ID, Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	b := bigBatch()
	if err := c.LogBatch(ctx, run.Info.RunID, b); err != nil {
		t.Fatal(err)
	}

	got, err := c.GetRun(ctx, run.Info.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if params := paramMap(got.Data.Params); len(params) != len(b.Params) {
		t.Errorf("%d params arrived, want %d", len(params), len(b.Params))
	} else {
		for _, p := range b.Params {
			if params[p.Key] != p.Value {
				t.Errorf("param %s = %q, want %q", p.Key, params[p.Key], p.Value)
			}
		}
	}
	tags := tagMap(got.Data.Tags)
	for _, tg := range b.Tags {
		if tags[tg.Key] != tg.Value {
			t.Errorf("tag %s = %q, want %q", tg.Key, tags[tg.Key], tg.Value)
		}
	}
	if len(got.Data.Metrics) != 10 {
		t.Errorf("%d metric keys, want 10", len(got.Data.Metrics))
	}
	total := 0
	for k := range 10 {
		key := fmt.Sprintf("m%d", k)
		history, err := c.MetricHistory(ctx, run.Info.RunID, key)
		if err != nil {
			t.Fatal(err)
		}
		total += len(history)
		seen := map[int64]int{}
		for _, m := range history {
			seen[m.Step]++
			if m.Value != float64(k*1000)+float64(m.Step) {
				t.Errorf("%s at step %d is %v", key, m.Step, m.Value)
			}
		}
		for step := range int64(250) {
			if seen[step] != 1 {
				t.Errorf("%s at step %d arrived %d times", key, step, seen[step])
			}
		}
	}
	if total != len(b.Metrics) {
		t.Errorf("%d metric values arrived, want %d", total, len(b.Metrics))
	}
}

func TestServer_ModelVersionWithAlias(t *testing.T) {
	c, ctx := serverClient(t), context.Background()
	exp, err := c.GetOrCreateExperiment(ctx, unique(t), "")
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, RunSpec{ExperimentID: exp.ID, Name: "train"})
	if err != nil {
		t.Fatal(err)
	}
	name := unique(t)
	model, err := c.CreateRegisteredModel(ctx, name, "churn classifier", []Tag{{Key: "team", Value: "ml"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateRegisteredModel(ctx, name, "another description", nil)
	if err != nil {
		t.Fatalf("creating the model a second time: %v", err)
	}
	if model.Name != name || again.Name != name || again.Description != "churn classifier" || tagMap(again.Tags)["team"] != "ml" {
		t.Errorf("created %+v, then %+v", model, again)
	}

	source := run.Info.ArtifactURI + "/model"
	var versions []string
	for range 2 {
		v, err := c.CreateModelVersion(ctx, ModelVersionSpec{Name: name, Source: source, RunID: run.Info.RunID,
			Tags: []Tag{{Key: "tauro.node", Value: "train"}}})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v.Version)
	}
	if !slices.Equal(versions, []string{"1", "2"}) {
		t.Fatalf("versions %v, want 1 and 2", versions)
	}
	if err := c.SetRegisteredModelAlias(ctx, name, "champion", "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRegisteredModelAlias(ctx, name, "champion", "2"); err != nil {
		t.Fatal(err)
	}
	v2, err := c.GetModelVersion(ctx, name, "2")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Source != source || v2.RunID != run.Info.RunID || v2.Status != "READY" || tagMap(v2.Tags)["tauro.node"] != "train" ||
		!slices.Equal(v2.Aliases, []string{"champion"}) || v2.CreationTimestamp == 0 {
		t.Errorf("version 2: %+v", v2)
	}
	v1, err := c.GetModelVersion(ctx, name, "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v1.Aliases) != 0 {
		t.Errorf("version 1 kept aliases %v after champion moved to 2", v1.Aliases)
	}
	if _, err := c.GetModelVersion(ctx, name, "3"); !HasCode(err, CodeResourceDoesNotExist) || IsRetryable(err) {
		t.Errorf("a version that is not there: %v", err)
	}
}

// A tracking server that went away refuses connections: what a call meets
// then is the same whether it ever ran there, so a closed port stands in
// for it rather than a second server started to be stopped.
func TestServer_AServerThatIsGoneIsRetryableWithinTheTimeout(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + lis.Addr().String()
	lis.Close()
	const timeout = 3 * time.Second
	c, err := New(Config{URI: gone, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = c.CreateRun(context.Background(), RunSpec{ExperimentID: "0", Name: "after the stop"})
	if took := time.Since(began); took > timeout+time.Second {
		t.Errorf("the call took %s with a %s timeout", took, timeout)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || e.Err == nil || !e.Retryable() {
		t.Errorf("a server that is gone: %v, want a retryable *Error with no answer", err)
	}
}
