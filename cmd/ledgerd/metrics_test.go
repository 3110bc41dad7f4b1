package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

var metricsLine = regexp.MustCompile(`msg="metrics listening" address=(\S+)`)

// TestMetricsEndpoint checks that --metrics-listen serves per-RPC counts and latencies and the
// ledger's own metrics (batch sizes, envelope available amounts), and nothing when it is off.
func TestMetricsEndpoint(t *testing.T) {
	t.Chdir(t.TempDir())
	addr, logged := runLedgerd(t, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
	m := metricsLine.FindStringSubmatch(logged)
	if m == nil {
		t.Fatalf("ledgerd did not log where it serves metrics:\n%s", logged)
	}
	metricsURL := m[1]
	conn := dial(t, addr)
	if _, err := pb.NewEnvelopeServiceClient(conn).CreateEnvelope(context.Background(),
		&pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 1000, RequestId: "fund"}); err != nil {
		t.Fatal(err)
	}
	commitments := pb.NewCommitmentServiceClient(conn)
	awarded, err := commitments.Commit(context.Background(),
		&pb.CommitRequest{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p", Amount: 400, RequestId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commitments.Release(context.Background(), &pb.ReleaseRequest{
		Commitment: awarded.GetCommitment().GetName(), Amount: 100, Reason: "r", RequestId: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Commit",grpc_service="budgetledger.v1.CommitmentService",grpc_type="unary"} 1`,
		`grpc_server_handling_seconds_count{grpc_method="CreateEnvelope",grpc_service="budgetledger.v1.EnvelopeService",grpc_type="unary"} 1`,
		`ledger_batch_size_count 2`,
		`ledger_batch_phase_seconds_count{phase="write"} 2`,
		`ledger_envelope_available_minor_units{currency="EUR",envelope="envelopes/fund"} 700`,
		`ledger_routes_total{by="remembered",of="commitment"} 1`,
		`ledger_queue_depth{queue="`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
