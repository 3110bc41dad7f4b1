package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// grpc-go decodes a call's request before any interceptor runs, and answers a request it cannot
// decode (a string that is not UTF-8, a truncated field) INTERNAL, with no ErrorInfo and no log
// line. That is the caller's error: readableCodec decodes requests like grpc-go's own codec, but
// hands an undecodable one on empty, with why in an unknown field of its own (unreadableField);
// the interceptors then refuse it INVALID_ARGUMENT with the ErrorInfo of a field that breaks a
// rule, logged like any refusal and after authentication, before anything reads it
// (requireReadable, readableStream). The note travels in the message itself, so that a call that
// ends before the interceptors (a second request message, a cancellation) leaves nothing behind.

// unreadableField is the field number of the note: the largest there is, which no message of the
// API uses. A caller that sends it gets its own request refused, nothing more.
const unreadableField protowire.Number = protowire.MaxValidNumber

// readableCodec is the server's codec (grpc.ForceServerCodecV2).
type readableCodec struct{ encoding.CodecV2 }

func newReadableCodec() readableCodec {
	return readableCodec{encoding.GetCodecV2(protocodec.Name)}
}

func (c readableCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if m, ok := v.(proto.Message); ok && err != nil {
		proto.Reset(m)
		note := protowire.AppendTag(nil, unreadableField, protowire.BytesType)
		m.ProtoReflect().SetUnknown(protowire.AppendString(note, err.Error()))
		return nil
	}
	return err
}

// unreadable is why req could not be decoded, if it could not (readableCodec's note).
func unreadable(req any) (string, bool) {
	m, ok := req.(proto.Message)
	if !ok {
		return "", false
	}
	b := m.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == unreadableField && typ == protowire.BytesType {
			why, n := protowire.ConsumeString(b)
			return why, n >= 0
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return "", false
}

// requireReadable refuses a call whose request could not be decoded.
func requireReadable(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if why, ok := unreadable(req); ok {
		return nil, unreadableStatus(why)
	}
	return handler(ctx, req)
}

func unreadableStatus(why string) error {
	return withInfo(codes.InvalidArgument, "the request could not be decoded: "+why, "INVALID_ARGUMENT", nil)
}

// readableStream refuses a stream's request that could not be decoded, as RecvMsg returns it.
func readableStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, readableServerStream{ss})
}

type readableServerStream struct{ grpc.ServerStream }

func (s readableServerStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if why, ok := unreadable(m); ok {
		return unreadableStatus(why)
	}
	return nil
}
