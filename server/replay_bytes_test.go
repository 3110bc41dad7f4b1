package server_test

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestReplayedRefusalIsTheSameBytes protects the retry contract for refusals: a retry of a
// refused request gets the first answer byte for byte, the status's details included. An
// ErrorInfo's metadata is a map, which protobuf-go encodes in Go's random map order unless asked
// for a deterministic encoding, so the same refusal went out in other bytes on every answer.
func TestReplayedRefusalIsTheSameBytes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, database string) {
		h := start(t, database)
		ctx := context.Background()
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 1000, RequestId: "create-fund"}); err != nil {
			t.Fatal(err)
		}
		answer := func() []byte {
			var trailer metadata.MD
			_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p",
				Amount: 2000, RequestId: "too-much"}, grpc.Trailer(&trailer))
			var info *errdetails.ErrorInfo
			for _, d := range status.Convert(err).Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info.GetReason() != "INSUFFICIENT_FUNDS" || len(info.GetMetadata()) < 2 {
				t.Fatalf("want INSUFFICIENT_FUNDS with its figures, got %v (%v)", err, info)
			}
			raw := trailer.Get("grpc-status-details-bin")
			if len(raw) != 1 {
				t.Fatalf("want one grpc-status-details-bin trailer, got %d", len(raw))
			}
			return []byte(raw[0])
		}
		first := answer()
		for i := range 30 {
			if again := answer(); !bytes.Equal(again, first) {
				t.Fatalf("retry %d answered other bytes than the first answer:\n%x\n%x", i+1, again, first)
			}
		}
	})
}
