package service

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// The redaction interceptors pass every string a client receives (in
// responses, streamed events and errors with their details) through
// redact, which hides values that came from execd's environment: a
// pipeline that reads a secret with ${VAR} must not hand it to whoever
// may call GetPipeline. They are outermost, so nothing added later escapes.

func unaryRedact(redact func(string) string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return resp, redactError(err, redact)
		}
		if m, ok := resp.(proto.Message); ok {
			resp = redactMessage(m, redact)
		}
		return resp, nil
	}
}

func streamRedact(redact func(string) string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return redactError(handler(srv, &redactingStream{ServerStream: ss, redact: redact}), redact)
	}
}

type redactingStream struct {
	grpc.ServerStream
	redact func(string) string
}

func (s *redactingStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok {
		m = redactMessage(pm, s.redact)
	}
	return s.ServerStream.SendMsg(m)
}

// redactMessage returns m, or a redacted copy when some string in it needs
// redacting: a response may share slices with the engine's own values,
// which must not change under it.
func redactMessage(m proto.Message, redact func(string) string) proto.Message {
	if !walkStrings(m.ProtoReflect(), redact, false) {
		return m
	}
	c := proto.Clone(m)
	walkStrings(c.ProtoReflect(), redact, true)
	return c
}

// redactError redacts a status's message and details.
func redactError(err error, redact func(string) string) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	p := st.Proto()
	changed := false
	if r := redact(p.GetMessage()); r != p.GetMessage() {
		p.Message, changed = r, true
	}
	for i, d := range p.GetDetails() {
		m, uerr := d.UnmarshalNew()
		if uerr != nil {
			continue
		}
		if rm := redactMessage(m, redact); rm != m {
			if a, aerr := anypb.New(rm); aerr == nil {
				p.Details[i], changed = a, true
			}
		}
	}
	if !changed {
		return err
	}
	return status.ErrorProto(p)
}

// walkStrings reports whether redact changes any string in m, and with
// set, makes the change.
func walkStrings(m protoreflect.Message, redact func(string) string, set bool) bool {
	changed := false
	var sets []func()
	str := func(v protoreflect.Value, put func(protoreflect.Value)) {
		if r := redact(v.String()); r != v.String() {
			changed = true
			if set {
				put(protoreflect.ValueOfString(r))
			}
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.StringKind:
					str(l.Get(i), func(nv protoreflect.Value) { l.Set(i, nv) })
				case protoreflect.MessageKind, protoreflect.GroupKind:
					changed = walkStrings(l.Get(i).Message(), redact, set) || changed
				}
			}
		case fd.IsMap():
			mp := v.Map()
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				switch fd.MapValue().Kind() {
				case protoreflect.StringKind:
					str(mv, func(nv protoreflect.Value) { sets = append(sets, func() { mp.Set(k, nv) }) })
				case protoreflect.MessageKind, protoreflect.GroupKind:
					changed = walkStrings(mv.Message(), redact, set) || changed
				}
				return true
			})
		case fd.Kind() == protoreflect.StringKind:
			str(v, func(nv protoreflect.Value) { sets = append(sets, func() { m.Set(fd, nv) }) })
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			changed = walkStrings(v.Message(), redact, set) || changed
		}
		return set || !changed // a check stops at the first change
	})
	for _, f := range sets { // not while ranging
		f()
	}
	return changed
}
