package mlflow

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// MLflow's limits on one runs/log-batch request (its REST API reference,
// and mlflow/utils/validation.py in 3.17), and on the lengths of what a
// run logs, counted in characters.
const (
	MaxMetricsPerBatch  = 1000
	MaxParamsPerBatch   = 100
	MaxTagsPerBatch     = 100
	MaxEntitiesPerBatch = 1000
	MaxBatchBytes       = 1_000_000

	MaxKeyLength        = 250
	MaxParamValueLength = 6000
	MaxTagValueLength   = 8000
)

// envelopeBytes is room in a request for what is not an entity: the run id
// and the JSON around the lists.
const envelopeBytes = 1000

// Batch is what LogBatch logs to a run.
type Batch struct {
	Metrics []Metric
	Params  []Param
	Tags    []Tag
}

func (b Batch) len() int { return len(b.Metrics) + len(b.Params) + len(b.Tags) }

// LogBatch logs b to a run in as few requests as MLflow's limits allow
// (Split's parts, in order). It first checks every key and value against
// MLflow's length limits and sends nothing if one is over.
//
// When a part fails, the parts before it are logged. A caller that must
// log each metric value once sends Split's parts one LogBatch each and
// records which went; MLflow's SQL store also drops a metric value
// identical to one it holds (key, value, timestamp and step), so a part
// sent again with the same timestamps adds nothing there.
func (c *Client) LogBatch(ctx context.Context, runID string, b Batch) error {
	if err := b.check(); err != nil {
		return &Error{Call: "runs/log-batch", Code: CodeInvalidParameterValue, Message: err.Error()}
	}
	for _, part := range Split(b) {
		req := struct {
			RunID   string   `json:"run_id"`
			Metrics []Metric `json:"metrics,omitempty"`
			Params  []Param  `json:"params,omitempty"`
			Tags    []Tag    `json:"tags,omitempty"`
		}{runID, part.Metrics, part.Params, part.Tags}
		if err := c.post(ctx, "runs/log-batch", req, nil); err != nil {
			return err
		}
	}
	return nil
}

// check refuses a key or a value MLflow would refuse or cut short.
func (b Batch) check() error {
	key := func(kind string, i int, k string) error {
		if k == "" {
			return fmt.Errorf("%s %d has no key", kind, i)
		}
		if n := utf8.RuneCountInString(k); n > MaxKeyLength {
			return fmt.Errorf("%s key %.40q… is %d characters long, over MLflow's %d", kind, k, n, MaxKeyLength)
		}
		return nil
	}
	for i, m := range b.Metrics {
		if err := key("metric", i, m.Key); err != nil {
			return err
		}
	}
	for i, p := range b.Params {
		if err := key("param", i, p.Key); err != nil {
			return err
		}
		if n := utf8.RuneCountInString(p.Value); n > MaxParamValueLength {
			return fmt.Errorf("param %q: its value is %d characters long, over MLflow's %d", p.Key, n, MaxParamValueLength)
		}
	}
	for i, t := range b.Tags {
		if err := key("tag", i, t.Key); err != nil {
			return err
		}
		if n := utf8.RuneCountInString(t.Value); n > MaxTagValueLength {
			return fmt.Errorf("tag %q: its value is %d characters long, over MLflow's %d", t.Key, n, MaxTagValueLength)
		}
	}
	return nil
}

// Split cuts b into parts within MLflow's limits on one request: at most
// MaxParamsPerBatch params, MaxTagsPerBatch tags and MaxMetricsPerBatch
// metrics, MaxEntitiesPerBatch in all and MaxBatchBytes of JSON. Each part
// takes params and tags first and fills up with metrics, as MLflow's own
// client does; each kind keeps its order across the parts. An empty b has
// no parts.
func Split(b Batch) []Batch {
	var parts []Batch
	for b.len() > 0 {
		var part Batch
		room := MaxBatchBytes - envelopeBytes
		// fits says whether an entity of size n fits the part, which takes
		// at least one entity whatever its size, so that Split ends.
		fits := func(n int) bool { return part.len() == 0 || n+1 <= room }
		take := func(n int) { room -= n + 1 } // the entity and its comma
		for len(b.Params) > 0 && len(part.Params) < MaxParamsPerBatch {
			n := encodedLen(b.Params[0])
			if !fits(n) {
				break
			}
			take(n)
			part.Params, b.Params = append(part.Params, b.Params[0]), b.Params[1:]
		}
		for len(b.Tags) > 0 && len(part.Tags) < MaxTagsPerBatch && part.len() < MaxEntitiesPerBatch {
			n := encodedLen(b.Tags[0])
			if !fits(n) {
				break
			}
			take(n)
			part.Tags, b.Tags = append(part.Tags, b.Tags[0]), b.Tags[1:]
		}
		for len(b.Metrics) > 0 && len(part.Metrics) < MaxMetricsPerBatch && part.len() < MaxEntitiesPerBatch {
			n := encodedLen(b.Metrics[0])
			if !fits(n) {
				break
			}
			take(n)
			part.Metrics, b.Metrics = append(part.Metrics, b.Metrics[0]), b.Metrics[1:]
		}
		parts = append(parts, part)
	}
	return parts
}

// encodedLen is the length of v's JSON; params, tags and metrics always
// encode.
func encodedLen(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}
