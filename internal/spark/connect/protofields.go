package connect

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The fields this package reads or sets by name on messages it does not
// build: the requests spark-connect-go sends, which the interceptors see,
// and the responses of the server. A read of a field the protocol lacks
// finds nothing, so session checks, interrupts and row counts would stop
// without a word; reflectedFields says which message each field is used on
// and with what kind, and Connect refuses a protocol that disagrees
// (checkProtocol). Code reads fields by these constants only, which a test
// holds it to.
const (
	fieldSessionID           protoreflect.Name = "session_id"
	fieldServerSideSessionID protoreflect.Name = "server_side_session_id"
	fieldObservedSessionID   protoreflect.Name = "client_observed_server_side_session_id"
	fieldOperationID         protoreflect.Name = "operation_id"
	fieldResponseID          protoreflect.Name = "response_id"
	fieldResultComplete      protoreflect.Name = "result_complete"
	fieldExecutionProgress   protoreflect.Name = "execution_progress"
	fieldStages              protoreflect.Name = "stages"
	fieldObservedMetrics     protoreflect.Name = "observed_metrics"
	fieldObservationName     protoreflect.Name = "name"
	fieldObservationKeys     protoreflect.Name = "keys"
	fieldObservationValues   protoreflect.Name = "values"
	fieldLiteralLong         protoreflect.Name = "long"
	fieldLiteralInteger      protoreflect.Name = "integer"
	// Results of the streaming commands, kept whole (see commandResults).
	fieldStreamStartResult   protoreflect.Name = "write_stream_operation_start_result"
	fieldStreamQueryResult   protoreflect.Name = "streaming_query_command_result"
	fieldStreamManagerResult protoreflect.Name = "streaming_query_manager_command_result"
	// The listener bus's events (see listenerbus.go).
	fieldListenerEventsResult protoreflect.Name = "streaming_query_listener_events_result"
)

const (
	connectService      protoreflect.FullName = "spark.connect.SparkConnectService"
	executeResponseName protoreflect.FullName = "spark.connect.ExecutePlanResponse"
)

// reflectedField is a field read or set by name: the messages it is used on
// and the kind the code expects of it.
type reflectedField struct {
	name protoreflect.Name
	kind protoreflect.Kind
	list bool
	on   []protoreflect.FullName
}

// reflectedFields lists every use of the constants above. Session ids are
// read and stamped on whatever the client sends, so those fields are
// expected on every request and response of the service.
func reflectedFields() ([]reflectedField, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(connectService)
	if err != nil {
		return nil, fmt.Errorf("spark connect protocol: %w", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("spark connect protocol: %s is not a service", connectService)
	}
	var requests, responses, stamped []protoreflect.FullName
	for i := range sd.Methods().Len() {
		in, out := sd.Methods().Get(i).Input().FullName(), sd.Methods().Get(i).Output().FullName()
		requests = append(requests, in)
		// Releasing a session carries no observed server session: there
		// is nothing left to protect.
		if in != "spark.connect.ReleaseSessionRequest" {
			stamped = append(stamped, in)
		}
		if !slices.Contains(responses, out) { // ExecutePlan and ReattachExecute share theirs
			responses = append(responses, out)
		}
	}
	const (
		str = protoreflect.StringKind
		msg = protoreflect.MessageKind
	)
	observation := executeResponseName + ".ObservedMetrics"
	return []reflectedField{
		{fieldSessionID, str, false, requests},
		{fieldObservedSessionID, str, false, stamped},
		{fieldServerSideSessionID, str, false, responses},
		{fieldOperationID, str, false, []protoreflect.FullName{"spark.connect.ExecutePlanRequest", "spark.connect.ReattachExecuteRequest", executeResponseName}},
		// A session taken up from another process answers under its own id
		// (see Session.rewrite).
		{fieldSessionID, str, false, []protoreflect.FullName{executeResponseName}},
		{fieldResponseID, str, false, []protoreflect.FullName{executeResponseName}},
		{fieldResultComplete, msg, false, []protoreflect.FullName{executeResponseName}},
		{fieldExecutionProgress, msg, false, []protoreflect.FullName{executeResponseName}},
		{fieldStages, msg, true, []protoreflect.FullName{executeResponseName + ".ExecutionProgress"}},
		{fieldObservedMetrics, msg, true, []protoreflect.FullName{executeResponseName}},
		{fieldObservationName, str, false, []protoreflect.FullName{observation}},
		{fieldObservationKeys, str, true, []protoreflect.FullName{observation}},
		{fieldObservationValues, msg, true, []protoreflect.FullName{observation}},
		{fieldLiteralLong, protoreflect.Int64Kind, false, []protoreflect.FullName{"spark.connect.Expression.Literal"}},
		{fieldLiteralInteger, protoreflect.Int32Kind, false, []protoreflect.FullName{"spark.connect.Expression.Literal"}},
		{fieldStreamStartResult, msg, false, []protoreflect.FullName{executeResponseName}},
		{fieldStreamQueryResult, msg, false, []protoreflect.FullName{executeResponseName}},
		{fieldStreamManagerResult, msg, false, []protoreflect.FullName{executeResponseName}},
		{fieldListenerEventsResult, msg, false, []protoreflect.FullName{executeResponseName}},
	}, nil
}

// checkField finds what is wrong with field f of message name in the
// protocol compiled in, nil if nothing.
func checkField(name protoreflect.FullName, f reflectedField) error {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fd := mt.Descriptor().Fields().ByName(f.name)
	switch {
	case fd == nil:
		return fmt.Errorf("%s has no field %s", name, f.name)
	case fd.Kind() != f.kind || fd.IsList() != f.list || fd.IsMap():
		return fmt.Errorf("%s.%s is %s, not %s", name, f.name, describe(fd.Kind(), fd.IsList() || fd.IsMap()), describe(f.kind, f.list))
	}
	return nil
}

func describe(kind protoreflect.Kind, list bool) string {
	if list {
		return "a list of " + kind.String()
	}
	return "a " + kind.String()
}

// checkProtocol reports every field of reflectedFields the protocol
// compiled in lacks or has with another kind. A failure is a build of
// tauro-exec against a spark-connect-go it was not tested with.
var checkProtocol = sync.OnceValue(func() error {
	fields, err := reflectedFields()
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range fields {
		for _, name := range f.on {
			if err := checkField(name, f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the Spark Connect protocol compiled in lacks fields tauro-exec reads (update internal/spark/connect with spark-connect-go): %w", errors.Join(errs...))
	}
	return nil
})

// stringField reads a string field of any message, "" if it has none.
func stringField(m any, name protoreflect.Name) string {
	pm, ok := m.(proto.Message)
	if !ok {
		return ""
	}
	r := pm.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
		return ""
	}
	return r.Get(fd).String()
}
