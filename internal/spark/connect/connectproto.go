package connect

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// spark-connect-go compiles the Spark Connect protos in but keeps them in an
// internal package. What the client does not offer (bound SQL parameters,
// writer options and partitioning, reader schemas, interrupts, releasing the
// session) is sent here as the same protocol messages PySpark sends, built by
// name from the protobuf registry the client's generated code fills. Requests
// are written as protojson, which keeps them readable next to the .proto;
// messages.go builds each kind and its test checks them against the
// registry, as protofields.go lists the fields read by name.

const (
	methodExecutePlan     = "/spark.connect.SparkConnectService/ExecutePlan"
	methodConfig          = "/spark.connect.SparkConnectService/Config"
	methodInterrupt       = "/spark.connect.SparkConnectService/Interrupt"
	methodReleaseSession  = "/spark.connect.SparkConnectService/ReleaseSession"
	methodReattachExecute = "/spark.connect.SparkConnectService/ReattachExecute"
	methodReleaseExecute  = "/spark.connect.SparkConnectService/ReleaseExecute"
)

// obj is a protojson object under construction.
type obj = map[string]any

// newMessage returns an empty spark.connect message of the given name.
func newMessage(name string) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("spark.connect." + name))
	if err != nil {
		return nil, fmt.Errorf("spark connect protocol: %s: %w", name, err)
	}
	return mt.New().Interface(), nil
}

// message builds a spark.connect message from its protojson form.
func message(name string, v obj) (proto.Message, error) {
	m, err := newMessage(name)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("spark connect protocol: build %s: %w", name, err)
	}
	return m, nil
}

// message builds the request of call.
func (call rpc) message() (proto.Message, error) { return message(call.request, call.body) }

// executeResponse is what execute keeps of an ExecutePlan stream: the
// observed metrics (Dataset.observe) by observation and metric name, and
// the results of streaming commands in protojson, by result field.
type executeResponse struct {
	Observed map[string]map[string]int64
	Results  map[protoreflect.Name][]byte
}

// execute runs cmd in the session and reads the stream to its end. Results
// other than metrics are dropped: it is for commands, whose effect is on the
// server.
func (s *Session) execute(ctx context.Context, cmd command) (*executeResponse, error) {
	call := executePlanRequest(s.sessionID(), s.remote.user, newUUID(), cmd)
	req, err := call.message()
	if err != nil {
		return nil, err
	}
	stream, err := s.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, call.method)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(req); err != nil {
		return nil, recvError(stream, err)
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	out := &executeResponse{Observed: map[string]map[string]int64{}, Results: map[protoreflect.Name][]byte{}}
	for {
		resp, err := newMessage(call.response)
		if err != nil {
			return nil, err
		}
		if err := stream.RecvMsg(resp); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		observe(out, resp)
		if err := commandResults(out, resp); err != nil {
			return nil, err
		}
	}
}

// commandResults keeps the streaming command results resp carries.
func commandResults(out *executeResponse, resp proto.Message) error {
	r := resp.ProtoReflect()
	for _, name := range []protoreflect.Name{fieldStreamStartResult, fieldStreamQueryResult, fieldStreamManagerResult} {
		fd := r.Descriptor().Fields().ByName(name)
		if fd == nil || !r.Has(fd) {
			continue
		}
		b, err := protojson.Marshal(r.Get(fd).Message().Interface())
		if err != nil {
			return fmt.Errorf("spark connect: reading %s: %w", name, err)
		}
		out.Results[name] = b
	}
	return nil
}

// recvError returns the server's status after a failed send: gRPC reports
// io.EOF from SendMsg and the real error from RecvMsg.
func recvError(stream grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	m, merr := newMessage("ExecutePlanResponse")
	if merr != nil {
		return err
	}
	if rerr := stream.RecvMsg(m); rerr != nil && !errors.Is(rerr, io.EOF) {
		return rerr
	}
	return err
}

// observe keeps the integer metrics of the observations resp reports.
func observe(out *executeResponse, resp proto.Message) {
	if stringField(resp, fieldOperationID) == "" {
		return
	}
	r := resp.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(fieldObservedMetrics)
	if fd == nil || !fd.IsList() || fd.Message() == nil {
		return
	}
	observations := r.Get(fd).List()
	for i := range observations.Len() {
		o := observations.Get(i).Message()
		fields := o.Descriptor().Fields()
		name, keys, values := fields.ByName(fieldObservationName), fields.ByName(fieldObservationKeys), fields.ByName(fieldObservationValues)
		if name == nil || keys == nil || !keys.IsList() || values == nil || !values.IsList() || values.Message() == nil {
			return
		}
		ks, vs := o.Get(keys).List(), o.Get(values).List()
		vals := map[string]int64{}
		for j := 0; j < ks.Len() && j < vs.Len(); j++ {
			if n, ok := integerLiteral(vs.Get(j).Message()); ok {
				vals[ks.Get(j).String()] = n
			}
		}
		out.Observed[o.Get(name).String()] = vals
	}
}

// integerLiteral reads a LONG or an INT literal.
func integerLiteral(lit protoreflect.Message) (int64, bool) {
	for _, name := range []protoreflect.Name{fieldLiteralLong, fieldLiteralInteger} {
		if fd := lit.Descriptor().Fields().ByName(name); fd != nil && lit.Has(fd) {
			return lit.Get(fd).Int(), true
		}
	}
	return 0, false
}

// interrupt asks the server to stop one operation of the session, or all of
// them when opID is "".
func (s *Session) interrupt(ctx context.Context, opID string) error {
	return s.unary(ctx, interruptRequest(s.sessionID(), s.remote.user, opID))
}

// releaseSession ends the server-side session: its temporary views, its
// cached plans and its running operations go with it.
func (s *Session) releaseSession(ctx context.Context) error {
	return s.unary(ctx, releaseSessionRequest(s.sessionID(), s.remote.user))
}

func (s *Session) unary(ctx context.Context, call rpc) error {
	in, err := call.message()
	if err != nil {
		return err
	}
	out, err := newMessage(call.response)
	if err != nil {
		return err
	}
	return s.conn.Invoke(ctx, call.method, in, out)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
