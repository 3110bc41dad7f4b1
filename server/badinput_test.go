package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// rawCodec sends a request's bytes exactly as given, so that a test can put on the wire what no
// generated client would (invalid UTF-8 in a string field, a varint longer than 64 bits). It
// keeps the name "proto": the server decodes the bytes with its own proto codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// invokeRaw calls method with raw request bytes.
func invokeRaw(ctx context.Context, conn *grpc.ClientConn, method string, req []byte) error {
	var reply []byte
	return conn.Invoke(ctx, method, &req, &reply, grpc.ForceCodecV2(rawCodec{}))
}

// wire builds the protobuf encoding of a message field by field.
type wire []byte

func (w wire) str(num protowire.Number, s string) wire {
	return protowire.AppendString(protowire.AppendTag(w, num, protowire.BytesType), s)
}

func (w wire) varint(num protowire.Number, v uint64) wire {
	return protowire.AppendVarint(protowire.AppendTag(w, num, protowire.VarintType), v)
}

// ledgerState is everything a refused request must leave as it was.
type ledgerState struct {
	JournalSize int
	Audit       *pb.VerifyLedgerResponse
	Envelopes   []*pb.Envelope
	Commitments []*pb.Commitment
}

func (h *harness) state(t *testing.T, envelopes ...string) ledgerState {
	t.Helper()
	ctx := context.Background()
	s := ledgerState{JournalSize: h.journalSize(t)}
	var err error
	if s.Audit, err = pb.NewAuditServiceClient(h.conn).VerifyLedger(ctx, &pb.VerifyLedgerRequest{}); err != nil {
		t.Fatalf("VerifyLedger: %v", err)
	}
	for _, name := range envelopes {
		resp, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: name})
		if err != nil {
			t.Fatalf("GetEnvelope(%s): %v", name, err)
		}
		s.Envelopes = append(s.Envelopes, resp.GetEnvelope())
	}
	resp, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListCommitments: %v", err)
	}
	s.Commitments = resp.GetCommitments()
	return s
}

// TestBadInput is the catalogue of malformed and refused requests, sent through a real server on
// a real database. Each must be answered with its precise gRPC code and ErrorInfo reason (the
// contract clients switch on, README "Errors"), and leave the ledger as it was: the same journal,
// the same balances, the same commitments, and the auditor's report (counts and findings)
// unchanged (invariant 7: a failure returned to a caller posted nothing).
//
// A request whose bytes do not decode (invalid UTF-8 in a proto3 string, a varint longer than ten
// bytes) is INVALID_ARGUMENT with an ErrorInfo too: grpc-go would refuse it INTERNAL, without one,
// before any interceptor (server/codec.go).
func TestBadInput(t *testing.T) {
	t.Parallel()
	// On every engine: some input only PostgreSQL chokes on (a NUL in text).
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		testBadInput(t, database)
	})
}

func testBadInput(t *testing.T, database string) {
	h := start(t, database)
	h.buildFund(t)
	ctx := context.Background()
	for _, req := range []*pb.CreateEnvelopeRequest{
		{EnvelopeId: "big", Allocation: math.MaxInt64 - 10, RequestId: "big"},
		{EnvelopeId: "small", Allocation: 100, RequestId: "small"},
		{EnvelopeId: "dollars", CurrencyCode: "USD", Allocation: 1000, RequestId: "dollars"},
	} {
		if _, err := h.envelopes.CreateEnvelope(ctx, req); err != nil {
			t.Fatalf("CreateEnvelope(%s): %v", req.GetEnvelopeId(), err)
		}
	}
	award, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "guichet-numerique", Amount: 1_000, RequestId: "award-1"})
	if err != nil {
		t.Fatal(err)
	}
	commitment := award.GetCommitment().GetName()
	batch := &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", RequestId: "committee-1", Items: []*pb.BatchCommitItem{
		{Beneficiary: "commune:29019", Project: "ecole-numerique", Amount: 1_940_000}}}
	if _, err := h.commitments.BatchCommit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	page, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{Parent: "envelopes/fund", PageSize: 1})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("ListEnvelopes: %v, next page %q", err, page.GetNextPageToken())
	}
	otherFilterToken := page.GetNextPageToken()
	reports := pb.NewReportServiceClient(h.conn)
	audit := pb.NewAuditServiceClient(h.conn)
	firstPage, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", PageSize: 1})
	if err != nil || firstPage.GetNextPageToken() == "" {
		t.Fatalf("GetFundingReport: %v, next page %q", err, firstPage.GetNextPageToken())
	}
	reportToken := firstPage.GetNextPageToken()
	// Report sums: an award of nearly the largest amount, released, then made again, has awarded
	// twice that, which no int64 holds.
	for _, rid := range []string{"huge-1", "huge-2"} {
		huge, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/big", Beneficiary: "b", Project: "p",
			Amount: math.MaxInt64 - 10, RequestId: rid})
		if err != nil {
			t.Fatalf("Commit near the largest amount: %v", err)
		}
		if rid == "huge-1" {
			if _, err := h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: huge.GetCommitment().GetName(),
				Amount: math.MaxInt64 - 10, Reason: "abandoned", RequestId: "huge-release"}); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
	}
	// Payments and closing (issue 13): a commitment partly paid, and one closed.
	paidAward, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "paid", Amount: 1_000, RequestId: "award-paid"})
	if err != nil {
		t.Fatal(err)
	}
	paid := paidAward.GetCommitment().GetName()
	if _, err := h.commitments.CreatePayment(ctx, &pb.CreatePaymentRequest{Parent: paid, Amount: 400, RequestId: "pay-1"}); err != nil {
		t.Fatal(err)
	}
	closedAward, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "closed", Amount: 1_000, RequestId: "award-closed"})
	if err != nil {
		t.Fatal(err)
	}
	closed := closedAward.GetCommitment().GetName()
	if _, err := h.commitments.CloseCommitment(ctx, &pb.CloseCommitmentRequest{Commitment: closed, Reason: "abandoned", RequestId: "close-1"}); err != nil {
		t.Fatal(err)
	}
	watched := []string{"envelopes/fund", "envelopes/axis-1", "envelopes/axis-2", "envelopes/axis-3",
		"envelopes/big", "envelopes/small", "envelopes/dollars"}
	before := h.state(t, watched...)
	if len(before.Audit.GetDiscrepancies()) != 0 {
		t.Fatalf("the ledger is unsound before the catalogue: %v", before.Audit.GetDiscrepancies())
	}

	// Every case has a request id of its own, kept when it is sent again.
	n := 0
	nextID := func() string {
		n++
		return fmt.Sprintf("bad-%d", n)
	}
	report := func(req *pb.GetFundingReportRequest) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := reports.GetFundingReport(ctx, req)
			return err
		}
	}
	setRules := func(mod func(*pb.SetEnvelopeRulesRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/axis-2", Call: "appel-2", RequestId: rid,
				Rules: &pb.FundingRules{AwardWindow: &pb.AwardWindow{StartTime: timestamppb.New(time.Date(2021, 9, 20, 0, 0, 0, 0, time.UTC))}}}
			mod(req)
			_, err := h.envelopes.SetEnvelopeRules(ctx, req)
			return err
		}
	}
	// A page token as a client could forge it: a cursor with a NUL, for the listing's filters.
	forgedToken := func(filterKey, after string) string {
		sum := sha256.Sum256([]byte(filterKey))
		raw, _ := json.Marshal(map[string]any{"v": 1, "a": after, "f": hex.EncodeToString(sum[:8])})
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	commit := func(mod func(*pb.CommitRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.CommitRequest{Envelope: "envelopes/axis-2", Beneficiary: "siren:200054781", Project: "p",
				Amount: 500, RequestId: rid}
			mod(req)
			_, err := h.commitments.Commit(ctx, req)
			return err
		}
	}
	release := func(mod func(*pb.ReleaseRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.ReleaseRequest{Commitment: commitment, Amount: 10, Reason: "cheaper", RequestId: rid}
			mod(req)
			_, err := h.commitments.Release(ctx, req)
			return err
		}
	}
	create := func(mod func(*pb.CreateEnvelopeRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.CreateEnvelopeRequest{EnvelopeId: "line-1", Parent: "envelopes/axis-1", Allocation: 10, RequestId: rid}
			mod(req)
			_, err := h.envelopes.CreateEnvelope(ctx, req)
			return err
		}
	}
	move := func(mod func(*pb.MoveAllocationRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.MoveAllocationRequest{Source: "envelopes/axis-3", Destination: "envelopes/axis-2", Amount: 10,
				Reason: "rebalancing", RequestId: rid}
			mod(req)
			_, err := h.envelopes.MoveAllocation(ctx, req)
			return err
		}
	}
	batchCommit := func(mod func(*pb.BatchCommitRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", RequestId: rid, Items: []*pb.BatchCommitItem{
				{Beneficiary: "commune:35238", Project: "portail-citoyen", Amount: 2_500_000}}}
			mod(req)
			_, err := h.commitments.BatchCommit(ctx, req)
			return err
		}
	}
	rules := func(mod func(*pb.SetEnvelopeRulesRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/axis-3", Call: "appel-1",
				Rules: &pb.FundingRules{MaxFundingShareBps: proto.Int64(5000)}, RequestId: rid}
			mod(req)
			_, err := h.envelopes.SetEnvelopeRules(ctx, req)
			return err
		}
	}
	pay := func(mod func(*pb.CreatePaymentRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.CreatePaymentRequest{Parent: paid, Amount: 10, RequestId: rid}
			mod(req)
			_, err := h.commitments.CreatePayment(ctx, req)
			return err
		}
	}
	closeCommitment := func(mod func(*pb.CloseCommitmentRequest)) func(context.Context) error {
		rid := nextID()
		return func(ctx context.Context) error {
			req := &pb.CloseCommitmentRequest{Commitment: closed, Reason: "completed", RequestId: rid}
			mod(req)
			_, err := h.commitments.CloseCommitment(ctx, req)
			return err
		}
	}
	items := func(n int) []*pb.BatchCommitItem {
		out := make([]*pb.BatchCommitItem, n)
		for i := range out {
			out[i] = &pb.BatchCommitItem{Beneficiary: "b", Project: "p", Amount: 1}
		}
		return out
	}
	const (
		invalid   = "INVALID_ARGUMENT"
		badToken  = "INVALID_PAGE_TOKEN"
		noFunds   = "INSUFFICIENT_FUNDS"
		reused    = "REQUEST_ID_REUSED"
		noEnv     = "ENVELOPE_NOT_FOUND"
		noCommit  = "COMMITMENT_NOT_FOUND"
		uuid      = "0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"
		maxVarint = math.MaxUint64
	)
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name   string
		call   func(context.Context) error
		code   codes.Code
		reason string
		field  string // the field the BadRequest names first, when there is one to check
	}{
		// Amounts: zero, negative, overflowing.
		{"Commit amount zero", commit(func(r *pb.CommitRequest) { r.Amount = 0 }), codes.InvalidArgument, invalid, "amount"},
		{"Commit amount negative", commit(func(r *pb.CommitRequest) { r.Amount = -500 }), codes.InvalidArgument, invalid, "amount"},
		{"Commit amount MinInt64", commit(func(r *pb.CommitRequest) { r.Amount = math.MinInt64 }), codes.InvalidArgument, invalid, "amount"},
		{"Commit amount 2^64-1 on the wire (decodes as -1)", func(ctx context.Context) error {
			return invokeRaw(ctx, h.conn, pb.CommitmentService_Commit_FullMethodName, wire(nil).
				str(1, "envelopes/axis-2").str(2, "b").str(3, "p").varint(4, maxVarint).str(6, "bad-wire-1"))
		}, codes.InvalidArgument, invalid, "amount"},
		{"Commit amount varint longer than 64 bits", func(ctx context.Context) error {
			w := protowire.AppendTag(wire(nil).str(1, "envelopes/axis-2").str(2, "b").str(3, "p"), 4, protowire.VarintType)
			w = append(w, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
			return invokeRaw(ctx, h.conn, pb.CommitmentService_Commit_FullMethodName, wire(w).str(6, "bad-wire-2"))
		}, codes.InvalidArgument, invalid, ""},
		{"Commit more than available", commit(func(r *pb.CommitRequest) { r.Amount = 24*million + 1 }), codes.FailedPrecondition, noFunds, ""},
		{"CreateEnvelope allocation zero", create(func(r *pb.CreateEnvelopeRequest) { r.Allocation = 0 }), codes.InvalidArgument, invalid, "allocation"},
		{"CreateEnvelope allocation negative", create(func(r *pb.CreateEnvelopeRequest) { r.Allocation = -1 }), codes.InvalidArgument, invalid, "allocation"},
		{"CreateEnvelope child above the parent", create(func(r *pb.CreateEnvelopeRequest) { r.Allocation = 30*million - 999 }), codes.FailedPrecondition, noFunds, ""},
		{"MoveAllocation amount zero", move(func(r *pb.MoveAllocationRequest) { r.Amount = 0 }), codes.InvalidArgument, invalid, "amount"},
		{"MoveAllocation overflowing the destination", move(func(r *pb.MoveAllocationRequest) {
			r.Source, r.Destination, r.Amount = "envelopes/small", "envelopes/big", 50
		}), codes.FailedPrecondition, "AMOUNT_OVERFLOW", ""},
		{"MoveAllocation more than available", move(func(r *pb.MoveAllocationRequest) { r.Amount = 34*million - 1_940_000 + 1 }), codes.FailedPrecondition, noFunds, ""},
		{"Release amount zero", release(func(r *pb.ReleaseRequest) { r.Amount = 0 }), codes.InvalidArgument, invalid, "amount"},
		{"Release more than remaining", release(func(r *pb.ReleaseRequest) { r.Amount = 1_001 }), codes.FailedPrecondition, "RELEASE_EXCEEDS_REMAINING", ""},

		// Names: malformed or unknown.
		{"Commit envelope without collection", commit(func(r *pb.CommitRequest) { r.Envelope = "axis-2" }), codes.InvalidArgument, invalid, "envelope"},
		{"Commit envelope upper case", commit(func(r *pb.CommitRequest) { r.Envelope = "envelopes/Axis-2" }), codes.InvalidArgument, invalid, "envelope"},
		{"Commit envelope unknown", commit(func(r *pb.CommitRequest) { r.Envelope = "envelopes/axis-9" }), codes.NotFound, noEnv, ""},
		{"CreateEnvelope id 64 characters", create(func(r *pb.CreateEnvelopeRequest) { r.EnvelopeId = "a" + long(63) }), codes.InvalidArgument, invalid, "envelope_id"},
		{"CreateEnvelope id ending with a hyphen", create(func(r *pb.CreateEnvelopeRequest) { r.EnvelopeId = "line-" }), codes.InvalidArgument, invalid, "envelope_id"},
		{"CreateEnvelope id taken", create(func(r *pb.CreateEnvelopeRequest) { r.EnvelopeId = "axis-2" }), codes.AlreadyExists, "ENVELOPE_ALREADY_EXISTS", ""},
		{"CreateEnvelope parent unknown", create(func(r *pb.CreateEnvelopeRequest) { r.Parent = "envelopes/nowhere" }), codes.NotFound, noEnv, ""},
		{"MoveAllocation to itself", move(func(r *pb.MoveAllocationRequest) { r.Destination = r.Source }), codes.InvalidArgument, invalid, ""},
		{"MoveAllocation between unrelated envelopes", move(func(r *pb.MoveAllocationRequest) { r.Source = "envelopes/small" }), codes.FailedPrecondition, "ENVELOPES_NOT_RELATED", ""},
		{"Release commitment not a UUID", release(func(r *pb.ReleaseRequest) { r.Commitment = "commitments/42" }), codes.InvalidArgument, invalid, "commitment"},
		{"Release commitment of 36 hyphens", release(func(r *pb.ReleaseRequest) { r.Commitment = "commitments/" + strings.Repeat("-", 36) }), codes.InvalidArgument, invalid, "commitment"},
		{"GetCommitment name UUID in upper case", func(ctx context.Context) error {
			_, err := h.commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: "commitments/" + strings.ToUpper(uuid)})
			return err
		}, codes.InvalidArgument, invalid, "name"},
		{"ListJournalEntries commitment not a UUID", func(ctx context.Context) error {
			_, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{Commitment: "commitments/0190f7a2-8f7b-7c1d-9b1e3f4a5b6c7d8e-"})
			return err
		}, codes.InvalidArgument, invalid, "commitment"},
		{"Release commitment unknown", release(func(r *pb.ReleaseRequest) { r.Commitment = "commitments/" + uuid }), codes.NotFound, noCommit, ""},
		{"GetEnvelope malformed", func(ctx context.Context) error {
			_, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/"})
			return err
		}, codes.InvalidArgument, invalid, "name"},
		{"GetCommitment unknown", func(ctx context.Context) error {
			_, err := h.commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: "commitments/" + uuid})
			return err
		}, codes.NotFound, noCommit, ""},

		// Currency.
		{"CreateEnvelope currency lower case", create(func(r *pb.CreateEnvelopeRequest) { r.CurrencyCode = "eur" }), codes.InvalidArgument, invalid, "currency_code"},
		{"CreateEnvelope currency not in ISO 4217", create(func(r *pb.CreateEnvelopeRequest) { r.Parent, r.CurrencyCode = "", "ABC" }), codes.InvalidArgument, invalid, "currency_code"},
		{"CreateEnvelope currency XXX (no currency)", create(func(r *pb.CreateEnvelopeRequest) { r.Parent, r.CurrencyCode = "", "XXX" }), codes.InvalidArgument, invalid, "currency_code"},
		{"CreateEnvelope child in another currency", create(func(r *pb.CreateEnvelopeRequest) { r.CurrencyCode = "USD" }), codes.FailedPrecondition, "CURRENCY_MISMATCH", ""},
		{"MoveAllocation across currencies", move(func(r *pb.MoveAllocationRequest) { r.Source, r.Destination = "envelopes/dollars", "envelopes/small" }), codes.FailedPrecondition, "CURRENCY_MISMATCH", ""},

		// Strings: empty, oversized, control characters, invalid UTF-8.
		{"Commit beneficiary empty", commit(func(r *pb.CommitRequest) { r.Beneficiary = "" }), codes.InvalidArgument, invalid, "beneficiary"},
		{"Commit beneficiary 201 characters", commit(func(r *pb.CommitRequest) { r.Beneficiary = long(201) }), codes.InvalidArgument, invalid, "beneficiary"},
		{"Commit project with a NUL", commit(func(r *pb.CommitRequest) { r.Project = "p\x00q" }), codes.InvalidArgument, invalid, "project"},
		{"Commit description 501 characters", commit(func(r *pb.CommitRequest) { r.Description = long(501) }), codes.InvalidArgument, invalid, "description"},
		// Every free-text field and list filter refuses control characters in the .proto (issue 18).
		{"Commit description with a line break", commit(func(r *pb.CommitRequest) { r.Description = "a\nb" }), codes.InvalidArgument, invalid, "description"},
		{"BatchCommit item description with a line break", batchCommit(func(r *pb.BatchCommitRequest) { r.Items[0].Description = "a\nb" }), codes.InvalidArgument, invalid, "items[0].description"},
		{"Release reason with a line break", release(func(r *pb.ReleaseRequest) { r.Reason = "a\nb" }), codes.InvalidArgument, invalid, "reason"},
		{"MoveAllocation reason with a tab", move(func(r *pb.MoveAllocationRequest) { r.Reason = "a\tb" }), codes.InvalidArgument, invalid, "reason"},
		{"CreateEnvelope display name with DEL", create(func(r *pb.CreateEnvelopeRequest) { r.DisplayName = "a\x7fb" }), codes.InvalidArgument, invalid, "display_name"},
		{"Commit beneficiary with a right-to-left override", commit(func(r *pb.CommitRequest) { r.Beneficiary = "siren:\u202e123" }), codes.InvalidArgument, invalid, "beneficiary"},
		{"Commit project with a C1 control", commit(func(r *pb.CommitRequest) { r.Project = "a\u0085b" }), codes.InvalidArgument, invalid, "project"},
		{"Commit beneficiary a zero-width space", commit(func(r *pb.CommitRequest) { r.Beneficiary = "\u200b" }), codes.InvalidArgument, invalid, "beneficiary"},
		{"ListCommitments beneficiary filter with a NUL", func(ctx context.Context) error {
			_, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{Beneficiary: "siren:\x00"})
			return err
		}, codes.InvalidArgument, invalid, "beneficiary"},
		{"Commit beneficiary invalid UTF-8", func(ctx context.Context) error {
			return invokeRaw(ctx, h.conn, pb.CommitmentService_Commit_FullMethodName, wire(nil).
				str(1, "envelopes/axis-2").str(2, "siren:\xff\xfe").str(3, "p").varint(4, 500).str(6, "bad-utf8"))
		}, codes.InvalidArgument, invalid, ""},
		{"CreateEnvelope display name 201 characters", create(func(r *pb.CreateEnvelopeRequest) { r.DisplayName = long(201) }), codes.InvalidArgument, invalid, "display_name"},
		{"MoveAllocation reason empty", move(func(r *pb.MoveAllocationRequest) { r.Reason = "" }), codes.InvalidArgument, invalid, "reason"},
		{"Release reason 501 characters", release(func(r *pb.ReleaseRequest) { r.Reason = long(501) }), codes.InvalidArgument, invalid, "reason"},

		// Times: within the years 0001 to 9999; an award window starts before it ends.
		{"SetEnvelopeRules effective time in the year 10000", rules(func(r *pb.SetEnvelopeRulesRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: 253402300800}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"SetEnvelopeRules award window ending when it starts", rules(func(r *pb.SetEnvelopeRulesRequest) {
			at := timestamppb.New(time.Date(2021, 11, 22, 0, 0, 0, 0, time.UTC))
			r.Rules = &pb.FundingRules{AwardWindow: &pb.AwardWindow{StartTime: at, EndTime: at}}
		}), codes.InvalidArgument, invalid, "rules.award_window"},
		// 0001-01-01T00:00:00Z as a bound of the window: the zero time, once read as "no bound"
		// (a window ending then was dropped: the opposite of what was sent).
		{"SetEnvelopeRules award window ending 0001-01-01", rules(func(r *pb.SetEnvelopeRulesRequest) {
			r.Rules = &pb.FundingRules{AwardWindow: &pb.AwardWindow{EndTime: timestamppb.New(time.Time{})}}
		}), codes.InvalidArgument, invalid, "rules.award_window.end_time"},
		{"SetEnvelopeRules award window starting 0001-01-01", rules(func(r *pb.SetEnvelopeRulesRequest) {
			r.Rules = &pb.FundingRules{AwardWindow: &pb.AwardWindow{StartTime: timestamppb.New(time.Time{})}}
		}), codes.InvalidArgument, invalid, "rules.award_window.start_time"},
		// Bounds kept to the microsecond: two that differ only below it are one instant, so a
		// window "from .0000003 to .0000007" ends when it starts.
		{"SetEnvelopeRules award window shorter than a microsecond", rules(func(r *pb.SetEnvelopeRulesRequest) {
			at := time.Date(2021, 11, 22, 0, 0, 0, 0, time.UTC)
			r.Rules = &pb.FundingRules{AwardWindow: &pb.AwardWindow{StartTime: timestamppb.New(at.Add(300)), EndTime: timestamppb.New(at.Add(700))}}
		}), codes.InvalidArgument, invalid, "rules.award_window"},
		{"SetEnvelopeRules award window starting in year 0", rules(func(r *pb.SetEnvelopeRulesRequest) {
			r.Rules = &pb.FundingRules{AwardWindow: &pb.AwardWindow{StartTime: &timestamppb.Timestamp{Seconds: -62135596801}}}
		}), codes.InvalidArgument, invalid, "rules.award_window.start_time"},
		{"GetFundingReport as of the year 10000", func(ctx context.Context) error {
			_, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{AsOfTime: &timestamppb.Timestamp{Seconds: 253402300800}})
			return err
		}, codes.InvalidArgument, invalid, "as_of_time"},
		{"GetEnvelopeRules at the year 10000", func(ctx context.Context) error {
			_, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/fund", Time: &timestamppb.Timestamp{Seconds: 253402300800}})
			return err
		}, codes.InvalidArgument, invalid, "time"},

		// Effective times (docs/dates.md): in range, not in the future, not before an envelope.
		{"Commit effective in the year 10000", commit(func(r *pb.CommitRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: 253402300800}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"Commit effective 0001-01-01 (the zero time, not 'unset')", commit(func(r *pb.CommitRequest) {
			r.EffectiveTime = timestamppb.New(time.Time{})
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"Commit effective in an hour", commit(func(r *pb.CommitRequest) {
			r.EffectiveTime = timestamppb.New(time.Now().Add(time.Hour))
		}), codes.FailedPrecondition, "EFFECTIVE_TIME_IN_FUTURE", ""},
		{"Commit effective before its envelope", commit(func(r *pb.CommitRequest) {
			r.EffectiveTime = timestamppb.New(time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC))
		}), codes.FailedPrecondition, "EFFECTIVE_TIME_BEFORE_ENVELOPE", ""},
		{"BatchCommit effective in an hour", batchCommit(func(r *pb.BatchCommitRequest) {
			r.AllOrNothing = true
			r.EffectiveTime = timestamppb.New(time.Now().Add(time.Hour))
		}), codes.FailedPrecondition, "EFFECTIVE_TIME_IN_FUTURE", ""},
		{"CreateEnvelope child effective before its parent", create(func(r *pb.CreateEnvelopeRequest) {
			r.EffectiveTime = timestamppb.New(time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC))
		}), codes.FailedPrecondition, "EFFECTIVE_TIME_BEFORE_ENVELOPE", ""},
		{"CreateEnvelope effective with nanos out of range", create(func(r *pb.CreateEnvelopeRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: 1, Nanos: 1_000_000_000}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"MoveAllocation effective before its envelopes", move(func(r *pb.MoveAllocationRequest) {
			r.EffectiveTime = timestamppb.New(time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC))
		}), codes.FailedPrecondition, "EFFECTIVE_TIME_BEFORE_ENVELOPE", ""},
		{"Release effective before its envelope", release(func(r *pb.ReleaseRequest) {
			r.EffectiveTime = timestamppb.New(time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC))
		}), codes.FailedPrecondition, "EFFECTIVE_TIME_BEFORE_ENVELOPE", ""},
		{"Release effective in the year 0", release(func(r *pb.ReleaseRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: -62135596801}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"GetFundingReport known at the year 10000", func(ctx context.Context) error {
			_, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{KnownAtTime: &timestamppb.Timestamp{Seconds: 253402300800}})
			return err
		}, codes.InvalidArgument, invalid, "known_at_time"},
		// Etags (AIP-154): malformed ones are INVALID_ARGUMENT; a stale one is ABORTED and, like
		// every case here, changes nothing (not even the request log: see TestStaleETagRecordsNothing).
		{"MoveAllocation etag 65 characters", move(func(r *pb.MoveAllocationRequest) { r.Etag = long(65) }), codes.InvalidArgument, invalid, "etag"},
		{"MoveAllocation etag with a space", move(func(r *pb.MoveAllocationRequest) { r.Etag = "a b" }), codes.InvalidArgument, invalid, "etag"},
		{"MoveAllocation destination etag with a NUL", move(func(r *pb.MoveAllocationRequest) { r.DestinationEtag = "a\x00" }), codes.InvalidArgument, invalid, "destination_etag"},
		{"MoveAllocation stale source etag", move(func(r *pb.MoveAllocationRequest) { r.Etag = "stale" }), codes.Aborted, "ETAG_MISMATCH", ""},
		{"MoveAllocation stale destination etag", move(func(r *pb.MoveAllocationRequest) { r.DestinationEtag = "stale" }), codes.Aborted, "ETAG_MISMATCH", ""},
		{"SetEnvelopeRules etag non-ASCII", rules(func(r *pb.SetEnvelopeRulesRequest) { r.Etag = "étiquette" }), codes.InvalidArgument, invalid, "etag"},
		{"SetEnvelopeRules stale etag", rules(func(r *pb.SetEnvelopeRulesRequest) { r.Etag = "stale" }), codes.Aborted, "ETAG_MISMATCH", ""},

		// Background verifications (AIP-151).
		{"GetVerification name not a UUID", func(ctx context.Context) error {
			_, err := audit.GetVerification(ctx, &pb.GetVerificationRequest{Name: "verifications/latest"})
			return err
		}, codes.InvalidArgument, invalid, "name"},
		{"GetVerification unknown", func(ctx context.Context) error {
			_, err := audit.GetVerification(ctx, &pb.GetVerificationRequest{Name: "verifications/" + uuid})
			return err
		}, codes.NotFound, "VERIFICATION_NOT_FOUND", ""},
		{"StartVerification request id with a space", func(ctx context.Context) error {
			_, err := audit.StartVerification(ctx, &pb.StartVerificationRequest{RequestId: "verify now"})
			return err
		}, codes.InvalidArgument, invalid, "request_id"},

		// Request ids: missing, malformed, reused with another payload.
		{"Commit request id missing", commit(func(r *pb.CommitRequest) { r.RequestId = "" }), codes.InvalidArgument, invalid, "request_id"},
		{"Commit request id with a space", commit(func(r *pb.CommitRequest) { r.RequestId = "award 2" }), codes.InvalidArgument, invalid, "request_id"},
		{"Commit request id 129 characters", commit(func(r *pb.CommitRequest) { r.RequestId = long(129) }), codes.InvalidArgument, invalid, "request_id"},
		{"Commit request id non-ASCII", commit(func(r *pb.CommitRequest) { r.RequestId = "récompense" }), codes.InvalidArgument, invalid, "request_id"},
		{"CreateEnvelope request id missing", create(func(r *pb.CreateEnvelopeRequest) { r.RequestId = "" }), codes.InvalidArgument, invalid, "request_id"},
		{"Commit request id reused, another amount", commit(func(r *pb.CommitRequest) {
			r.Envelope, r.Beneficiary, r.Project, r.Amount, r.RequestId = "envelopes/axis-1", "siren:217500016", "guichet-numerique", 2_000, "award-1"
		}), codes.FailedPrecondition, reused, ""},
		{"Release request id reused by a Commit's", release(func(r *pb.ReleaseRequest) { r.RequestId = "award-1" }), codes.FailedPrecondition, reused, ""},
		{"CreateEnvelope request id reused", create(func(r *pb.CreateEnvelopeRequest) { r.RequestId = "axis-1" }), codes.FailedPrecondition, reused, ""},
		{"BatchCommit request id reused, another item", batchCommit(func(r *pb.BatchCommitRequest) { r.RequestId = "committee-1" }), codes.FailedPrecondition, reused, ""},

		// BatchCommit.
		{"BatchCommit no item", batchCommit(func(r *pb.BatchCommitRequest) { r.Items = nil }), codes.InvalidArgument, invalid, "items"},
		{"BatchCommit 10,001 items", batchCommit(func(r *pb.BatchCommitRequest) { r.Items = items(10_001) }), codes.InvalidArgument, invalid, "items"},
		{"BatchCommit an item of zero", batchCommit(func(r *pb.BatchCommitRequest) {
			r.Items = append(items(3), &pb.BatchCommitItem{Beneficiary: "b", Project: "p", Amount: 0})
		}), codes.InvalidArgument, invalid, "items[3].amount"},
		{"BatchCommit unknown envelope", batchCommit(func(r *pb.BatchCommitRequest) { r.Envelope = "envelopes/axis-9" }), codes.NotFound, noEnv, ""},
		{"BatchCommit all or nothing, last item too large", batchCommit(func(r *pb.BatchCommitRequest) {
			r.AllOrNothing = true
			r.Items = append(items(2), &pb.BatchCommitItem{Beneficiary: "b", Project: "p", Amount: 34 * million})
		}), codes.FailedPrecondition, noFunds, ""},

		// Pagination.
		{"ListEnvelopes forged page token", func(ctx context.Context) error {
			_, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageToken: "eyJ2IjoxLCJhIjoiYXhpcy0xIiwiZiI6IjAwMDAwMDAwMDAwMDAwMDAifQ"})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListEnvelopes page token of another filter", func(ctx context.Context) error {
			_, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{Parent: "envelopes/axis-1", PageToken: otherFilterToken})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListCommitments page token of another listing", func(ctx context.Context) error {
			_, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{PageToken: otherFilterToken})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListJournalEntries page token not base64", func(ctx context.Context) error {
			_, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{PageToken: "!!!"})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListJournalEntries page token 1025 characters", func(ctx context.Context) error {
			_, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{PageToken: long(1025)})
			return err
		}, codes.InvalidArgument, invalid, "page_token"},
		{"GetFundingReport page token of another report", func(ctx context.Context) error {
			_, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/axis-1", PageToken: reportToken})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"GetFundingReport forged page token", func(ctx context.Context) error {
			_, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{PageToken: "eyJ2IjoxLCJhIjoiMkAiLCJmIjoiMDAwMDAwMDAwMDAwMDAwMCJ9"})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"GetEnvelopeRules page token of another listing", func(ctx context.Context) error {
			_, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/fund", PageToken: otherFilterToken})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListEnvelopes page size negative", func(ctx context.Context) error {
			_, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, invalid, "page_size"},

		// Filters and cursors reach the database as text: what it cannot hold (a NUL, which
		// PostgreSQL refuses in text) is refused first, with the field named (issue 12 item 7).
		{"ListCommitments beneficiary with a NUL", func(ctx context.Context) error {
			_, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{Beneficiary: "siren:\x00"})
			return err
		}, codes.InvalidArgument, invalid, "beneficiary"},
		{"ListCommitments beneficiary with a line break", func(ctx context.Context) error {
			_, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{Beneficiary: "siren:\n217500016"})
			return err
		}, codes.InvalidArgument, invalid, "beneficiary"},
		{"ListCommitments page token whose cursor holds a NUL", func(ctx context.Context) error {
			_, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{PageToken: forgedToken("commitments\x00\x00", "0190\x00")})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListHolds page token whose cursor is no hold's id", func(ctx context.Context) error {
			_, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{PageToken: forgedToken("holds\x00\x00", "zzzz")})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListJournalEntries page token whose cursor holds a NUL", func(ctx context.Context) error {
			_, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{PageToken: forgedToken("entries\x00\x00", "\x00")})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},
		{"ListEnvelopes page token whose cursor holds a NUL", func(ctx context.Context) error {
			_, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageToken: forgedToken("envelopes\x00", "axis\x00")})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},

		// Timestamps: only 0001-01-01 … 9999-12-31 (google.protobuf.Timestamp's range).
		{"SetEnvelopeRules award window ending in year 10000", setRules(func(r *pb.SetEnvelopeRulesRequest) {
			r.Rules.AwardWindow.EndTime = timestamppb.New(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
		}), codes.InvalidArgument, invalid, "rules.award_window.end_time"},
		{"SetEnvelopeRules award window starting before year 1", setRules(func(r *pb.SetEnvelopeRulesRequest) {
			r.Rules.AwardWindow.StartTime = &timestamppb.Timestamp{Seconds: -62135596801}
		}), codes.InvalidArgument, invalid, "rules.award_window.start_time"},
		{"SetEnvelopeRules effective time with nanos out of range", setRules(func(r *pb.SetEnvelopeRulesRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: 1, Nanos: 1_000_000_000}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"GetFundingReport as of 10^13 s", report(&pb.GetFundingReportRequest{Envelope: "envelopes/fund",
			AsOfTime: &timestamppb.Timestamp{Seconds: 10_000_000_000_000}}), codes.InvalidArgument, invalid, "as_of_time"},
		// 0001-01-01T00:00:00Z is Go's zero time, once read as "now": the fund did not exist then.
		{"GetFundingReport as of 0001-01-01", report(&pb.GetFundingReportRequest{Envelope: "envelopes/fund",
			AsOfTime: timestamppb.New(time.Time{})}), codes.NotFound, noEnv, ""},
		{"GetEnvelopeRules at year 10000", func(ctx context.Context) error {
			_, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-2",
				Time: &timestamppb.Timestamp{Seconds: 253402300800}})
			return err
		}, codes.InvalidArgument, invalid, "time"},

		// Payments and closing (issue 13 §2).
		{"CreatePayment amount zero", pay(func(r *pb.CreatePaymentRequest) { r.Amount = 0 }), codes.InvalidArgument, invalid, "amount"},
		{"CreatePayment parent not a UUID", pay(func(r *pb.CreatePaymentRequest) { r.Parent = "commitments/42" }), codes.InvalidArgument, invalid, "parent"},
		{"CreatePayment parent an envelope", pay(func(r *pb.CreatePaymentRequest) { r.Parent = "envelopes/axis-1" }), codes.InvalidArgument, invalid, "parent"},
		{"CreatePayment commitment unknown", pay(func(r *pb.CreatePaymentRequest) { r.Parent = "commitments/" + uuid }), codes.NotFound, noCommit, ""},
		{"CreatePayment more than remains to pay", pay(func(r *pb.CreatePaymentRequest) { r.Amount = 601 }), codes.FailedPrecondition, "PAYMENT_EXCEEDS_REMAINING", ""},
		{"CreatePayment of a closed commitment", pay(func(r *pb.CreatePaymentRequest) { r.Parent = closed }), codes.FailedPrecondition, "COMMITMENT_CLOSED", ""},
		{"CreatePayment effective time in the year 10000", pay(func(r *pb.CreatePaymentRequest) {
			r.EffectiveTime = &timestamppb.Timestamp{Seconds: 253402300800}
		}), codes.InvalidArgument, invalid, "effective_time"},
		{"CreatePayment request id reused, another amount", pay(func(r *pb.CreatePaymentRequest) { r.Amount, r.RequestId = 401, "pay-1" }), codes.FailedPrecondition, reused, ""},
		{"Release of what was paid", release(func(r *pb.ReleaseRequest) { r.Commitment, r.Amount = paid, 601 }), codes.FailedPrecondition, "RELEASE_EXCEEDS_UNPAID", ""},
		{"Release of a closed commitment", release(func(r *pb.ReleaseRequest) { r.Commitment = closed }), codes.FailedPrecondition, "COMMITMENT_CLOSED", ""},
		{"CloseCommitment already closed", closeCommitment(func(*pb.CloseCommitmentRequest) {}), codes.FailedPrecondition, "COMMITMENT_CLOSED", ""},
		{"CloseCommitment reason empty", closeCommitment(func(r *pb.CloseCommitmentRequest) { r.Reason = "" }), codes.InvalidArgument, invalid, "reason"},
		{"CloseCommitment reason with a line break", closeCommitment(func(r *pb.CloseCommitmentRequest) { r.Reason = "a\nb" }), codes.InvalidArgument, invalid, "reason"},
		{"CloseCommitment commitment unknown", closeCommitment(func(r *pb.CloseCommitmentRequest) { r.Commitment = "commitments/" + uuid }), codes.NotFound, noCommit, ""},
		{"CloseCommitment request id reused by a payment's", closeCommitment(func(r *pb.CloseCommitmentRequest) { r.RequestId = "pay-1" }), codes.FailedPrecondition, reused, ""},
		{"ListPayments parent malformed", func(ctx context.Context) error {
			_, err := h.commitments.ListPayments(ctx, &pb.ListPaymentsRequest{Parent: "commitments/"})
			return err
		}, codes.InvalidArgument, invalid, "parent"},
		{"ListPayments commitment unknown", func(ctx context.Context) error {
			_, err := h.commitments.ListPayments(ctx, &pb.ListPaymentsRequest{Parent: "commitments/" + uuid})
			return err
		}, codes.NotFound, noCommit, ""},
		{"ListPayments page token of another listing", func(ctx context.Context) error {
			_, err := h.commitments.ListPayments(ctx, &pb.ListPaymentsRequest{Parent: closed, PageToken: otherFilterToken})
			return err
		}, codes.InvalidArgument, badToken, "page_token"},

		// Publication fields (issue 13 §4).
		{"Commit SIRET with a wrong key", commit(func(r *pb.CommitRequest) { r.BeneficiarySiret = "21690123100012" }), codes.InvalidArgument, invalid, "beneficiary_siret"},
		{"Commit SIRET of 13 digits", commit(func(r *pb.CommitRequest) { r.BeneficiarySiret = "2169012310001" }), codes.InvalidArgument, invalid, "beneficiary_siret"},
		{"Commit SIRET with spaces", commit(func(r *pb.CommitRequest) { r.BeneficiarySiret = "216 901 231 00011" }), codes.InvalidArgument, invalid, "beneficiary_siret"},
		{"Commit La Poste SIRET whose digits do not sum to a multiple of 5", commit(func(r *pb.CommitRequest) { r.BeneficiarySiret = "35600000049838" }), codes.InvalidArgument, invalid, "beneficiary_siret"},
		{"Commit RNA without its W", commit(func(r *pb.CommitRequest) { r.BeneficiaryRna = "691234567" }), codes.InvalidArgument, invalid, "beneficiary_rna"},
		{"Commit RNA of 8 digits", commit(func(r *pb.CommitRequest) { r.BeneficiaryRna = "W69123456" }), codes.InvalidArgument, invalid, "beneficiary_rna"},
		{"Commit purpose 257 characters", commit(func(r *pb.CommitRequest) { r.Purpose = long(257) }), codes.InvalidArgument, invalid, "purpose"},
		{"Commit decision reference with a line break", commit(func(r *pb.CommitRequest) { r.DecisionReference = "a\nb" }), codes.InvalidArgument, invalid, "decision_reference"},
		{"Commit legal name 201 characters", commit(func(r *pb.CommitRequest) { r.BeneficiaryLegalName = long(201) }), codes.InvalidArgument, invalid, "beneficiary_legal_name"},
		{"BatchCommit item SIRET with a wrong key", batchCommit(func(r *pb.BatchCommitRequest) { r.Items[0].BeneficiarySiret = "21690123100012" }), codes.InvalidArgument, invalid, "items[0].beneficiary_siret"},
		{"CreateEnvelope child naming a granting body", create(func(r *pb.CreateEnvelopeRequest) { r.GrantingBodyName = "ANCT" }), codes.InvalidArgument, invalid, "granting_body_name"},
		{"CreateEnvelope root granting body SIRET with a wrong key", create(func(r *pb.CreateEnvelopeRequest) {
			r.Parent, r.GrantingBodySiret = "", "13001853500044"
		}), codes.InvalidArgument, invalid, "granting_body_siret"},

		// Report sums are exact, and refused when a figure does not fit an int64: awarded here is
		// twice nearly the largest amount (see the set-up).
		{"GetFundingReport awarded beyond int64", report(&pb.GetFundingReportRequest{Envelope: "envelopes/big"}),
			codes.FailedPrecondition, "AMOUNT_OVERFLOW", ""},
		{"GetFundingReport of every tree, awarded beyond int64", report(&pb.GetFundingReportRequest{}),
			codes.FailedPrecondition, "AMOUNT_OVERFLOW", ""},
	}
	if len(cases) < 30 {
		t.Fatalf("the catalogue has %d cases, want at least 30", len(cases))
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
			// The same call again gets the same answer: a refusal is final for its request id,
			// and an invalid request was never recorded.
			if again := tc.call(ctx); status.Code(again) != tc.code {
				t.Errorf("sent again: %v, want %v", again, tc.code)
			}
		})
	}
	after := h.state(t, watched...)
	if diff := cmp.Diff(before, after, protocmp.Transform()); diff != "" {
		t.Errorf("the catalogue changed the ledger (-before +after):\n%s", diff)
	}
	if _, err := h.ledger.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBatchCommitReusedRequestIDPostsNothing protects invariants 5 and 7 for BatchCommit: a call
// that reuses a request id with more items than the first is refused with REQUEST_ID_REUSED and
// posts nothing, and the same with all_or_nothing is refused the same way (not ABORTED).
//
// Found by this catalogue: items beyond the first call's were decided under their own item ids,
// so an extra award was posted although the caller was told REQUEST_ID_REUSED. The request log
// now holds a row for the call itself, checked before any item.
func TestBatchCommitReusedRequestIDPostsNothing(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	h.buildFund(t)
	ctx := context.Background()
	item := func(amount int64) *pb.BatchCommitItem {
		return &pb.BatchCommitItem{Beneficiary: "b", Project: "p", Amount: amount}
	}
	if _, err := h.commitments.BatchCommit(ctx, &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", RequestId: "committee",
		Items: []*pb.BatchCommitItem{item(1)}}); err != nil {
		t.Fatal(err)
	}
	before := h.state(t, "envelopes/axis-3")
	for _, allOrNothing := range []bool{false, true} {
		_, err := h.commitments.BatchCommit(ctx, &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", RequestId: "committee",
			AllOrNothing: allOrNothing, Items: []*pb.BatchCommitItem{item(1), item(5), item(99 * million)}})
		if code, info := errorInfo(t, err); code != codes.FailedPrecondition || info.GetReason() != "REQUEST_ID_REUSED" {
			t.Errorf("all_or_nothing=%v: got %v %s, want FAILED_PRECONDITION REQUEST_ID_REUSED", allOrNothing, code, info.GetReason())
		}
	}
	if diff := cmp.Diff(before, h.state(t, "envelopes/axis-3"), protocmp.Transform()); diff != "" {
		t.Errorf("a refused BatchCommit changed the ledger (-before +after):\n%s", diff)
	}
}

// TestZeroTimeIsATime protects issue 12 item 7: 0001-01-01T00:00:00Z, Go's zero time, was read as
// "now" by GetFundingReport and GetEnvelopeRules. Asked for explicitly, it is a time like any
// other: nothing existed then, and no rule was in force.
func TestZeroTimeIsATime(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	h.buildFund(t)
	ctx := context.Background()
	share := int64(5000)
	if _, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/axis-2", Call: "appel-1",
		RequestId: "rules-1", Rules: &pb.FundingRules{MaxFundingShareBps: &share}}); err != nil {
		t.Fatal(err)
	}
	year1 := timestamppb.New(time.Time{})
	rep, err := pb.NewReportServiceClient(h.conn).GetFundingReport(ctx, &pb.GetFundingReportRequest{AsOfTime: year1})
	if err != nil || len(rep.GetEnvelopes()) != 0 || !rep.GetAsOfTime().AsTime().Equal(time.Time{}) {
		t.Errorf("report of every tree as of 0001-01-01: %d envelopes as of %v, %v; want none as of 0001-01-01",
			len(rep.GetEnvelopes()), rep.GetAsOfTime().AsTime(), err)
	}
	rules, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-2", Time: year1})
	if err != nil {
		t.Fatal(err)
	}
	if eff := rules.GetEffectiveRules(); !eff.GetTime().AsTime().Equal(time.Time{}) || eff.MaxFundingShareBps != nil {
		t.Errorf("rules of axis-2 at 0001-01-01: %v; want none in force, at 0001-01-01", eff)
	}
	// Unset, the time is now: the rule set is in force.
	rules, err = h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-2"})
	if err != nil || rules.GetEffectiveRules().GetMaxFundingShareBps() != share {
		t.Errorf("rules of axis-2 now: %v, %v; want the 50 %% share in force", rules.GetEffectiveRules(), err)
	}
	// A report that counts no entry (known at a time before the ledger's first) has no effective
	// date: as_of_time unset, not 1970-01-01, beside the known_at_time asked.
	before := timestamppb.New(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	rep, err = pb.NewReportServiceClient(h.conn).GetFundingReport(ctx, &pb.GetFundingReportRequest{KnownAtTime: before})
	if err != nil || len(rep.GetEnvelopes()) != 0 || rep.AsOfTime != nil || !rep.GetKnownAtTime().AsTime().Equal(before.AsTime()) {
		t.Errorf("report known at 2000-01-01: %d envelopes, as of %v, known at %v, %v; want none, as of no date, known at 2000-01-01",
			len(rep.GetEnvelopes()), rep.AsOfTime, rep.GetKnownAtTime(), err)
	}
}

// TestUndecodableRequestsRefusedAndLogged protects README's "every error carries a
// google.rpc.ErrorInfo" for requests grpc-go cannot decode, on a unary call and on a stream's
// request (server/codec.go): INVALID_ARGUMENT with the ErrorInfo INVALID_ARGUMENT, and a log line
// for each call, the stream's too (docs/security.md: the log line of every call).
func TestUndecodableRequestsRefusedAndLogged(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	addr, _ := serveLedger(t, server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	conn := dialPlain(t, addr)
	ctx := context.Background()
	err := invokeRaw(ctx, conn, pb.CommitmentService_Commit_FullMethodName, wire(nil).
		str(1, "envelopes/axis-2").str(2, "siren:\xff\xfe").str(3, "p").varint(4, 500).str(6, "bad-utf8"))
	if code, info := errorInfo(t, err); code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" ||
		!strings.Contains(status.Convert(err).Message(), "could not be decoded") {
		t.Errorf("Commit with invalid UTF-8: %v %s (%v), want INVALID_ARGUMENT for a request that could not be decoded", code, info.GetReason(), err)
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, pb.ReportService_ExportSubventions_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	req := []byte(wire(nil).str(1, "envelopes/\xff"))
	if err := stream.SendMsg(&req); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var reply []byte
	err = stream.RecvMsg(&reply)
	// (The message: an empty request, as the codec hands an undecodable one on, is invalid too.)
	if code, info := errorInfo(t, err); code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" ||
		!strings.Contains(status.Convert(err).Message(), "could not be decoded") {
		t.Errorf("ExportSubventions with invalid UTF-8: %v %s (%v), want INVALID_ARGUMENT for a request that could not be decoded", code, info.GetReason(), err)
	}
	for _, method := range []string{"grpc.method=Commit", "grpc.method=ExportSubventions"} {
		logged := false
		for l := range strings.Lines(logs.String()) {
			logged = logged || strings.Contains(l, "finished call") && strings.Contains(l, method) && strings.Contains(l, "grpc.code=InvalidArgument")
		}
		if !logged {
			t.Errorf("no log line for the refused call (%s):\n%s", method, logs)
		}
	}
}
