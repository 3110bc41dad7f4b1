package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestRefusalsOfTextShowHiddenCharacters: the refusal of a free text that breaks the pattern quotes
// the pattern, which names the characters it keeps out; the message and its BadRequest description
// show them escaped (\u202E), never as themselves, or a right-to-left override would turn the rest
// of the line around in the caller's terminal or log.
func TestRefusalsOfTextShowHiddenCharacters(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	_, err := h.envelopes.CreateEnvelope(context.Background(), &pb.CreateEnvelopeRequest{EnvelopeId: "u5",
		DisplayName: "a\u202eb", Allocation: 1, RequestId: "u5"})
	st := status.Convert(err)
	texts := []string{st.Message()}
	for _, d := range st.Details() {
		if bad, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range bad.GetFieldViolations() {
				texts = append(texts, v.GetDescription())
			}
		}
	}
	if len(texts) < 2 || !strings.Contains(st.Message(), "display_name") {
		t.Fatalf("the refusal: %v, want INVALID_ARGUMENT on display_name with a BadRequest", err)
	}
	for _, s := range texts {
		if strings.ContainsFunc(s, core.IsHiddenControl) || !strings.Contains(s, `\u202E`) {
			t.Errorf("%q: shows a hidden character as itself, or not escaped", s)
		}
	}
}

// TestMessageRulesNameTheirRule: a rule of a whole request (a move's source and destination must
// differ) names no field; its ErrorInfo names the rule instead of an empty field.
func TestMessageRulesNameTheirRule(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	_, err := h.envelopes.MoveAllocation(context.Background(), &pb.MoveAllocationRequest{Source: "envelopes/a",
		Destination: "envelopes/a", Amount: 1, Reason: "r", RequestId: "m1"})
	code, info := errorInfo(t, err)
	if _, hasField := info.GetMetadata()["field"]; code != codes.InvalidArgument || hasField || info.GetMetadata()["rule"] != "move.distinct_envelopes" {
		t.Errorf("a move to itself: %v (ErrorInfo %v), want INVALID_ARGUMENT naming the rule move.distinct_envelopes", err, info)
	}
}
