package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

func defaultAddr() string {
	if a := os.Getenv("EXECD_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:50051"
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	fs      *flag.FlagSet
	addr    *string
	project *string
	conn    *connFlags
}

func newClientFlags(name, args string) clientFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: execd %s %s\n", name, args)
		fs.PrintDefaults()
	}
	c := clientFlags{fs: fs, addr: fs.String("addr", defaultAddr(), "execd address"), conn: &connFlags{},
		project: fs.String("project", os.Getenv("TAURO_EXEC_PROJECT"), "the project, when execd serves several (default: $TAURO_EXEC_PROJECT)")}
	c.conn.register(fs)
	return c
}

// parse accepts flags before and after positional arguments.
func (c clientFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, exitError{2}
		}
		args = c.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// connect parses args, which must hold exactly want positional arguments,
// and dials the daemon.
func (c clientFlags) connect(args []string, want int) ([]string, execv1.ExecServiceClient, func(), error) {
	pos, err := c.parse(args)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(pos) != want {
		c.fs.Usage()
		return nil, nil, nil, exitError{2}
	}
	cl, closeFn, err := c.dial()
	return pos, cl, closeFn, err
}

func (c clientFlags) dial() (execv1.ExecServiceClient, func(), error) {
	opts, err := c.conn.dialOptions(*c.addr)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(*c.addr, opts...)
	if err != nil {
		return nil, nil, err
	}
	return execv1.NewExecServiceClient(conn), func() { _ = conn.Close() }, nil
}

// describe renders a gRPC error with its field violations, one per line.
func describe(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var b strings.Builder
	switch st.Code() {
	case codes.Unavailable:
		fmt.Fprintf(&b, "%s (is execd running? start it with 'execd serve --project DIR')", st.Message())
	default:
		fmt.Fprintf(&b, "%s: %s", st.Code(), st.Message())
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			b.Reset()
			fmt.Fprintf(&b, "%d problem(s):", len(br.GetFieldViolations()))
			for _, v := range br.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  %s [%s]: %s", v.GetField(), v.GetReason(), v.GetDescription())
			}
		}
	}
	return errors.New(b.String())
}

// pipelineArg reads PIPELINE or PROJECT/PIPELINE; a project named there
// wins over --project.
func (c clientFlags) pipelineArg(arg string) (project, pipeline string) {
	if p, name, ok := strings.Cut(arg, "/"); ok {
		return p, name
	}
	return *c.project, arg
}

func runFlags(c clientFlags) (env, start, end *string, workers *int, sel *string, hp *string, mv *string, failFast *bool) {
	fs := c.fs
	env = fs.String("env", "", "environment (default: the daemon's)")
	start = fs.String("start-date", "", "start date YYYY-MM-DD (default: global settings)")
	end = fs.String("end-date", "", "end date YYYY-MM-DD (default: global settings)")
	workers = fs.Int("max-workers", 0, "nodes at once (default: max_parallel_nodes)")
	sel = fs.String("select", "", "comma-separated nodes: name, +name (with upstream), name+ (with downstream)")
	hp = fs.String("hyperparams", "", "hyperparameters as a JSON object")
	mv = fs.String("model-version", "", "model version")
	failFast = fs.Bool("fail-fast", false, "stop launching nodes after the first failure")
	return
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func cmdPipelines(ctx context.Context, args []string) error {
	c := newClientFlags("pipelines", "")
	env := c.fs.String("env", "", "environment")
	_, cl, closeFn, err := c.connect(args, 0)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.ListPipelines(ctx, &execv1.ListPipelinesRequest{Project: *c.project, Env: *env})
	if err != nil {
		return describe(err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tTYPE\tNODES")
	for _, p := range resp.GetPipelines() {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", p.GetName(), shortEnum(p.GetType().String(), "PIPELINE_TYPE_"), p.GetNodeCount())
	}
	return tw.Flush()
}

func cmdProjects(ctx context.Context, args []string) error {
	c := newClientFlags("projects", "")
	_, cl, closeFn, err := c.connect(args, 0)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.ListProjects(ctx, &execv1.ListProjectsRequest{})
	if err != nil {
		return describe(err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tSTATE\tENV\tWORKERS\tYOUR ROLE\tFOLDER")
	for _, p := range resp.GetProjects() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.GetName(), shortEnum(p.GetState().String(), "PROJECT_STATE_"), p.GetDefaultEnv(),
			p.GetWorkers(), strings.ToLower(shortEnum(p.GetRole().String(), "ROLE_")), p.GetFolder())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range resp.GetProjects() {
		if p.GetError() != "" {
			fmt.Printf("%s: %s\n", p.GetName(), p.GetError())
		}
	}
	return nil
}

func cmdReplicas(ctx context.Context, args []string) error {
	c := newClientFlags("replicas", "")
	_, cl, closeFn, err := c.connect(args, 0)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.ListReplicas(ctx, &execv1.ListReplicasRequest{})
	if err != nil {
		return describe(err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tADDRESS\tSTATE\tHEARTBEAT\tRUNS")
	for _, r := range resp.GetReplicas() {
		state := "alive"
		if !r.GetAlive() {
			state = "lapsed"
		}
		runs := strings.Join(r.GetRunIds(), ",")
		if runs == "" {
			runs = "-"
		}
		ago := time.Since(r.GetHeartbeatTime().AsTime()).Round(100 * time.Millisecond)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", r.GetName(), r.GetAddress(), state, ago, runs)
	}
	return tw.Flush()
}

func cmdValidate(ctx context.Context, args []string) error {
	c := newClientFlags("validate", "[PROJECT/]PIPELINE [flags]")
	env, start, end, _, sel, _, _, _ := runFlags(c)
	pos, cl, closeFn, err := c.connect(args, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	project, pipeline := c.pipelineArg(pos[0])
	resp, err := cl.ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{
		Project: project, Pipeline: pipeline, Env: *env, StartDate: *start, EndDate: *end, Select: splitList(*sel),
	})
	if err != nil {
		return describe(err)
	}
	p := resp.GetPlan()
	fmt.Printf("pipeline %s is valid\n", pos[0])
	fmt.Printf("order:         %s\n", strings.Join(p.GetOrder(), " -> "))
	for i, st := range p.GetStages() {
		fmt.Printf("stage %-3d      %s\n", i, strings.Join(st.GetNodes(), ", "))
	}
	fmt.Printf("critical path: %s\n", strings.Join(p.GetCriticalPath(), " -> "))
	if len(p.GetStreamingNodes()) > 0 {
		fmt.Printf("streaming:     %s\n", strings.Join(p.GetStreamingNodes(), ", "))
	}
	return nil
}

func cmdRun(ctx context.Context, args []string) error {
	c := newClientFlags("run", "[PROJECT/]PIPELINE [--watch] [flags]")
	env, start, end, workers, sel, hp, mv, failFast := runFlags(c)
	watch := c.fs.Bool("watch", false, "follow the run until it ends; exit 1 if it does not succeed")
	reqID := c.fs.String("request-id", "", "idempotency key: repeating it returns the same run")
	fullRefresh := c.fs.String("full-refresh", "", "comma-separated streaming nodes to rebuild: their checkpoint and sink data are deleted and their sources reprocessed from the start")
	resetCkpt := c.fs.String("reset-checkpoint", "", "comma-separated streaming nodes whose checkpoint to delete, keeping the sink; a Kafka source starts where it had committed")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		c.fs.Usage()
		return exitError{2}
	}
	project, pipeline := c.pipelineArg(pos[0])
	req := &execv1.ExecutePipelineRequest{
		Project: project, RequestId: *reqID, Pipeline: pipeline, Env: *env, StartDate: *start, EndDate: *end,
		MaxWorkers: int32(*workers), Select: splitList(*sel), ModelVersion: *mv, FailFast: *failFast,
		FullRefresh: splitList(*fullRefresh), ResetCheckpoint: splitList(*resetCkpt),
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
	resp, err := cl.ExecutePipeline(ctx, req)
	if err != nil {
		return describe(err)
	}
	r := resp.GetRun()
	fmt.Printf("run %s started: pipeline %s, %s..%s, %d node(s)\n", r.GetRunId(), r.GetPipeline(), r.GetStartDate(), r.GetEndDate(), len(r.GetNodes()))
	if !*watch {
		return nil
	}
	return follow(ctx, cl, r.GetRunId(), 0, os.Stdout)
}

func cmdWatch(ctx context.Context, args []string) error {
	c := newClientFlags("watch", "RUN_ID [--after N]")
	after := c.fs.Int64("after", 0, "only events after this sequence")
	pos, cl, closeFn, err := c.connect(args, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	return follow(ctx, cl, pos[0], *after, os.Stdout)
}

// follow prints a run's events as they come, reconnecting with the last
// sequence seen if the stream drops, then a summary of its nodes. The
// server ends the stream after the run's terminal event; GetRun confirms it.
// It fails with exit status 1 when the run does not succeed.
func follow(ctx context.Context, cl execv1.ExecServiceClient, runID string, after int64, out io.Writer) error {
	last := after
	for {
		stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: runID, AfterSequence: last})
		if err != nil {
			return describe(err)
		}
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && ctx.Err() == nil {
					time.Sleep(500 * time.Millisecond)
					break // reconnect and resume after `last`
				}
				return describe(err)
			}
			ev := resp.GetEvent()
			last = ev.GetSequence()
			printEvent(out, ev)
		}
		r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
		if err != nil {
			return describe(err)
		}
		if !terminalRun(r.GetRun().GetState()) {
			continue
		}
		printRun(out, r.GetRun())
		if r.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
			return exitError{1}
		}
		return nil
	}
}

func terminalRun(s execv1.RunState) bool {
	switch s {
	case execv1.RunState_RUN_STATE_SUCCEEDED, execv1.RunState_RUN_STATE_FAILED,
		execv1.RunState_RUN_STATE_CANCELLED, execv1.RunState_RUN_STATE_INTERRUPTED:
		return true
	}
	return false
}

func shortEnum(s, prefix string) string { return strings.TrimPrefix(s, prefix) }

func printEvent(out io.Writer, ev *execv1.RunEvent) {
	at := ev.GetTime().AsTime().Local().Format("15:04:05.000")
	switch k := ev.GetKind().(type) {
	case *execv1.RunEvent_RunStateChanged:
		line := fmt.Sprintf("%s  #%-4d run %s", at, ev.GetSequence(), shortEnum(k.RunStateChanged.GetState().String(), "RUN_STATE_"))
		if m := k.RunStateChanged.GetMessage(); m != "" {
			line += ": " + m
		}
		fmt.Fprintln(out, line)
	case *execv1.RunEvent_NodeStateChanged:
		n := k.NodeStateChanged
		line := fmt.Sprintf("%s  #%-4d %-24s %-9s attempt %d", at, ev.GetSequence(), n.GetNode(), shortEnum(n.GetState().String(), "NODE_STATE_"), n.GetAttempt())
		if d := n.GetDuration(); d != nil {
			line += fmt.Sprintf("  %s", d.AsDuration().Round(time.Millisecond))
		}
		if r := n.GetRetryIn(); r != nil {
			line += fmt.Sprintf("  retry in %s", r.AsDuration().Round(time.Millisecond))
		}
		if e := n.GetError(); e != nil {
			line += fmt.Sprintf("  %s: %s", e.GetType(), firstLine(e.GetMessage()))
		}
		fmt.Fprintln(out, line)
	case *execv1.RunEvent_NodeMessage:
		fmt.Fprintf(out, "%s  #%-4d %-24s %s: %s\n", at, ev.GetSequence(), k.NodeMessage.GetNode(), k.NodeMessage.GetLevel(), k.NodeMessage.GetText())
	case *execv1.RunEvent_RunMessage:
		fmt.Fprintf(out, "%s  #%-4d run %s: %s\n", at, ev.GetSequence(), k.RunMessage.GetLevel(), k.RunMessage.GetText())
	case *execv1.RunEvent_NodeMetric:
		m := k.NodeMetric
		line := fmt.Sprintf("%s  #%-4d %-24s metric %s = %g", at, ev.GetSequence(), m.GetNode(), m.GetName(), m.GetValue())
		if m.GetStep() != 0 {
			line += fmt.Sprintf("  step %d", m.GetStep())
		}
		fmt.Fprintln(out, line)
	case *execv1.RunEvent_NodeLag:
		l := k.NodeLag
		fmt.Fprintf(out, "%s  #%-4d %-24s %s: %s\n", at, ev.GetSequence(), l.GetNode(), strings.ToLower(shortEnum(l.GetState().String(), "LAG_STATE_")), l.GetReason())
	case *execv1.RunEvent_NodeExpectations:
		printExpectationsEvent(out, at, ev.GetSequence(), k.NodeExpectations)
	case *execv1.RunEvent_NodeProgress:
		p := k.NodeProgress
		line := fmt.Sprintf("%s  #%-4d %-24s batch %d: %d rows  %.1f in/s  %.1f done/s", at, ev.GetSequence(), p.GetNode(),
			p.GetBatchId(), p.GetInputRows(), p.GetInputRowsPerSecond(), p.GetProcessedRowsPerSecond())
		if d := p.GetBatchDuration(); d != nil {
			line += fmt.Sprintf("  %s", d.AsDuration().Round(time.Millisecond))
		}
		if w := p.GetWatermark(); w != "" {
			line += "  watermark " + w
		}
		if n := p.GetStateRows(); n > 0 {
			line += fmt.Sprintf("  state %d rows", n)
		}
		fmt.Fprintln(out, line)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func printRun(out io.Writer, r *execv1.Run) {
	fmt.Fprintf(out, "\nrun %s  %s  %s", r.GetRunId(), r.GetPipeline(), shortEnum(r.GetState().String(), "RUN_STATE_"))
	if r.GetStartTime() != nil && r.GetEndTime() != nil {
		fmt.Fprintf(out, "  %s", r.GetEndTime().AsTime().Sub(r.GetStartTime().AsTime()).Round(time.Millisecond))
	}
	if m := r.GetMessage(); m != "" {
		fmt.Fprintf(out, "\n  %s", m)
	}
	if u := r.GetMlflow().GetUrl(); u != "" {
		fmt.Fprintf(out, "\n  MLflow: %s", u)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tATTEMPTS\tDURATION\tERROR")
	for _, n := range r.GetNodes() {
		d := ""
		if n.GetStartTime() != nil && n.GetEndTime() != nil {
			d = n.GetEndTime().AsTime().Sub(n.GetStartTime().AsTime()).Round(time.Millisecond).String()
		}
		e := ""
		if n.GetError() != nil {
			e = n.GetError().GetType() + ": " + firstLine(n.GetError().GetMessage())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.GetName(), shortEnum(n.GetState().String(), "NODE_STATE_"), n.GetAttempt(), d, e)
	}
	_ = tw.Flush()
	printExpectations(out, r)
	printTracked(out, r)
}

// printTracked lists the MLflow run of each node attempt that has one,
// under the run's node table.
func printTracked(out io.Writer, r *execv1.Run) {
	for _, n := range r.GetNodes() {
		for _, a := range n.GetAttempts() {
			if u := a.GetMlflow().GetUrl(); u != "" {
				fmt.Fprintf(out, "  %s attempt %d in MLflow: %s\n", n.GetName(), a.GetAttempt(), u)
			}
		}
	}
}

func cmdRuns(ctx context.Context, args []string) error {
	c := newClientFlags("runs", "[--pipeline P] [--state S] [--limit N]")
	pipeline := c.fs.String("pipeline", "", "only runs of this pipeline")
	state := c.fs.String("state", "", "only runs in these states (comma-separated, e.g. failed,running)")
	limit := c.fs.Int("limit", 20, "at most this many runs")
	if _, err := c.parse(args); err != nil {
		return err
	}
	req := &execv1.ListRunsRequest{Project: *c.project, Pipeline: *pipeline, PageSize: int32(*limit)}
	for _, s := range splitList(*state) {
		v, ok := execv1.RunState_value["RUN_STATE_"+strings.ToUpper(s)]
		if !ok {
			return fmt.Errorf("--state %q: use pending, running, succeeded, failed, cancelled or interrupted", s)
		}
		req.States = append(req.States, execv1.RunState(v))
	}
	cl, closeFn, err := c.dial()
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.ListRuns(ctx, req)
	if err != nil {
		return describe(err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPIPELINE\tSTATE\tCREATED\tNODES")
	for _, r := range resp.GetRuns() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.GetRunId(), r.GetProject()+"/"+r.GetPipeline(), shortEnum(r.GetState().String(), "RUN_STATE_"),
			r.GetCreateTime().AsTime().Local().Format(time.DateTime), len(r.GetNodes()))
	}
	return tw.Flush()
}

func cmdGet(ctx context.Context, args []string) error {
	c := newClientFlags("get", "RUN_ID")
	pos, cl, closeFn, err := c.connect(args, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: pos[0]})
	if err != nil {
		return describe(err)
	}
	printRun(os.Stdout, resp.GetRun())
	return nil
}

func cmdCancel(ctx context.Context, args []string) error {
	c := newClientFlags("cancel", "RUN_ID [--reason TEXT]")
	reason := c.fs.String("reason", "", "why, recorded on the run")
	pos, cl, closeFn, err := c.connect(args, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.CancelRun(ctx, &execv1.CancelRunRequest{RunId: pos[0], Reason: *reason})
	if err != nil {
		return describe(err)
	}
	printRun(os.Stdout, resp.GetRun())
	return nil
}

func cmdStop(ctx context.Context, args []string) error {
	c := newClientFlags("stop", "RUN_ID [--reason TEXT]")
	reason := c.fs.String("reason", "", "why, recorded in execd's log")
	pos, cl, closeFn, err := c.connect(args, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.StopRun(ctx, &execv1.StopRunRequest{RunId: pos[0], Reason: *reason})
	if err != nil {
		return describe(err)
	}
	printRun(os.Stdout, resp.GetRun())
	return nil
}

func cmdRepair(ctx context.Context, args []string) error {
	c := newClientFlags("repair", "RUN_ID [--watch]")
	watch := c.fs.Bool("watch", false, "follow the repair until it ends; exit 1 if it does not succeed")
	pos, cl, closeFn, err := c.connect(args, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	resp, err := cl.RepairRun(ctx, &execv1.RepairRunRequest{RunId: pos[0]})
	if err != nil {
		return describe(err)
	}
	r := resp.GetRun()
	fmt.Printf("run %s repair %d started\n", r.GetRunId(), r.GetRepairCount())
	if !*watch {
		return nil
	}
	return follow(ctx, cl, r.GetRunId(), r.GetLastSequence(), os.Stdout)
}
