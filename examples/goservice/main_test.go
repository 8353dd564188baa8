package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/client"
	"github.com/tauro-exec/tauro-exec/internal/execdtest"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

func TestMain(m *testing.M) { os.Exit(sparktest.Main(m)) }

type sse struct {
	id    int64
	event string
	data  eventView
}

// readEvents reads a server-sent event stream to its end.
func readEvents(t *testing.T, resp *http.Response) []sse {
	t.Helper()
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	var out []sse
	var cur sse
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		field, value, _ := strings.Cut(sc.Text(), ": ")
		switch field {
		case "id":
			cur.id, _ = strconv.ParseInt(value, 10, 64)
		case "event":
			cur.event = value
		case "data":
			if cur.event == "error" {
				t.Fatalf("the stream ended on an error: %s", value)
			}
			if err := json.Unmarshal([]byte(value), &cur.data); err != nil {
				t.Fatalf("data %q: %v", value, err)
			}
		case "":
			out, cur = append(out, cur), sse{}
		}
	}
	return out
}

func TestGoService_StartsARunAndStreamsItsEventsAsServerSentEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", nil)
	c, err := client.Dial(ctx, d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	srv := httptest.NewServer(newHandler(c))
	defer srv.Close()

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/pipelines/quick/runs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	location := resp.Header.Get("Location")
	evs := readEvents(t, resp)
	for i, ev := range evs {
		if ev.id != int64(i+1) {
			t.Fatalf("event %d has id %d, want %d", i, ev.id, i+1)
		}
	}
	last := evs[len(evs)-1]
	if last.event != "run" || last.data.State != "SUCCEEDED" {
		t.Fatalf("the stream ended on %+v, want the run SUCCEEDED", last)
	}

	// A browser reconnecting with Last-Event-ID gets only what followed.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+location, nil)
	req.Header.Set("Last-Event-ID", "3")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rest := readEvents(t, resp)
	if len(rest) != len(evs)-3 || len(rest) == 0 || rest[0].id != 4 {
		t.Errorf("after Last-Event-ID 3: %+v, want the %d events from id 4", rest, len(evs)-3)
	}

	resp, err = http.Post(srv.URL+"/pipelines/broken/runs", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("starting the broken pipeline: %s, want 400 Bad Request", resp.Status)
	}
}
