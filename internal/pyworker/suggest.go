package pyworker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/contract"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
)

var _ experiment.Suggester = (*Pool)(nil)

// Suggest implements experiment.Suggester: a live worker's optimiser
// proposes the trial. Like CheckFunctions it does not take the worker from
// the pool; a proposal is a moment of CPU beside a node.
func (p *Pool) Suggest(ctx context.Context, prop experiment.Proposal) (map[string]any, error) {
	req, err := suggestRequest(prop)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		w, err := p.anyLive(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := w.client.Suggest(ctx, req)
		if err == nil {
			return decodeParams(resp.GetParamsJson(), prop.Space)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
		select { // a worker that just died is being replaced
		case <-w.exited:
		case <-time.After(time.Second):
		}
	}
	return nil, fmt.Errorf("python workers cannot propose a trial: %w", lastErr)
}

func suggestRequest(prop experiment.Proposal) (*execv1.SuggestRequest, error) {
	req := &execv1.SuggestRequest{
		Number:  int32(prop.Number),
		Seed:    prop.Seed,
		NTrials: int32(prop.NTrials),
	}
	if prop.Direction == experiment.Maximize {
		req.Direction = execv1.Direction_DIRECTION_MAXIMIZE
	} else {
		req.Direction = execv1.Direction_DIRECTION_MINIMIZE
	}
	if prop.Sampler == experiment.Random {
		req.Sampler = execv1.Sampler_SAMPLER_RANDOM
	} else {
		req.Sampler = execv1.Sampler_SAMPLER_TPE
	}
	for _, d := range prop.Space {
		pd, err := contract.SearchDimension(d)
		if err != nil {
			return nil, err
		}
		req.Space = append(req.Space, pd)
	}
	for _, t := range prop.Trials {
		params, err := json.Marshal(t.Params)
		if err != nil {
			return nil, fmt.Errorf("a trial's parameters cannot be passed to Python: %w", err)
		}
		o := &execv1.TrialObservation{ParamsJson: string(params), Value: t.Value}
		switch t.State {
		case experiment.TrialSucceeded:
			o.State = execv1.TrialState_TRIAL_STATE_SUCCEEDED
		case experiment.TrialFailed:
			o.State = execv1.TrialState_TRIAL_STATE_FAILED
		case experiment.TrialRunning:
			o.State = execv1.TrialState_TRIAL_STATE_RUNNING
		default:
			o.State = execv1.TrialState_TRIAL_STATE_CANCELLED
		}
		req.Trials = append(req.Trials, o)
	}
	return req, nil
}

// decodeParams reads the worker's proposal, giving Integer dimensions
// whole numbers (10, not 10.0) and refusing what is not in the space.
func decodeParams(text string, space []experiment.Dimension) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("the worker's proposal is not a JSON object: %w", err)
	}
	out := make(map[string]any, len(space))
	for _, d := range space {
		v, ok := raw[d.Name]
		if !ok {
			return nil, fmt.Errorf("the worker's proposal has no value for %q", d.Name)
		}
		n, isNum := v.(json.Number)
		switch {
		case d.Kind == experiment.Integer && isNum:
			f, err := n.Float64()
			if err != nil || f != math.Trunc(f) {
				return nil, fmt.Errorf("the worker proposed %v for Integer %q", v, d.Name)
			}
			out[d.Name] = int64(f)
		case isNum:
			if i, err := n.Int64(); err == nil && d.Kind == experiment.Categorical {
				out[d.Name] = i
				continue
			}
			f, err := n.Float64()
			if err != nil {
				return nil, fmt.Errorf("the worker proposed %v for %q", v, d.Name)
			}
			out[d.Name] = f
		default:
			out[d.Name] = v
		}
	}
	return out, nil
}
