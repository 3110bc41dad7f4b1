package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

func bulkItems(n int, amount int64) []*pb.BatchCommitItem {
	items := make([]*pb.BatchCommitItem, n)
	for i := range items {
		items[i] = &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("commune:%05d", i), Project: fmt.Sprintf("projet-%d", i), Amount: amount}
	}
	return items
}

// TestBatchCommit checks bulk awards: each item decided on its own in order (invariant 2 holds
// item by item), all-or-nothing refusing the whole call and posting nothing (7), and a retry of the
// call replaying the first outcome item by item without posting again (5).
func TestBatchCommit(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		// A 1,200-award transaction takes about 0.3 s on SQLite, but twenty times that under the
		// race detector (SQLite here is C translated to Go): allow for it.
		h := startWith(t, database, ledger.Config{TxTimeout: testdb.TxTimeout}, server.Config{})
		ctx := context.Background()
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-3", Allocation: 1000_00, RequestId: "axis-3"}); err != nil {
			t.Fatal(err)
		}

		// 1,200 awards of 1 € on an envelope of 1,000 €: the first 1,000 accepted, the rest refused.
		req := &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", Items: bulkItems(1200, 100), RequestId: "committee-2021-07"}
		resp, err := h.commitments.BatchCommit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetAcceptedCount() != 1000 || resp.GetRefusedCount() != 200 {
			t.Fatalf("accepted %d, refused %d; want 1000 and 200", resp.GetAcceptedCount(), resp.GetRefusedCount())
		}
		for i, r := range resp.GetResults() {
			accepted := r.GetCommitment() != nil
			if accepted != (i < 1000) {
				t.Fatalf("item %d accepted=%v: items must be decided in order", i, accepted)
			}
			if !accepted && (r.GetRefusal().GetReason() != "INSUFFICIENT_FUNDS" || r.GetRefusal().GetMetadata()["available"] != "0") {
				t.Fatalf("item %d refusal %v", i, r.GetRefusal())
			}
		}
		if e := resp.GetEnvelope(); e.GetAvailable() != 0 || e.GetCommitmentCount() != 1000 {
			t.Errorf("envelope after the call: %v", e)
		}
		entries := h.journalSize(t)

		// The same call again: the same answer, nothing posted.
		again, err := h.commitments.BatchCommit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(resp, again, protocmp.Transform()); diff != "" {
			t.Errorf("retry of the call got another answer (-first +retry):\n%s", diff)
		}
		// The same request id with one item changed is another request.
		changed := &pb.BatchCommitRequest{Envelope: req.GetEnvelope(), Items: bulkItems(1200, 100), RequestId: req.GetRequestId()}
		changed.Items[7].Amount = 101
		if _, info := errorInfo(t, second(h.commitments.BatchCommit(ctx, changed))); info.GetReason() != "REQUEST_ID_REUSED" {
			t.Errorf("changed call under the same request id: %s, want REQUEST_ID_REUSED", info.GetReason())
		}
		if n := h.journalSize(t); n != entries {
			t.Errorf("replays posted %d entries", n-entries)
		}

		// All or nothing: 3 awards of which the last does not fit, on a fresh envelope.
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-1", Allocation: 250, RequestId: "axis-1"}); err != nil {
			t.Fatal(err)
		}
		aon := &pb.BatchCommitRequest{Envelope: "envelopes/axis-1", Items: bulkItems(3, 100), AllOrNothing: true, RequestId: "committee-aon"}
		code, info := errorInfo(t, second(h.commitments.BatchCommit(ctx, aon)))
		if code != codes.FailedPrecondition || info.GetReason() != "INSUFFICIENT_FUNDS" || info.GetMetadata()["item"] != "2" ||
			info.GetMetadata()["available"] != "50" {
			t.Errorf("all-or-nothing refusal: %v %s %v", code, info.GetReason(), info.GetMetadata())
		}
		env, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/axis-1"})
		if err != nil {
			t.Fatal(err)
		}
		if env.GetEnvelope().GetCommitted() != 0 || env.GetEnvelope().GetCommitmentCount() != 0 {
			t.Errorf("a refused all-or-nothing call left %v", env.GetEnvelope())
		}
		// Its refusal is its outcome: retried, it is refused the same way.
		if _, info := errorInfo(t, second(h.commitments.BatchCommit(ctx, aon))); info.GetMetadata()["item"] != "2" {
			t.Errorf("retried all-or-nothing call: %v", info.GetMetadata())
		}
		aon.Items = aon.Items[:2]
		aon.RequestId = "committee-aon-2"
		if resp, err := h.commitments.BatchCommit(ctx, aon); err != nil || resp.GetAcceptedCount() != 2 {
			t.Errorf("all-or-nothing call that fits: %v, %v", resp, err)
		}
		h.verify(t)
	})
}
