package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// idleStream is a server stream that sends and receives nothing: a server-streaming call (such as
// a journal watch) waiting for something to send.
type idleStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s idleStream) Context() context.Context { return s.ctx }

// TestRevocationEndsIdleStream protects revocation on a stream with nothing to send: the reload
// that drops its token cancels the context its handler waits on, and the stream ends
// UNAUTHENTICATED (not CANCELLED), without a message going either way.
func TestRevocationEndsIdleStream(t *testing.T) {
	t.Parallel()
	token, line, err := MintToken("audrey", RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGuard(a, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	const method = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	p, err := a.admit(ctx, method)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		ended <- g.stream(nil, idleStream{ctx: withPrincipal(ctx, p)}, &grpc.StreamServerInfo{FullMethod: method},
			func(_ any, ss grpc.ServerStream) error {
				close(waiting)
				<-ss.Context().Done()
				return status.FromContextError(ss.Context().Err()).Err()
			})
	}()
	<-waiting
	_, other, err := MintToken("bob", RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; status.Code(err) != codes.Unauthenticated {
		t.Errorf("the idle stream ended with %v, want UNAUTHENTICATED", err)
	}
}
