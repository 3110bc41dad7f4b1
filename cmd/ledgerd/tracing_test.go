package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// collector is an OTLP trace collector on loopback that hands over the names of the spans it
// receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	spans chan string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans <- s.GetName()
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestTracingOffByDefault protects the default: without OTEL_* variables ledgerd exports nothing.
func TestTracingOffByDefault(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	_, logged := runLedgerd(t, "--listen", "127.0.0.1:0", "--database", filepath.Join(t.TempDir(), "ledger.db"))
	if !strings.Contains(logged, "tracing=off") {
		t.Errorf("ledgerd's start line does not say tracing=off:\n%s", logged)
	}
}

// TestTracingExportsOTLP protects tracing through the standard variables: with
// OTEL_EXPORTER_OTLP_ENDPOINT set, every call's span reaches the OTLP collector (by the time
// ledgerd has stopped, which flushes the spans).
func TestTracingExportsOTLP(t *testing.T) {
	col := &collector{spans: make(chan string, 100)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(g, col)
	go g.Serve(lis)
	defer g.Stop()
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())

	ctx, stop := context.WithCancel(context.Background())
	logR, logW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"--listen", "127.0.0.1:0", "--database", filepath.Join(t.TempDir(), "ledger.db")}, logW)
		logW.Close()
	}()
	var log lockedBuffer
	addr := waitListening(t, io.TeeReader(logR, &log))
	if _, err := pb.NewEnvelopeServiceClient(dial(t, addr)).CreateEnvelope(context.Background(),
		&pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 100, RequestId: "r1"}); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("ledgerd: %v", err)
	}
	if !strings.Contains(log.String(), "tracing=otlp/grpc") {
		t.Errorf("ledgerd's start line does not say tracing=otlp/grpc:\n%s", log.String())
	}
	timeout := time.After(30 * time.Second) // only turns a hang into a failure
	for {
		select {
		case name := <-col.spans:
			if name == "budgetledger.v1.EnvelopeService/CreateEnvelope" {
				return
			}
		case <-timeout:
			t.Fatal("the collector received no span of the CreateEnvelope call")
		}
	}
}
