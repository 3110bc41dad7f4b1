package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestETagsOverGRPC: AIP-154 through the server. Every answer that carries an envelope carries
// its etag, the same in a read and in the answer of the change that left it so;
// GetEnvelopeRules' etag is what SetEnvelopeRules checks and SetEnvelopeRules answers the next
// one; a stale etag is ABORTED with an ErrorInfo naming the envelope.
func TestETagsOverGRPC(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	h.buildFund(t)
	ctx := context.Background()
	get := func(name string) *pb.Envelope {
		t.Helper()
		res, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return res.GetEnvelope()
	}
	axis3 := get("envelopes/axis-3")
	if axis3.GetEtag() == "" {
		t.Fatal("GetEnvelope: no etag")
	}
	moved, err := h.envelopes.MoveAllocation(ctx, &pb.MoveAllocationRequest{Source: "envelopes/axis-3", Destination: "envelopes/axis-2",
		Amount: 10, Reason: "r", RequestId: "move-etag-1", Etag: axis3.GetEtag(), DestinationEtag: get("envelopes/axis-2").GetEtag()})
	if err != nil {
		t.Fatalf("MoveAllocation with current etags: %v", err)
	}
	if got := moved.GetSource().GetEtag(); got == axis3.GetEtag() || got != get("envelopes/axis-3").GetEtag() {
		t.Fatalf("the move answered the source's etag %q; before it %q, a read after it %q", got, axis3.GetEtag(), get("envelopes/axis-3").GetEtag())
	}
	_, err = h.envelopes.MoveAllocation(ctx, &pb.MoveAllocationRequest{Source: "envelopes/axis-3", Destination: "envelopes/axis-2",
		Amount: 10, Reason: "r", RequestId: "move-etag-2", Etag: axis3.GetEtag()})
	if code, info := errorInfo(t, err); code != codes.Aborted || info.GetReason() != "ETAG_MISMATCH" || info.GetMetadata()["envelope"] != "envelopes/axis-3" {
		t.Fatalf("a move with a stale etag: %v %v, want ABORTED, ETAG_MISMATCH on envelopes/axis-3", code, info)
	}

	rules, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-3"})
	if err != nil || rules.GetEtag() == "" {
		t.Fatalf("GetEnvelopeRules: %v, etag %q", err, rules.GetEtag())
	}
	set := func(rid, etag string) (*pb.SetEnvelopeRulesResponse, error) {
		return h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/axis-3", Call: "appel-2",
			Rules: &pb.FundingRules{MaxFundingShareBps: proto.Int64(7500)}, RequestId: rid, Etag: etag})
	}
	first, err := set("rules-etag-1", rules.GetEtag())
	if err != nil {
		t.Fatalf("SetEnvelopeRules with the current etag: %v", err)
	}
	after, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-3"})
	if err != nil || first.GetEtag() != after.GetEtag() || first.GetEtag() == rules.GetEtag() {
		t.Fatalf("SetEnvelopeRules answered etag %q; before %q, a read after %q (%v)", first.GetEtag(), rules.GetEtag(), after.GetEtag(), err)
	}
	_, err = set("rules-etag-2", rules.GetEtag())
	if code, info := errorInfo(t, err); code != codes.Aborted || info.GetReason() != "ETAG_MISMATCH" {
		t.Fatalf("a rule change with a stale etag: %v %v, want ABORTED, ETAG_MISMATCH", code, info)
	}
	if _, err := set("rules-etag-2", first.GetEtag()); err != nil {
		t.Fatalf("the same request id with the etag SetEnvelopeRules answered: %v", err)
	}
	h.verify(t)
}
