package plan

import (
	"fmt"
	"slices"
	"strings"
)

// FormatPolicy says which data formats nodes may read and write, and which
// streaming format can read what a batch node wrote.
//
// It follows tauro's `format_policy` global setting, whose lists are about
// streaming: `supported_inputs` and `supported_outputs` are the formats a
// streaming node may read and write, and `compatibility_map` maps a batch
// output format to the streaming formats that can read it. Applying them to
// batch nodes too would break tauro projects that set, say,
// `supported_inputs: [kafka, kinesis]` and read parquet in batch nodes. The
// batch lists are a tauro-exec extension: `batch_inputs` and `batch_outputs`.
//
// A format must also be one execd can run; a policy only narrows that set
// (an unknown name in a policy list permits nothing).
type FormatPolicy struct {
	BatchInputs      []string
	BatchOutputs     []string
	StreamingInputs  []string
	StreamingOutputs []string
	// Compatibility maps a batch output format to the streaming input
	// formats that read it, in order of preference.
	Compatibility map[string][]string
}

// Formats execd knows how to run. Streaming-ness is a property of the format,
// not of the policy: kafka is a stream whatever a policy lists.
var (
	knownBatchInputs = []string{
		"parquet", "csv", "json", "orc", "delta", "avro", "xml",
		"table", "unity_catalog", "query",
	}
	knownBatchOutputs = []string{"parquet", "delta", "csv", "json", "orc", "kafka"}
	// The streaming formats are those of streamformats.go, where a
	// streaming source or sink is added.
	knownStreamingInputs  = streamSourceNames()
	knownStreamingOutputs = streamSinkNames()
)

// DefaultFormatPolicy is every format execd runs, with tauro's default
// batch-to-streaming compatibility.
func DefaultFormatPolicy() FormatPolicy {
	return FormatPolicy{
		BatchInputs:      slices.Clone(knownBatchInputs),
		BatchOutputs:     slices.Clone(knownBatchOutputs),
		StreamingInputs:  slices.Clone(knownStreamingInputs),
		StreamingOutputs: slices.Clone(knownStreamingOutputs),
		Compatibility:    defaultCompatibility(),
	}
}

// IsStreamingFormat reports whether reading format yields a stream.
func IsStreamingFormat(format string) bool {
	return slices.Contains(knownStreamingInputs, strings.ToLower(format))
}

// AllowsInput reports whether a node may read format.
func (p FormatPolicy) AllowsInput(format string) bool {
	format = strings.ToLower(format)
	if IsStreamingFormat(format) {
		return slices.Contains(p.StreamingInputs, format)
	}
	return slices.Contains(knownBatchInputs, format) && slices.Contains(p.BatchInputs, format)
}

// AllowsOutput reports whether a batch (streaming false) or streaming node
// may write format.
func (p FormatPolicy) AllowsOutput(format string, streaming bool) bool {
	format = strings.ToLower(format)
	if streaming {
		return slices.Contains(knownStreamingOutputs, format) && slices.Contains(p.StreamingOutputs, format)
	}
	return slices.Contains(knownBatchOutputs, format) && slices.Contains(p.BatchOutputs, format)
}

// inputsFor lists what a node may read, for messages.
func (p FormatPolicy) inputsFor(format string) []string {
	if IsStreamingFormat(format) {
		return p.StreamingInputs
	}
	return p.BatchInputs
}

// outputsFor lists what a node may write, for messages.
func (p FormatPolicy) outputsFor(streaming bool) []string {
	if streaming {
		return p.StreamingOutputs
	}
	return p.BatchOutputs
}

// Compatible reports whether a stream in streamingInput format can read
// what a batch node wrote in batchOutput format.
func (p FormatPolicy) Compatible(batchOutput, streamingInput string) bool {
	return slices.Contains(p.Compatibility[strings.ToLower(batchOutput)], strings.ToLower(streamingInput))
}

// StreamFormatFor is the streaming format used to read, as a stream, data
// written in batchOutput format; "" when none can.
func (p FormatPolicy) StreamFormatFor(batchOutput string) string {
	for _, f := range p.Compatibility[strings.ToLower(batchOutput)] {
		if slices.Contains(p.StreamingInputs, f) {
			return f
		}
	}
	return ""
}

// CheckHybridFormat checks, under the default policy, that a streaming node
// reading streamingInput can consume what a batch node wrote as batchOutput
// (parquet is read by file_stream, delta by delta_stream).
func CheckHybridFormat(batchOutput, streamingInput string) error {
	return DefaultFormatPolicy().checkHybrid(batchOutput, streamingInput)
}

func (p FormatPolicy) checkHybrid(batchOutput, streamingInput string) error {
	if p.Compatible(batchOutput, streamingInput) {
		return nil
	}
	readers := p.Compatibility[strings.ToLower(batchOutput)]
	if len(readers) == 0 {
		return fmt.Errorf("incompatible format: no streaming format reads batch output %s; write it as %s",
			q(batchOutput), describeCompat(p.Compatibility))
	}
	return fmt.Errorf("incompatible format: batch output %s cannot be read as a %s stream; read it with %s",
		q(batchOutput), q(streamingInput), strings.Join(readers, " or "))
}

// describeCompat renders a compatibility map as "parquet (file_stream), ...".
func describeCompat(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " (" + strings.Join(m[k], ", ") + ")"
	}
	return strings.Join(parts, ", ")
}

// writeModes are Spark's save modes; errorifexists is Spark's spelling of
// tauro's error.
var writeModes = []string{"overwrite", "append", "ignore", "error", "errorifexists"}

// streamOutputModes are Structured Streaming's output modes.
var streamOutputModes = []string{"append", "update", "complete"}

// formatsNeedingPath read files and so need a filepath in the input config.
var formatsNeedingPath = []string{"parquet", "csv", "json", "orc", "delta", "avro", "xml"}
