package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/contract"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

const experimentUsage = `Usage:
  execd experiment start [NAME] [flags]     start a declared experiment, or one described by flags
  execd experiment watch ID [--after N]     follow its trials (exit 1 if it does not succeed)
  execd experiment get ID                   show it, its trials and the best
  execd experiment list [--pipeline P]      list experiments, newest first
  execd experiment cancel ID [--reason T]   cancel every running trial and stop
`

func cmdExperiment(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, experimentUsage)
		return exitError{2}
	}
	switch args[0] {
	case "start":
		return cmdExperimentStart(ctx, args[1:])
	case "watch":
		c := newClientFlags("experiment watch", "ID [--after N]")
		after := c.fs.Int64("after", 0, "only events after this sequence")
		pos, cl, closeFn, err := c.connect(args[1:], 1)
		if err != nil {
			return err
		}
		defer closeFn()
		return followExperiment(ctx, cl, pos[0], *after, os.Stdout)
	case "get":
		c := newClientFlags("experiment get", "ID")
		pos, cl, closeFn, err := c.connect(args[1:], 1)
		if err != nil {
			return err
		}
		defer closeFn()
		resp, err := cl.GetExperiment(ctx, &execv1.GetExperimentRequest{ExperimentId: pos[0]})
		if err != nil {
			return describe(err)
		}
		printExperiment(os.Stdout, resp.GetExperiment())
		return nil
	case "list":
		c := newClientFlags("experiment list", "[--pipeline P]")
		pipeline := c.fs.String("pipeline", "", "only experiments of this pipeline")
		_, cl, closeFn, err := c.connect(args[1:], 0)
		if err != nil {
			return err
		}
		defer closeFn()
		resp, err := cl.ListExperiments(ctx, &execv1.ListExperimentsRequest{Project: *c.project, Pipeline: *pipeline})
		if err != nil {
			return describe(err)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EXPERIMENT\tNAME\tPIPELINE\tSTATE\tTRIALS\tBEST")
		for _, x := range resp.GetExperiments() {
			best := "-"
			if b := x.GetBest(); b != nil {
				best = fmt.Sprintf("%.6g (trial %d)", b.GetValue(), b.GetNumber())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", x.GetExperimentId(), x.GetName(), x.GetPipeline(),
				strings.TrimPrefix(x.GetState().String(), "EXPERIMENT_STATE_"), x.GetNTrials(), best)
		}
		return tw.Flush()
	case "cancel":
		c := newClientFlags("experiment cancel", "ID [--reason TEXT]")
		reason := c.fs.String("reason", "", "why, recorded with the experiment")
		pos, cl, closeFn, err := c.connect(args[1:], 1)
		if err != nil {
			return err
		}
		defer closeFn()
		resp, err := cl.CancelExperiment(ctx, &execv1.CancelExperimentRequest{ExperimentId: pos[0], Reason: *reason})
		if err != nil {
			return describe(err)
		}
		printExperiment(os.Stdout, resp.GetExperiment())
		return nil
	}
	fmt.Fprintf(os.Stderr, "execd experiment: unknown command %q\n\n%s", args[0], experimentUsage)
	return exitError{2}
}

// spaceFlag collects --space values, each a dimension in tauro's form.
type spaceFlag []string

func (s *spaceFlag) String() string     { return strings.Join(*s, "; ") }
func (s *spaceFlag) Set(v string) error { *s = append(*s, v); return nil }

func cmdExperimentStart(ctx context.Context, args []string) error {
	c := newClientFlags("experiment start", "[NAME] [--pipeline P --space 'Real(0, 1, name=\"x\")' --metric M] [flags]")
	fs := c.fs
	var space spaceFlag
	fs.Var(&space, "space", "a searched hyperparameter, repeatable: Real(low, high, prior='log-uniform', name='lr'), Integer(low, high, name='n'), Categorical(['a', 'b'], name='c')")
	pipeline := fs.String("pipeline", "", "the pipeline whose runs are the trials")
	env := fs.String("env", "", "environment (default: the daemon's)")
	sel := fs.String("select", "", "comma-separated node selection, as for run")
	metric := fs.String("metric", "", "the objective: a metric a node logs with ml_context[\"log_metric\"]")
	node := fs.String("node", "", "the node that logs the metric (default: the one that declares it)")
	maximize := fs.Bool("maximize", false, "maximise the metric (default: minimise)")
	trials := fs.Int("trials", 0, "trials in all (default: the declared experiment's, else 20)")
	parallel := fs.Int("parallel", 0, "trials at once (default: the declared experiment's, else 1)")
	seed := fs.Int64("seed", 0, "optimiser seed (default: the declared experiment's, else 0)")
	random := fs.Bool("random", false, "propose trials at random instead of by Bayesian optimisation (a baseline)")
	start := fs.String("start-date", "", "start date YYYY-MM-DD")
	end := fs.String("end-date", "", "end date YYYY-MM-DD")
	hp := fs.String("hyperparams", "", "fixed hyperparameters as a JSON object")
	requestID := fs.String("request-id", "", "makes the call idempotent")
	watch := fs.Bool("watch", false, "follow the trials until the experiment ends (exit 1 if it does not succeed)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		fs.Usage()
		return exitError{2}
	}
	req := &execv1.RunExperimentRequest{Project: *c.project, Pipeline: *pipeline, Env: *env, Select: splitList(*sel),
		NTrials: int32(*trials), MaxParallelTrials: int32(*parallel), StartDate: *start, EndDate: *end, RequestId: *requestID}
	if len(pos) == 1 {
		req.Experiment = pos[0]
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			req.Seed = seed
		}
	})
	if *random {
		req.Sampler = execv1.Sampler_SAMPLER_RANDOM
	}
	if *metric != "" || *node != "" || *maximize {
		req.Objective = &execv1.Objective{Metric: *metric, Node: *node}
		if *maximize {
			req.Objective.Direction = execv1.Direction_DIRECTION_MAXIMIZE
		}
	}
	var probs problem.List
	for i, s := range space {
		f := fmt.Sprintf("--space[%d]", i)
		before := len(probs)
		d := experiment.ParseDimension(s, "", f, &probs)
		if len(probs) > before {
			continue
		}
		pd, err := contract.SearchDimension(d)
		if err != nil {
			probs.Add(f, problem.CodeInvalidValue, "%v", err)
			continue
		}
		req.Space = append(req.Space, pd)
	}
	if len(probs) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%d problem(s):", len(probs))
		for _, p := range probs {
			fmt.Fprintf(&b, "\n  %s", p)
		}
		return errors.New(b.String())
	}
	if *hp != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(*hp), &m); err != nil {
			return fmt.Errorf("--hyperparams must be a JSON object: %v", err)
		}
		if req.Hyperparams, err = structpb.NewStruct(m); err != nil {
			return fmt.Errorf("--hyperparams: %v", err)
		}
	}
	cl, closeFn, err := c.dial()
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.RunExperiment(ctx, req)
	if err != nil {
		return describe(err)
	}
	x := resp.GetExperiment()
	fmt.Printf("experiment %s started: %d trials of %s, %d at once; shared nodes %v run once, trials run %v\n",
		x.GetExperimentId(), x.GetNTrials(), x.GetPipeline(), x.GetMaxParallelTrials(), x.GetSharedNodes(), x.GetTrialNodes())
	if !*watch {
		return nil
	}
	return followExperiment(ctx, cl, x.GetExperimentId(), 0, os.Stdout)
}

// followExperiment prints an experiment's events as they come, resuming
// after the last sequence if the stream drops, then the experiment.
func followExperiment(ctx context.Context, cl execv1.ExecServiceClient, id string, after int64, out io.Writer) error {
	last := after
	for {
		stream, err := cl.WatchExperiment(ctx, &execv1.WatchExperimentRequest{ExperimentId: id, AfterSequence: last})
		if err != nil {
			return describe(err)
		}
		dropped := false
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && ctx.Err() == nil {
					time.Sleep(500 * time.Millisecond)
					dropped = true
					break
				}
				return describe(err)
			}
			ev := resp.GetEvent()
			last = ev.GetSequence()
			printExperimentEvent(out, ev)
		}
		if dropped {
			continue
		}
		resp, err := cl.GetExperiment(ctx, &execv1.GetExperimentRequest{ExperimentId: id})
		if err != nil {
			return describe(err)
		}
		printExperiment(out, resp.GetExperiment())
		if resp.GetExperiment().GetState() != execv1.ExperimentState_EXPERIMENT_STATE_SUCCEEDED {
			return exitError{1}
		}
		return nil
	}
}

func printExperimentEvent(out io.Writer, ev *execv1.ExperimentEvent) {
	at := ev.GetTime().AsTime().Local().Format("15:04:05.000")
	switch k := ev.GetKind().(type) {
	case *execv1.ExperimentEvent_ExperimentStateChanged:
		msg := k.ExperimentStateChanged.GetMessage()
		if msg != "" {
			msg = ": " + msg
		}
		fmt.Fprintf(out, "%s  experiment %s%s\n", at, strings.TrimPrefix(k.ExperimentStateChanged.GetState().String(), "EXPERIMENT_STATE_"), msg)
	case *execv1.ExperimentEvent_SharedRunStateChanged:
		fmt.Fprintf(out, "%s  shared nodes' run %s %s\n", at, k.SharedRunStateChanged.GetRunId(), strings.TrimPrefix(k.SharedRunStateChanged.GetState().String(), "RUN_STATE_"))
	case *execv1.ExperimentEvent_TrialStateChanged:
		t := k.TrialStateChanged.GetTrial()
		if t.GetState() == execv1.TrialState_TRIAL_STATE_RUNNING && t.GetRunId() == "" {
			return // the record made before its run starts; the next event has the run
		}
		line := fmt.Sprintf("%s  trial %-3d %-9s %s", at, t.GetNumber(), strings.TrimPrefix(t.GetState().String(), "TRIAL_STATE_"), paramsText(t.GetParams()))
		if t.Value != nil {
			line += fmt.Sprintf("  value %.6g", t.GetValue())
		}
		if k.TrialStateChanged.GetBest() {
			line += "  (best so far)"
		}
		if t.GetMessage() != "" {
			line += "  " + t.GetMessage()
		}
		if t.GetState() == execv1.TrialState_TRIAL_STATE_RUNNING {
			line += "  run " + t.GetRunId()
		}
		fmt.Fprintln(out, line)
	}
}

func paramsText(s *structpb.Struct) string {
	m := s.AsMap()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := m[k]
		if f, ok := v.(float64); ok {
			v = fmt.Sprintf("%.4g", f)
		}
		parts[i] = fmt.Sprintf("%s=%v", k, v)
	}
	return strings.Join(parts, " ")
}

func printExperiment(out io.Writer, x *execv1.Experiment) {
	fmt.Fprintf(out, "experiment %s (%s) of %s: %s", x.GetExperimentId(), x.GetName(), x.GetPipeline(), strings.TrimPrefix(x.GetState().String(), "EXPERIMENT_STATE_"))
	if x.GetMessage() != "" {
		fmt.Fprintf(out, ": %s", x.GetMessage())
	}
	fmt.Fprintf(out, "\nobjective: %s %s (node %s); shared nodes %v (run %s); trial nodes %v\n",
		strings.ToLower(strings.TrimPrefix(x.GetObjective().GetDirection().String(), "DIRECTION_")), x.GetObjective().GetMetric(),
		x.GetObjective().GetNode(), x.GetSharedNodes(), x.GetSharedRunId(), x.GetTrialNodes())
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIAL\tSTATE\tPARAMS\tVALUE\tRUN\tDURATION")
	for _, t := range x.GetTrials() {
		value, took := "-", "-"
		if t.Value != nil {
			value = fmt.Sprintf("%.6g", t.GetValue())
		}
		if t.GetEndTime() != nil && t.GetStartTime() != nil {
			took = t.GetEndTime().AsTime().Sub(t.GetStartTime().AsTime()).Round(time.Millisecond).String()
		}
		mark := ""
		if b := x.GetBest(); b != nil && b.GetNumber() == t.GetNumber() {
			mark = " *"
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\n", t.GetNumber(), mark, strings.TrimPrefix(t.GetState().String(), "TRIAL_STATE_"),
			paramsText(t.GetParams()), value, t.GetRunId(), took)
	}
	_ = tw.Flush()
}
