package pyworker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// logLines logs what a worker prints, a line at a time, and keeps the last
// lines for the message of a worker that dies.
type logLines struct {
	log  *slog.Logger
	tail *tail

	mu  sync.Mutex
	buf []byte
}

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a very long line without a newline
		l.line(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(b), nil
}

func (l *logLines) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

func (l *logLines) line(s string) {
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return
	}
	l.tail.add(s)
	l.log.Info("python worker: " + s)
}

// tail keeps the last n lines.
type tail struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
