package connect

import (
	"context"
	"strings"
	"sync"
)

// Calls counts the Spark Connect requests made on behalf of one context,
// by method (ExecutePlan, AnalyzePlan, Config, ...): what a node costs in
// round trips, whichever client (this package or spark-connect-go) sent
// them.
type Calls struct {
	mu sync.Mutex
	n  map[string]int
}

type callsKey struct{}

// CountCalls returns ctx with a fresh count that the session's requests
// made under it add to.
func CountCalls(ctx context.Context) (context.Context, *Calls) {
	c := &Calls{n: map[string]int{}}
	return context.WithValue(ctx, callsKey{}, c), c
}

// Counts returns the requests so far by method name.
func (c *Calls) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// Total is every request so far.
func (c *Calls) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, v := range c.n {
		t += v
	}
	return t
}

// Add counts other's requests too.
func (c *Calls) Add(other *Calls) {
	counts := other.Counts()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range counts {
		c.n[k] += v
	}
}

// countCall adds method (a full gRPC method name) to ctx's count, if any.
func countCall(ctx context.Context, method string) {
	c, _ := ctx.Value(callsKey{}).(*Calls)
	if c == nil {
		return
	}
	name := method[strings.LastIndexByte(method, '/')+1:]
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
}
