package backend

import (
	"context"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// SetProfile makes every node attempt report where its time went, as
// metrics: execd.phase.<phase>_ms for each phase it went through (inputs:
// its input views; worker: the Python call; handback: taking the worker's
// result in; plan: a SQL node's views; write: its outputs; cleanup:
// releasing what its dependencies cached), and execd.calls.<Method> for
// the Spark Connect requests it made (execd.early.<Method> for those its
// early call made, which are among them). For benchmarks and diagnosis
// (`execd serve --profile-nodes`); off, it costs nothing.
func (b *Backend) SetProfile(on bool) { b.profile = on }

// profile times one node attempt's phases.
type profile struct {
	calls *sparkconnect.Calls
	last  time.Time
	order []string
	ms    map[string]float64
	// early are the requests the attempt's early call made, by method.
	early map[string]int
}

type profileKey struct{}

func startProfile(ctx context.Context) (context.Context, *profile) {
	ctx, calls := sparkconnect.CountCalls(ctx)
	p := &profile{calls: calls, last: time.Now(), ms: map[string]float64{}}
	return context.WithValue(ctx, profileKey{}, p), p
}

// phase ends the phase under way in ctx's profile, if there is one, and
// names it.
func phase(ctx context.Context, name string) {
	p, _ := ctx.Value(profileKey{}).(*profile)
	if p == nil {
		return
	}
	now := time.Now()
	if _, ok := p.ms[name]; !ok {
		p.order = append(p.order, name)
	}
	p.ms[name] += float64(now.Sub(p.last).Microseconds()) / 1000
	p.last = now
}

// countEarly adds the requests c counted, made for the attempt under way
// before it started (by its early call), to ctx's profile, if there is
// one; they are also reported apart, as execd.early.<Method>.
func countEarly(ctx context.Context, c *sparkconnect.Calls) {
	if p, _ := ctx.Value(profileKey{}).(*profile); p != nil && c != nil {
		p.calls.Add(c)
		p.early = c.Counts()
	}
}

func (p *profile) report(emit func(run.Event)) {
	for _, name := range p.order {
		emit(run.Event{Kind: run.NodeMetric, MetricName: "execd.phase." + name + "_ms", MetricValue: p.ms[name]})
	}
	total := 0
	for method, n := range p.calls.Counts() {
		emit(run.Event{Kind: run.NodeMetric, MetricName: "execd.calls." + method, MetricValue: float64(n)})
		total += n
	}
	emit(run.Event{Kind: run.NodeMetric, MetricName: "execd.calls", MetricValue: float64(total)})
	for method, n := range p.early {
		emit(run.Event{Kind: run.NodeMetric, MetricName: "execd.early." + method, MetricValue: float64(n)})
	}
}
