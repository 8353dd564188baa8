package pyworker

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"time"
)

// readControl follows the worker's control lines; the pipe must be read to
// its end so that the worker never blocks writing to it.
func (w *worker) readControl(r io.ReadCloser, ready chan<- struct{}) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ready" && !signalled:
			signalled = true
			close(ready)
		case strings.HasPrefix(line, "session "):
			var sess SparkSession
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "session ")), &sess); err == nil && sess.SessionID != "" {
				w.mu.Lock()
				w.session = &sess
				w.mu.Unlock()
			}
		case strings.HasPrefix(line, "done "):
			w.mu.Lock()
			w.lastDone = strings.TrimPrefix(line, "done ")
			close(w.doneSig)
			w.doneSig = make(chan struct{})
			w.mu.Unlock()
		}
	}
}

// waitDone waits until the worker reports call's code ended. Calls run one
// after another in a worker, so the last one reported is the one to wait for.
func (w *worker) waitDone(call string, grace time.Duration) bool {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for {
		w.mu.Lock()
		done, sig := w.lastDone == call, w.doneSig
		w.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-sig:
		case <-w.exited:
			return false
		case <-timer.C:
			return false
		}
	}
}
