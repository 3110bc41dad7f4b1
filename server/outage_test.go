package server_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// TestDatabaseOutage takes PostgreSQL away from a running server (through a proxy the test cuts):
// health turns NOT_SERVING, calls fail fast with UNAVAILABLE instead of hanging and post nothing
// (invariant 7); when the database returns, health turns SERVING again without a restart and calls
// succeed.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	database := testdb.Postgres(t)
	u, err := url.Parse(database)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testdb.NewProxy(t, u.Host)
	// The ledger's own deadline is what ends the call during the outage: long enough that a busy
	// machine never reaches it while the database is up, and well below the test's.
	const txTimeout = 20 * time.Second
	h := startWith(t, proxy.Via(t, database), ledger.Config{TxTimeout: txTimeout},
		server.Config{HealthInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 1000, RequestId: "fund"}); err != nil {
		t.Fatal(err)
	}
	watch, err := healthpb.NewHealthClient(h.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			resp, err := watch.Recv()
			if err != nil {
				t.Fatalf("health watch: %v", err)
			}
			if resp.GetStatus() == want {
				return
			}
		}
	}
	waitFor(healthpb.HealthCheckResponse_SERVING)

	proxy.Cut()
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
	_, err = h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p", Amount: 10, RequestId: "during-outage"})
	code, info := errorInfo(t, err)
	if code != codes.Unavailable || info.GetReason() != "STORE_UNAVAILABLE" {
		t.Errorf("commit during the outage: %v %s, want Unavailable STORE_UNAVAILABLE", code, info.GetReason())
	}
	hasRetryInfo := false
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			hasRetryInfo = true
		}
	}
	if !hasRetryInfo {
		t.Error("UNAVAILABLE carries no RetryInfo telling clients when to retry")
	}
	// That the call ended with UNAVAILABLE, not with the test's own deadline (DEADLINE_EXCEEDED,
	// minutes later), shows that every database call has a deadline; how fast it came is the
	// machine's business.

	proxy.Restore()
	waitFor(healthpb.HealthCheckResponse_SERVING)
	// The same request id is still free: the failed attempt recorded nothing.
	resp, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p", Amount: 10, RequestId: "during-outage"})
	if err != nil {
		t.Fatalf("commit after the outage: %v", err)
	}
	if got := resp.GetEnvelope().GetCommitted(); got != 10 {
		t.Errorf("committed = %d after one award of 10", got)
	}
	if n := h.journalSize(t); n != 2 {
		t.Errorf("journal holds %d entries, want 2 (fund, one award)", n)
	}
	h.verify(t)
}
