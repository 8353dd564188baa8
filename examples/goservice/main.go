// Command goservice is an example of a Go service that calls execd through
// the client package: an HTTP endpoint that starts a run and streams its
// events to the browser as server-sent events.
//
//	go run ./examples/goservice --execd 127.0.0.1:50051 --listen 127.0.0.1:8080
//	curl -N -X POST http://127.0.0.1:8080/pipelines/daily_sales/runs
//	curl -N -H 'Last-Event-ID: 3' http://127.0.0.1:8080/runs/RUN_ID/events
//
// A browser's EventSource that loses the connection reconnects with the
// last id it saw; the client's Watch takes it up from there, so no event
// is sent twice or skipped.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/client"
)

func main() {
	target := flag.String("execd", "127.0.0.1:50051", "execd's address (token: $TAURO_EXEC_TOKEN)")
	listen := flag.String("listen", "127.0.0.1:8080", "where to serve HTTP")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := client.Dial(dialCtx, *target, client.WithUserAgent("goservice-example"))
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	srv := &http.Server{Addr: *listen, Handler: newHandler(c), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	log.Printf("serving on http://%s", *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func newHandler(c *client.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pipelines/{pipeline}/runs", func(w http.ResponseWriter, r *http.Request) {
		run, err := c.Execute(r.Context(), r.PathValue("pipeline"), client.ExecuteOptions{
			StartDate: r.URL.Query().Get("start_date"), EndDate: r.URL.Query().Get("end_date"),
		})
		if err != nil {
			httpError(w, err)
			return
		}
		w.Header().Set("Location", "/runs/"+run.ID()+"/events")
		stream(w, r, run, 0)
	})
	mux.HandleFunc("GET /runs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
		stream(w, r, c.Run(r.PathValue("id")), after)
	})
	return mux
}

// httpError answers with the status that fits the client's typed error.
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, client.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, client.ErrInvalidArgument):
		code = http.StatusBadRequest
	case errors.Is(err, client.ErrPermissionDenied), errors.Is(err, client.ErrUnauthenticated):
		code = http.StatusForbidden
	case errors.Is(err, client.ErrFailedPrecondition):
		code = http.StatusConflict
	case errors.Is(err, client.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}

// stream sends the run's events after sequence after as server-sent
// events, each with its sequence as id, until the run has ended.
func stream(w http.ResponseWriter, r *http.Request, run *client.Run, after int64) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	for ev, err := range run.WatchAfter(r.Context(), after) {
		if err != nil {
			if r.Context().Err() == nil { // not the browser leaving
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", strings.ReplaceAll(err.Error(), "\n", " "))
			}
			return
		}
		data, _ := json.Marshal(view(ev))
		fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Sequence, kind(ev.Change), data)
		if rc.Flush() != nil {
			return
		}
	}
}

// eventView is an event as JSON: enums by name, only what the kind has.
type eventView struct {
	Run     string    `json:"run"`
	Time    time.Time `json:"time"`
	Node    string    `json:"node,omitempty"`
	State   string    `json:"state,omitempty"`
	Text    string    `json:"text,omitempty"`
	Metric  string    `json:"metric,omitempty"`
	Value   float64   `json:"value,omitempty"`
	Attempt int32     `json:"attempt,omitempty"`
}

func view(ev client.Event) eventView {
	v := eventView{Run: ev.RunID, Time: ev.Time}
	switch c := ev.Change.(type) {
	case *client.RunStateChanged:
		v.State, v.Text = strings.TrimPrefix(c.State.String(), "RUN_STATE_"), c.Message
	case *client.NodeStateChanged:
		v.Node, v.State, v.Attempt = c.Node, strings.TrimPrefix(c.State.String(), "NODE_STATE_"), c.Attempt
		if c.Error != nil {
			v.Text = c.Error.Type + ": " + c.Error.Message
		}
	case *client.NodeMessage:
		v.Node, v.Attempt, v.Text = c.Node, c.Attempt, c.Text
	case *client.NodeMetric:
		v.Node, v.Attempt, v.Metric, v.Value = c.Node, c.Attempt, c.Name, c.Value
	case *client.NodeProgress:
		v.Node, v.Attempt, v.Metric, v.Value = c.Node, c.Attempt, "input_rows", float64(c.InputRows)
	}
	return v
}

func kind(c client.Change) string {
	switch c.(type) {
	case *client.RunStateChanged:
		return "run"
	case *client.NodeStateChanged:
		return "node"
	case *client.NodeMessage:
		return "message"
	case *client.NodeMetric:
		return "metric"
	case *client.NodeProgress:
		return "progress"
	}
	return "unknown"
}
