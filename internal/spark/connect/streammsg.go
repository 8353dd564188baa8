package connect

import (
	"strconv"
	"strings"
	"time"
)

// The protocol messages of Structured Streaming: streaming reads, the
// watermark, starting a query, and the commands that ask a query about
// itself or stop it. Built like those in messages.go, so the same offline
// test checks them.

// streamSource reads path (or nothing, for sources such as rate and kafka)
// as a stream, as DataStreamReader.load does; schema is DDL, "" to infer it.
func streamSource(format, path, schema string, options map[string]string) relation {
	src := obj{"format": format}
	if path != "" {
		src["paths"] = []string{path}
	}
	if schema != "" {
		src["schema"] = schema
	}
	if len(options) > 0 {
		src["options"] = options
	}
	return relation{"read": obj{"dataSource": src, "isStreaming": true}}
}

// withWatermark bounds how late events on column may arrive (delay is a
// Spark interval, "10 minutes").
func withWatermark(input relation, column, delay string) relation {
	return relation{"withWatermark": obj{"input": input, "eventTime": column, "delayThreshold": delay}}
}

// Trigger kinds of a streaming query, as StreamStart names them.
const (
	TriggerProcessingTime = "processing_time"
	TriggerAvailableNow   = "available_now"
	TriggerOnce           = "once"
	TriggerContinuous     = "continuous"
)

// StreamStart is a streaming query to start: what it reads (a view of the
// session) and where and how it writes.
type StreamStart struct {
	// View is the streaming view the query writes out.
	View string
	// Observe, when set, filters and observes each micro-batch as a
	// batch write's Observe does; its values are in each batch's progress
	// (see StreamObservation).
	Observe Observe
	// Format is the sink: delta, parquet, json, csv, kafka, memory, console.
	Format string
	// Path or Table is where a file or table sink writes; a memory sink
	// takes its table name from QueryName.
	Path, Table string
	Options     map[string]string
	PartitionBy []string
	// Trigger is one of the Trigger kinds; Interval goes with
	// processing_time and continuous.
	Trigger  string
	Interval time.Duration
	// OutputMode is append, update or complete.
	OutputMode string
	QueryName  string
	// Checkpoint is the query's checkpoint folder.
	Checkpoint string
	// ForeachBatch, when set, is the sink instead of Format: a pickled
	// Python function the server calls with each micro-batch and its id.
	ForeachBatch *PythonFunction
}

// PythonFunction is a Python function pickled as Spark Connect's clients
// pickle one (cloudpickle), for the server's own Python workers.
type PythonFunction struct {
	Command []byte
	// PythonVer is the pickling Python's major.minor; the server's workers
	// must run the same.
	PythonVer string
}

// writeStreamStart starts q as DataStreamWriter.start does.
// StreamObservation names what a streaming query's Observe reports in each
// micro-batch's progress: the rows written and the Observe's metrics.
const StreamObservation = "tauro_expectations"

// streamInput is the view q writes, observed as q.Observe says.
func streamInput(q StreamStart) relation {
	if len(q.Observe.Metrics) == 0 && q.Observe.Keep == "" {
		return namedTable(q.View, nil)
	}
	return observedInput(q.View, q.Observe, StreamObservation)
}

func writeStreamStart(q StreamStart) command {
	options := map[string]string{}
	for k, v := range q.Options {
		options[k] = v
	}
	if q.Checkpoint != "" {
		options["checkpointLocation"] = q.Checkpoint
	}
	start := obj{
		"input":      streamInput(q),
		"outputMode": q.OutputMode,
	}
	if f := q.ForeachBatch; f != nil {
		// protojson takes bytes as base64, which encoding/json writes.
		start["foreachBatch"] = obj{"pythonFunction": obj{"command": f.Command, "pythonVer": f.PythonVer}}
	} else {
		start["format"] = strings.ToLower(q.Format)
	}
	if len(options) > 0 {
		start["options"] = options
	}
	if len(q.PartitionBy) > 0 {
		start["partitioningColumnNames"] = q.PartitionBy
	}
	if q.QueryName != "" {
		start["queryName"] = q.QueryName
	}
	switch q.Trigger {
	case TriggerAvailableNow:
		start["availableNow"] = true
	case TriggerOnce:
		start["once"] = true
	case TriggerContinuous:
		start["continuousCheckpointInterval"] = sparkInterval(q.Interval)
	case TriggerProcessingTime:
		if q.Interval > 0 {
			start["processingTimeInterval"] = sparkInterval(q.Interval)
		}
	}
	switch {
	case q.Path != "":
		start["path"] = q.Path
	case q.Table != "":
		start["tableName"] = q.Table
	}
	return command{"writeStreamOperationStart": start}
}

// sparkInterval writes d as Spark reads a trigger interval: "30 seconds".
func sparkInterval(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + " seconds"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + " milliseconds"
}

// streamingQueryCommand asks query id (of run runID) one thing: the command
// is one of StreamingQueryCommand's fields, status, lastProgress,
// recentProgress, exception, stop, processAllAvailable or awaitTermination.
func streamingQueryCommand(id, runID, which string, arg any) command {
	return command{"streamingQueryCommand": obj{
		"queryId": obj{"id": id, "runId": runID},
		which:     arg,
	}}
}

// activeQueries lists the session's active streaming queries.
func activeQueries() command {
	return command{"streamingQueryManagerCommand": obj{"active": true}}
}

// listenerBus adds the session's streaming query listener bus listener
// (add) or removes it: the add is a long-lived command whose response
// stream carries the session's query events until the remove.
func listenerBus(add bool) command {
	which := "removeListenerBusListener"
	if add {
		which = "addListenerBusListener"
	}
	return command{"streamingQueryListenerBusCommand": obj{which: true}}
}
