package server_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// TestTracesEveryRPC protects tracing: with a tracer provider, every call — accepted or refused —
// is a server span named after its method, with its gRPC status code, and a caller's W3C
// traceparent makes it a child of the caller's span.
func TestTracesEveryRPC(t *testing.T) {
	t.Parallel()
	spans := make(chan sdktrace.ReadOnlySpan, 16)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(endedSpans(spans)))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	addr, _ := serveLedger(t, server.Config{TracerProvider: tp})
	envelopes := pb.NewEnvelopeServiceClient(dialPlain(t, addr))
	parent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", parent)
	if _, err := envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 100, RequestId: "r1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := envelopes.GetEnvelope(context.Background(), &pb.GetEnvelopeRequest{Name: "envelopes/none"}); err == nil {
		t.Fatal("GetEnvelope of a missing envelope succeeded")
	}
	// A span ends after its reply is sent: wait for both (the bound only turns a hang into a failure).
	got := map[string]sdktrace.ReadOnlySpan{}
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case s := <-spans:
			got[s.Name()] = s
		case <-timeout:
			t.Fatalf("spans ended: %v, want two", got)
		}
	}
	for name, code := range map[string]int64{
		"budgetledger.v1.EnvelopeService/CreateEnvelope": 0, // OK
		"budgetledger.v1.EnvelopeService/GetEnvelope":    5, // NOT_FOUND
	} {
		s, ok := got[name]
		if !ok {
			t.Errorf("no span %s; spans: %v", name, got)
			continue
		}
		if s.SpanKind() != trace.SpanKindServer {
			t.Errorf("%s: kind %v, want server", name, s.SpanKind())
		}
		found := false
		for _, a := range s.Attributes() {
			if a.Key == attribute.Key("rpc.grpc.status_code") || a.Key == attribute.Key("rpc.response.status_code") {
				found = a.Value.AsInt64() == code || a.Value.AsString() == map[int64]string{0: "OK", 5: "NOT_FOUND"}[code]
			}
		}
		if !found {
			t.Errorf("%s: attributes %v, want the gRPC status code %d", name, s.Attributes(), code)
		}
	}
	if s, ok := got["budgetledger.v1.EnvelopeService/CreateEnvelope"]; ok && s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the span's parent trace is %s, want the caller's", s.Parent().TraceID())
	}
}

// endedSpans is a span processor that hands every ended span to a channel.
type endedSpans chan<- sdktrace.ReadOnlySpan

func (e endedSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e endedSpans) OnEnd(s sdktrace.ReadOnlySpan)                   { e <- s }
func (e endedSpans) Shutdown(context.Context) error                  { return nil }
func (e endedSpans) ForceFlush(context.Context) error                { return nil }
