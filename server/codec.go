package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// grpc-go decodes a call's request before any interceptor runs, and answers a request it cannot
// decode (a string that is not UTF-8, a truncated field) INTERNAL, with no ErrorInfo and no log
// line. That is the caller's error: readableCodec decodes requests like grpc-go's own codec, but
// hands an undecodable one on empty, noting why (unreadable); the interceptors then refuse it
// INVALID_ARGUMENT with the ErrorInfo of a field that breaks a rule, logged like any refusal and
// after authentication, before anything reads it (requireReadable, readableStream).

// readableCodec is the server's codec (grpc.ForceServerCodecV2).
type readableCodec struct{ encoding.CodecV2 }

func newReadableCodec() readableCodec {
	return readableCodec{encoding.GetCodecV2(protocodec.Name)}
}

// unreadable maps a request message that could not be decoded to the decoder's error, from its
// decoding to the first interceptor (unary) or to RecvMsg's return (streams).
var unreadable sync.Map

func (c readableCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if m, ok := v.(proto.Message); ok && err != nil {
		proto.Reset(m)
		unreadable.Store(v, err)
		return nil
	}
	return err
}

// unreadableKey holds, in a call's context, why its request could not be decoded.
type unreadableKey struct{}

// takeUnreadable is the first interceptor: it takes the request's note out of unreadable (so that
// a call refused before requireReadable leaves nothing behind) into the call's context.
func takeUnreadable(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err, ok := unreadable.LoadAndDelete(req); ok {
		ctx = context.WithValue(ctx, unreadableKey{}, err.(error))
	}
	return handler(ctx, req)
}

// requireReadable refuses a call whose request could not be decoded.
func requireReadable(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err, ok := ctx.Value(unreadableKey{}).(error); ok {
		return nil, unreadableStatus(err)
	}
	return handler(ctx, req)
}

func unreadableStatus(err error) error {
	return withInfo(codes.InvalidArgument, "the request could not be decoded: "+err.Error(), "INVALID_ARGUMENT", nil)
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
	if err, ok := unreadable.LoadAndDelete(m); ok {
		return unreadableStatus(err.(error))
	}
	return nil
}
