package server_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestHoldToCommitmentOverGRPC is the README's recipe for a file under review: a hold, then its
// confirmation at a lower amount; the rest returns to the envelope at once, and every figure the
// API shows keeps allocation = available + held + committed + allocated to children (invariant
// 10). Replays return the first outcome (invariant 5).
func TestHoldToCommitmentOverGRPC(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		h.buildFund(t)
		ctx := context.Background()
		create := &pb.CreateHoldRequest{Envelope: "envelopes/axis-3", Beneficiary: "commune:29019", Project: "ecole-numerique",
			Amount: 25_000_00, RequestId: "file-2021-0042", EligibleCost: proto.Int64(50_000_00),
			ExpireTime: timestamppb.New(time.Now().Add(90 * 24 * time.Hour))}
		held, err := h.commitments.CreateHold(ctx, create)
		if err != nil {
			t.Fatal(err)
		}
		if hold := held.GetHold(); hold.GetState() != pb.HoldState_HOLD_STATE_HELD || held.GetEnvelope().GetHeld() != 25_000_00 ||
			hold.GetEligibleCost() != 50_000_00 || hold.Population != nil || !strings.HasPrefix(hold.GetName(), "holds/") {
			t.Fatalf("CreateHold = %v", held)
		}
		again, err := h.commitments.CreateHold(ctx, create)
		if err != nil || !proto.Equal(again, held) {
			t.Fatalf("CreateHold replayed = %v, %v; want the first outcome %v", again, err, held)
		}
		confirm := &pb.ConfirmHoldRequest{Hold: held.GetHold().GetName(), Amount: 19_500_00, RequestId: "decision-2021-12-14-0042"}
		confirmed, err := h.commitments.ConfirmHold(ctx, confirm)
		if err != nil {
			t.Fatal(err)
		}
		env := confirmed.GetEnvelope()
		if confirmed.GetCommitment().GetAmount() != 19_500_00 || confirmed.GetHold().GetState() != pb.HoldState_HOLD_STATE_CONFIRMED ||
			confirmed.GetHold().GetCommitment() != confirmed.GetCommitment().GetName() || env.GetHeld() != 0 ||
			env.GetCommitted() != 19_500_00 {
			t.Fatalf("ConfirmHold = %v", confirmed)
		}
		if env.GetAllocation() != env.GetAvailable()+env.GetHeld()+env.GetCommitted()+env.GetAllocatedToChildren() {
			t.Errorf("envelope after confirmation breaks allocation = available + held + committed + children: %v", env)
		}
		got, err := h.commitments.GetHold(ctx, &pb.GetHoldRequest{Name: held.GetHold().GetName()})
		if err != nil || !proto.Equal(got.GetHold(), confirmed.GetHold()) {
			t.Errorf("GetHold = %v, %v; want %v", got, err, confirmed.GetHold())
		}
		list, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{Envelope: "envelopes/axis-3",
			State: pb.HoldState_HOLD_STATE_CONFIRMED, PageSize: 5000})
		if err != nil || len(list.GetHolds()) != 1 {
			t.Errorf("ListHolds(CONFIRMED) = %v, %v", list, err)
		}
		entries, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[pb.EntryKind]int{}
		for _, e := range entries.GetJournalEntries() {
			kinds[e.GetKind()]++
		}
		if kinds[pb.EntryKind_ENTRY_KIND_HOLD_CREATED] != 1 || kinds[pb.EntryKind_ENTRY_KIND_HOLD_CONFIRMED] != 1 {
			t.Errorf("entry kinds %v", kinds)
		}
		h.verify(t)
	})
}

// TestHoldsBadInput is the catalogue of malformed and refused hold requests, through a real server
// on every engine: each is answered with its precise gRPC code and ErrorInfo reason, the same when
// sent again, and leaves the ledger as it was — journal, balances, holds and the auditor's report
// (invariant 7).
func TestHoldsBadInput(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		testHoldsBadInput(t, database)
	})
}

func testHoldsBadInput(t *testing.T, database string) {
	h := start(t, database)
	h.buildFund(t)
	ctx := context.Background()
	mk := func(rid string, amount int64) *pb.Hold {
		resp, err := h.commitments.CreateHold(ctx, &pb.CreateHoldRequest{Envelope: "envelopes/axis-3", Beneficiary: "b",
			Project: "p", Amount: amount, RequestId: rid})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetHold()
	}
	open := mk("open", 1_000)
	done := mk("done", 2_000)
	if _, err := h.commitments.CancelHold(ctx, &pb.CancelHoldRequest{Hold: done.GetName(), Reason: "withdrawn", RequestId: "cancel-done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/axis-2", Call: "appel-1",
		RequestId: "rules", Rules: &pb.FundingRules{MaxFundingShareBps: proto.Int64(5000)}}); err != nil {
		t.Fatal(err)
	}
	watched := []string{"envelopes/fund", "envelopes/axis-1", "envelopes/axis-2", "envelopes/axis-3"}
	holds := func() []*pb.Hold {
		resp, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetHolds()
	}
	before, beforeHolds := h.state(t, watched...), holds()
	n := 0
	nextID := func() string {
		n++
		return fmt.Sprintf("bad-hold-%d", n)
	}
	create := func(mod func(*pb.CreateHoldRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.CreateHoldRequest{Envelope: "envelopes/axis-3", Beneficiary: "b", Project: "p", Amount: 10, RequestId: rid}
			mod(req)
			_, err := h.commitments.CreateHold(ctx, req)
			return err
		}
	}
	confirm := func(mod func(*pb.ConfirmHoldRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.ConfirmHoldRequest{Hold: open.GetName(), RequestId: rid}
			mod(req)
			_, err := h.commitments.ConfirmHold(ctx, req)
			return err
		}
	}
	cancel := func(mod func(*pb.CancelHoldRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.CancelHoldRequest{Hold: open.GetName(), Reason: "r", RequestId: rid}
			mod(req)
			_, err := h.commitments.CancelHold(ctx, req)
			return err
		}
	}
	const (
		invalid = "INVALID_ARGUMENT"
		uuid    = "0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"
	)
	cases := []struct {
		name   string
		call   func(context.Context) error
		code   codes.Code
		reason string
		field  string
	}{
		{"CreateHold amount zero", create(func(r *pb.CreateHoldRequest) { r.Amount = 0 }), codes.InvalidArgument, invalid, "amount"},
		{"CreateHold amount negative", create(func(r *pb.CreateHoldRequest) { r.Amount = math.MinInt64 }), codes.InvalidArgument, invalid, "amount"},
		{"CreateHold more than available", create(func(r *pb.CreateHoldRequest) { r.Amount = 34 * million }), codes.FailedPrecondition, "INSUFFICIENT_FUNDS", ""},
		{"CreateHold envelope unknown", create(func(r *pb.CreateHoldRequest) { r.Envelope = "envelopes/axis-9" }), codes.NotFound, "ENVELOPE_NOT_FOUND", ""},
		{"CreateHold envelope malformed", create(func(r *pb.CreateHoldRequest) { r.Envelope = "axis-3" }), codes.InvalidArgument, invalid, "envelope"},
		{"CreateHold beneficiary missing", create(func(r *pb.CreateHoldRequest) { r.Beneficiary = "" }), codes.InvalidArgument, invalid, "beneficiary"},
		{"CreateHold project with a control character", create(func(r *pb.CreateHoldRequest) { r.Project = "p\x01" }), codes.InvalidArgument, invalid, "project"},
		{"CreateHold description too long", create(func(r *pb.CreateHoldRequest) { r.Description = strings.Repeat("x", 501) }), codes.InvalidArgument, invalid, "description"},
		{"CreateHold eligible cost negative", create(func(r *pb.CreateHoldRequest) { r.EligibleCost = proto.Int64(-1) }), codes.InvalidArgument, invalid, "eligible_cost"},
		{"CreateHold request id with a space", create(func(r *pb.CreateHoldRequest) { r.RequestId = "a b" }), codes.InvalidArgument, invalid, "request_id"},
		{"CreateHold expire time in the past", create(func(r *pb.CreateHoldRequest) {
			r.ExpireTime = timestamppb.New(time.Date(2021, 3, 1, 0, 0, 0, 0, time.UTC))
		}), codes.InvalidArgument, invalid, "expire_time"},
		{"CreateHold expire time 0001-01-01 (the zero time, not 'never')", create(func(r *pb.CreateHoldRequest) {
			r.ExpireTime = timestamppb.New(time.Time{})
		}), codes.InvalidArgument, invalid, "expire_time"},
		{"CreateHold expire time beyond year 9999", create(func(r *pb.CreateHoldRequest) {
			r.ExpireTime = &timestamppb.Timestamp{Seconds: 253402300800}
		}), codes.InvalidArgument, invalid, "expire_time"},
		{"CreateHold effective time nanos out of range", create(func(r *pb.CreateHoldRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: 1, Nanos: 1_000_000_000}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"CreateHold breaking the funding share", create(func(r *pb.CreateHoldRequest) {
			r.Envelope, r.EligibleCost, r.Amount = "envelopes/axis-2", proto.Int64(100), 51
		}), codes.FailedPrecondition, "POLICY_VIOLATION", ""},
		{"CreateHold without the eligible cost a rule needs", create(func(r *pb.CreateHoldRequest) { r.Envelope = "envelopes/axis-2" }),
			codes.FailedPrecondition, "POLICY_VIOLATION", ""},
		{"CreateHold request id reused", create(func(r *pb.CreateHoldRequest) { r.RequestId = "open" }), codes.FailedPrecondition, "REQUEST_ID_REUSED", ""},
		{"ConfirmHold amount negative", confirm(func(r *pb.ConfirmHoldRequest) { r.Amount = -1 }), codes.InvalidArgument, invalid, "amount"},
		{"ConfirmHold more than held", confirm(func(r *pb.ConfirmHoldRequest) { r.Amount = 1_001 }), codes.FailedPrecondition, "CONFIRM_EXCEEDS_HELD", ""},
		{"ConfirmHold hold not a UUID", confirm(func(r *pb.ConfirmHoldRequest) { r.Hold = "holds/42" }), codes.InvalidArgument, invalid, "hold"},
		{"ConfirmHold hold of another collection", confirm(func(r *pb.ConfirmHoldRequest) { r.Hold = "commitments/" + uuid }), codes.InvalidArgument, invalid, "hold"},
		{"ConfirmHold hold unknown", confirm(func(r *pb.ConfirmHoldRequest) { r.Hold = "holds/" + uuid }), codes.NotFound, "HOLD_NOT_FOUND", ""},
		{"ConfirmHold hold cancelled", confirm(func(r *pb.ConfirmHoldRequest) { r.Hold = done.GetName() }), codes.FailedPrecondition, "HOLD_NOT_HELD", ""},
		{"ConfirmHold request id missing", confirm(func(r *pb.ConfirmHoldRequest) { r.RequestId = "" }), codes.InvalidArgument, invalid, "request_id"},
		{"CancelHold reason missing", cancel(func(r *pb.CancelHoldRequest) { r.Reason = "" }), codes.InvalidArgument, invalid, "reason"},
		{"CancelHold hold unknown", cancel(func(r *pb.CancelHoldRequest) { r.Hold = "holds/" + uuid }), codes.NotFound, "HOLD_NOT_FOUND", ""},
		{"CancelHold hold cancelled", cancel(func(r *pb.CancelHoldRequest) { r.Hold = done.GetName() }), codes.FailedPrecondition, "HOLD_NOT_HELD", ""},
		{"CancelHold request id reused for another request", cancel(func(r *pb.CancelHoldRequest) { r.RequestId = "cancel-done" }),
			codes.FailedPrecondition, "REQUEST_ID_REUSED", ""},
		{"GetHold unknown", func(ctx context.Context) error {
			_, err := h.commitments.GetHold(ctx, &pb.GetHoldRequest{Name: "holds/" + uuid})
			return err
		}, codes.NotFound, "HOLD_NOT_FOUND", ""},
		{"GetHold malformed", func(ctx context.Context) error {
			_, err := h.commitments.GetHold(ctx, &pb.GetHoldRequest{Name: "holds/" + strings.ToUpper(uuid)})
			return err
		}, codes.InvalidArgument, invalid, "name"},
		{"ListHolds undefined state", func(ctx context.Context) error {
			_, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{State: pb.HoldState(99)})
			return err
		}, codes.InvalidArgument, invalid, "state"},
		{"ListHolds negative page size", func(ctx context.Context) error {
			_, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, invalid, "page_size"},
		{"ListHolds page token of another listing", func(ctx context.Context) error {
			page, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{PageSize: 1})
			if err != nil {
				return err
			}
			_, err = h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{PageSize: 1, PageToken: page.GetNextPageToken(),
				State: pb.HoldState_HOLD_STATE_HELD})
			return err
		}, codes.InvalidArgument, "INVALID_PAGE_TOKEN", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctx)
			if err == nil {
				t.Fatalf("succeeded, want %v %s", tc.code, tc.reason)
			}
			code, info := errorInfo(t, err)
			if code != tc.code || info.GetReason() != tc.reason {
				t.Fatalf("got %v %s (%v), want %v %s", code, info.GetReason(), err, tc.code, tc.reason)
			}
			if tc.field != "" {
				if fields := badRequestFields(err); len(fields) == 0 || fields[0] != tc.field {
					t.Errorf("BadRequest names %v, want %q first", fields, tc.field)
				}
			}
			if again := tc.call(ctx); status.Code(again) != tc.code {
				t.Errorf("sent again: %v, want %v", again, tc.code)
			}
		})
	}
	if diff := cmp.Diff(before, h.state(t, watched...), protocmp.Transform()); diff != "" {
		t.Errorf("the catalogue changed the ledger (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(beforeHolds, holds(), protocmp.Transform()); diff != "" {
		t.Errorf("the catalogue changed the holds (-before +after):\n%s", diff)
	}
}
