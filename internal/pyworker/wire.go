package pyworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// runRequest is c as a worker's RunNode request, without its call id.
// remote stands in for an empty c.SparkRemote. A mapping that cannot be
// written as JSON fails the node, as its own (permanent) error.
func runRequest(c pycall.Call, remote string) (*execv1.RunNodeRequest, *run.Error) {
	hp, err := jsonText(c.Hyperparams)
	if err != nil {
		return nil, notForPython(c.Node, "hyperparams", err)
	}
	nodeCfg, err := jsonText(c.NodeConfig)
	if err != nil {
		return nil, notForPython(c.Node, "its configuration", err)
	}
	pipeCfg, err := jsonText(c.PipelineConfig)
	if err != nil {
		return nil, notForPython(c.Node, "the pipeline's configuration", err)
	}
	if c.SparkRemote != "" {
		remote = c.SparkRemote
	}
	return &execv1.RunNodeRequest{
		Node:                  c.Node,
		Module:                c.Module,
		Function:              c.Function,
		InputViews:            c.InputViews,
		Streaming:             c.Streaming,
		StartDate:             plan.FormatDate(c.StartDate),
		EndDate:               plan.FormatDate(c.EndDate),
		ResultView:            c.ResultView,
		SparkConf:             c.SparkConf,
		AllowedModulePrefixes: c.AllowedModulePrefixes,
		SparkRemote:           remote,
		Context: &execv1.NodeContext{
			Pipeline:           c.Pipeline,
			RunId:              c.RunID,
			Attempt:            int32(c.Attempt),
			StartTime:          c.StartTime.UTC().Format(time.RFC3339Nano),
			ModelVersion:       c.ModelVersion,
			HyperparamsJson:    hp,
			NodeConfigJson:     nodeCfg,
			PipelineConfigJson: pipeCfg,
			Mlflow:             mlflowContext(c.MLflow),
		},
	}, nil
}

func mlflowContext(m *pycall.MLflow) *execv1.MlflowContext {
	if m == nil {
		return nil
	}
	return &execv1.MlflowContext{TrackingUri: m.TrackingURI, ExperimentId: m.ExperimentID,
		RunId: m.RunID, ParentRunId: m.ParentRunID, Required: m.Required}
}

// jsonText is m as a JSON object; a nil map is "null", which the worker
// reads as an empty one.
func jsonText(m map[string]any) (string, error) {
	b, err := json.Marshal(m)
	return string(b), err
}

func notForPython(node, what string, err error) *run.Error {
	return &run.Error{Type: "ConfigError", Message: fmt.Sprintf("node %q: %s cannot be passed to Python: %v", node, what, err)}
}

// runNode makes the RunNode call on w, passing the metrics and log records
// to on as they arrive. It returns the node's error, if the stream ended
// with one, and an error if the call broke.
func (w *worker) runNode(ctx context.Context, req *execv1.RunNodeRequest, on func(pycall.Event)) (*run.Error, error) {
	stream, err := w.client.RunNode(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		ended   bool
		nodeErr *run.Error
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if !ended {
				return nil, errors.New("the worker ended the call without a result")
			}
			return nodeErr, nil
		}
		if err != nil {
			return nil, err
		}
		switch ev := resp.GetEvent().(type) {
		case *execv1.RunNodeResponse_Result:
			ended, nodeErr = true, nil
		case *execv1.RunNodeResponse_Error:
			ended, nodeErr = true, runError(ev.Error)
		case *execv1.RunNodeResponse_Metric:
			if on != nil {
				on(pycall.Event{Metric: &pycall.Metric{Name: ev.Metric.GetName(), Value: ev.Metric.GetValue(), Step: ev.Metric.GetStep()}})
			}
		case *execv1.RunNodeResponse_Log:
			if on != nil {
				on(pycall.Event{Log: &pycall.Log{Level: ev.Log.GetLevel(), Text: ev.Log.GetText()}})
			}
		}
	}
}

func runError(e *execv1.WorkerError) *run.Error {
	return &run.Error{Type: e.GetType(), Message: e.GetMessage(), Traceback: e.GetTraceback(), Retryable: e.GetRetryable()}
}

// checkFunctions makes the CheckFunctions call on w.
func (w *worker) checkFunctions(ctx context.Context, fns []pycall.Function, allowed []string) ([]pycall.Problem, error) {
	req := &execv1.CheckFunctionsRequest{AllowedModulePrefixes: allowed}
	for _, f := range fns {
		req.Functions = append(req.Functions, &execv1.FunctionRef{
			Node: f.Node, Module: f.Module, Function: f.Function, Inputs: int32(f.Inputs), Streaming: f.Streaming,
			BatchFunction: f.BatchFunction,
		})
	}
	resp, err := w.client.CheckFunctions(ctx, req)
	if err != nil {
		return nil, err
	}
	var probs []pycall.Problem
	for _, pr := range resp.GetProblems() {
		probs = append(probs, pycall.Problem{Node: pr.GetNode(), Message: pr.GetMessage(), BatchFunction: pr.GetBatchFunction()})
	}
	return probs, nil
}

// pickleBatchFunction makes the PickleBatchFunction call on w.
func (w *worker) pickleBatchFunction(ctx context.Context, fn pycall.Function, allowed []string) (pycall.PickledFunction, error) {
	req := &execv1.PickleBatchFunctionRequest{Node: fn.Node, Module: fn.Module, Function: fn.Function, AllowedModulePrefixes: allowed}
	if q := fn.Split; q != nil {
		req.QuarantineSplit = &execv1.QuarantineSplit{Keep: q.Keep, Sink: batchWrite(q.Sink), Quarantine: batchWrite(q.Quarantine)}
	}
	if c := fn.CDC; c != nil {
		req.Cdc = &execv1.ChangeCapture{
			Target: c.Table, Keys: c.Keys, SequenceBy: c.SequenceBy, ApplyAsDeletes: c.ApplyAsDeletes,
			ExceptColumns: c.ExceptColumns, ScdType: int32(c.SCDType),
		}
	}
	resp, err := w.client.PickleBatchFunction(ctx, req)
	if err != nil {
		return pycall.PickledFunction{}, err
	}
	return pycall.PickledFunction{Command: resp.GetCommand(), PythonVer: resp.GetPythonVer()}, nil
}

func batchWrite(b pycall.BatchWrite) *execv1.BatchWrite {
	return &execv1.BatchWrite{Format: b.Format, Path: b.Path, Options: b.Options, PartitionBy: b.PartitionBy, TxnAppId: b.TxnAppID}
}
