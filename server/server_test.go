package server_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestEveryRPC walks every RPC of the three services over a real gRPC connection, on every
// engine, and checks the balances each returns (invariant 2: allocation = committed +
// allocated_to_children + available) and that the journal explains them (invariant 4).
func TestEveryRPC(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		ctx := context.Background()
		h.buildFund(t)

		fund, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/fund"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fund.GetEnvelope().GetAvailable(), int64(0); got != want {
			t.Errorf("fund available = %d, want %d (88 M€ all given to the axes)", got, want)
		}
		if got := fund.GetEnvelope().GetAllocatedToChildren(); got != 88*million {
			t.Errorf("fund allocated_to_children = %d, want %d", got, 88*million)
		}
		if got := fund.GetEnvelope().GetCurrencyCode(); got != "EUR" {
			t.Errorf("default currency = %q, want EUR", got)
		}

		// ListEnvelopes: children of the fund, two per page.
		var names []string
		token := ""
		for {
			resp, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{Parent: "envelopes/fund", PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.GetEnvelopes() {
				names = append(names, e.GetName())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if diff := cmp.Diff([]string{"envelopes/axis-1", "envelopes/axis-2", "envelopes/axis-3"}, names); diff != "" {
			t.Errorf("ListEnvelopes(parent=fund) (-want +got):\n%s", diff)
		}

		// Commit: an award on axis 1.
		award, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
			Project: "guichet-numerique", Amount: 250_000_00, Description: "Guichet numérique unique", RequestId: "award-1"})
		if err != nil {
			t.Fatal(err)
		}
		c := award.GetCommitment()
		if c.GetAmount() != 250_000_00 || c.GetRemaining() != 250_000_00 || c.GetEnvelope() != "envelopes/axis-1" {
			t.Errorf("commitment = %v", c)
		}
		if e := award.GetEnvelope(); e.GetCommitted() != 250_000_00 || e.GetAvailable() != 30*million-250_000_00 || e.GetCommitmentCount() != 1 {
			t.Errorf("envelope after award = %v", e)
		}

		// Release part of it.
		rel, err := h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: c.GetName(), Amount: 50_000_00,
			Reason: "coût final inférieur", RequestId: "release-1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := rel.GetCommitment(); got.GetReleased() != 50_000_00 || got.GetRemaining() != 200_000_00 {
			t.Errorf("commitment after release = %v", got)
		}
		if e := rel.GetEnvelope(); e.GetCommitted() != 200_000_00 || e.GetReleased() != 50_000_00 || e.GetAvailable() != 30*million-200_000_00 {
			t.Errorf("envelope after release = %v", e)
		}

		// GetCommitment and ListCommitments by envelope and by beneficiary.
		got, err := h.commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: c.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rel.GetCommitment(), got.GetCommitment(), protocmp.Transform()); diff != "" {
			t.Errorf("GetCommitment differs from Release's answer (-release +get):\n%s", diff)
		}
		for _, req := range []*pb.ListCommitmentsRequest{{Envelope: "envelopes/axis-1"}, {Beneficiary: "siren:217500016"}} {
			list, err := h.commitments.ListCommitments(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(list.GetCommitments()) != 1 || list.GetCommitments()[0].GetName() != c.GetName() {
				t.Errorf("ListCommitments(%v) = %v", req, list.GetCommitments())
			}
		}
		if list, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{Envelope: "envelopes/axis-2"}); err != nil || len(list.GetCommitments()) != 0 {
			t.Errorf("ListCommitments(axis-2) = %v, %v; want none", list.GetCommitments(), err)
		}

		// MoveAllocation between siblings.
		move, err := h.envelopes.MoveAllocation(ctx, &pb.MoveAllocationRequest{Source: "envelopes/axis-3", Destination: "envelopes/axis-2",
			Amount: 1 * million, Reason: "rééquilibrage", RequestId: "move-1"})
		if err != nil {
			t.Fatal(err)
		}
		if move.GetSource().GetAllocation() != 33*million || move.GetDestination().GetAllocation() != 25*million {
			t.Errorf("after move: source %v, destination %v", move.GetSource(), move.GetDestination())
		}

		// The journal of the commitment: the award and the release, each balanced.
		entries, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{Commitment: c.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []pb.EntryKind
		for _, e := range entries.GetJournalEntries() {
			kinds = append(kinds, e.GetKind())
			var sum int64
			for _, p := range e.GetPostings() {
				sum += p.GetAmount()
			}
			if sum != 0 {
				t.Errorf("entry %s postings sum to %d", e.GetName(), sum)
			}
			if e.GetCaller() != "anonymous" || e.GetRequestId() == "" {
				t.Errorf("entry %s caller %q request id %q", e.GetName(), e.GetCaller(), e.GetRequestId())
			}
		}
		if diff := cmp.Diff([]pb.EntryKind{pb.EntryKind_ENTRY_KIND_COMMITTED, pb.EntryKind_ENTRY_KIND_RELEASED}, kinds); diff != "" {
			t.Errorf("journal of the commitment (-want +got):\n%s", diff)
		}
		if n := h.journalSize(t); n != 7 { // fund, 3 axes, award, release, move
			t.Errorf("journal holds %d entries, want 7", n)
		}
		h.verify(t)
	})
}

// TestErrorReasons checks that every refusal the API documents arrives with its gRPC code and its
// ErrorInfo reason, and that a refusal changes nothing.
func TestErrorReasons(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		ctx := context.Background()
		h.buildFund(t)
		award, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p",
			Amount: 1000, RequestId: "seed-award"})
		if err != nil {
			t.Fatal(err)
		}
		commitment := award.GetCommitment().GetName()
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "dollars", Allocation: 1000,
			CurrencyCode: "USD", RequestId: "dollars"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "line-1a", Parent: "envelopes/axis-1",
			Allocation: 1000, RequestId: "line-1a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "huge", Allocation: math.MaxInt64 - 1,
			CurrencyCode: "XTS", RequestId: "huge"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "huge-too", Allocation: math.MaxInt64 - 1,
			CurrencyCode: "XTS", RequestId: "huge-too"}); err != nil {
			t.Fatal(err)
		}
		before := h.journalSize(t)

		cases := []struct {
			name   string
			call   func() error
			code   codes.Code
			reason string
			meta   map[string]string
		}{
			{"invalid argument", func() error {
				_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 0, RequestId: "r-invalid"})
				return err
			}, codes.InvalidArgument, "INVALID_ARGUMENT", map[string]string{"field": "amount"}},
			{"invalid argument found by the ledger", func() error {
				// A SIRET of 14 digits passes the .proto's pattern; its check digit is the
				// ledger's rule, and its field is named in ErrorInfo all the same.
				_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1,
					BeneficiarySiret: "12345678901234", RequestId: "r-siret"})
				return err
			}, codes.InvalidArgument, "INVALID_ARGUMENT", map[string]string{"field": "beneficiary_siret"}},
			{"envelope not found", func() error {
				_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/nowhere", Beneficiary: "b", Project: "p", Amount: 1, RequestId: "r-nf"})
				return err
			}, codes.NotFound, "ENVELOPE_NOT_FOUND", map[string]string{"envelope": "envelopes/nowhere"}},
			{"commitment not found", func() error {
				_, err := h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: "commitments/00000000-0000-7000-8000-000000000000", Amount: 1, Reason: "x", RequestId: "r-cnf"})
				return err
			}, codes.NotFound, "COMMITMENT_NOT_FOUND", nil},
			{"get unknown commitment", func() error {
				_, err := h.commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: "commitments/00000000-0000-7000-8000-000000000000"})
				return err
			}, codes.NotFound, "COMMITMENT_NOT_FOUND", nil},
			{"get unknown envelope", func() error {
				_, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/nowhere"})
				return err
			}, codes.NotFound, "ENVELOPE_NOT_FOUND", nil},
			{"envelope already exists", func() error {
				_, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-1", Parent: "envelopes/fund", Allocation: 1, RequestId: "r-exists"})
				return err
			}, codes.AlreadyExists, "ENVELOPE_ALREADY_EXISTS", nil},
			{"insufficient funds", func() error {
				_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 31 * million, RequestId: "r-funds"})
				return err
			}, codes.FailedPrecondition, "INSUFFICIENT_FUNDS", map[string]string{
				"available": fmt.Sprint(30*million - 1000 - 1000), "requested": fmt.Sprint(31 * million)}},
			{"child larger than parent's available", func() error {
				_, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-4", Parent: "envelopes/fund", Allocation: 1, RequestId: "r-axis-4"})
				return err
			}, codes.FailedPrecondition, "INSUFFICIENT_FUNDS", map[string]string{"available": "0", "requested": "1"}},
			{"release exceeds remaining", func() error {
				_, err := h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: commitment, Amount: 1001, Reason: "x", RequestId: "r-release"})
				return err
			}, codes.FailedPrecondition, "RELEASE_EXCEEDS_REMAINING", map[string]string{"remaining": "1000", "requested": "1001"}},
			{"currency mismatch", func() error {
				_, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "usd-line", Parent: "envelopes/axis-1", Allocation: 1, CurrencyCode: "USD", RequestId: "r-currency"})
				return err
			}, codes.FailedPrecondition, "CURRENCY_MISMATCH", nil},
			{"envelopes not related", func() error {
				_, err := h.envelopes.MoveAllocation(ctx, &pb.MoveAllocationRequest{Source: "envelopes/line-1a", Destination: "envelopes/axis-2", Amount: 1, Reason: "x", RequestId: "r-related"})
				return err
			}, codes.FailedPrecondition, "ENVELOPES_NOT_RELATED", nil},
			{"amount overflow", func() error {
				_, err := h.envelopes.MoveAllocation(ctx, &pb.MoveAllocationRequest{Source: "envelopes/huge", Destination: "envelopes/huge-too", Amount: 2, Reason: "x", RequestId: "r-overflow"})
				return err
			}, codes.FailedPrecondition, "AMOUNT_OVERFLOW", nil},
			{"request id reused", func() error {
				_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 2000, RequestId: "seed-award"})
				return err
			}, codes.FailedPrecondition, "REQUEST_ID_REUSED", map[string]string{"request_id": "seed-award"}},
			{"invalid page token", func() error {
				_, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageToken: "not-a-token"})
				return err
			}, codes.InvalidArgument, "INVALID_PAGE_TOKEN", nil},
			{"page token of another filter", func() error {
				resp, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageSize: 1})
				if err != nil {
					return err
				}
				_, err = h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{Parent: "envelopes/fund", PageToken: resp.GetNextPageToken()})
				return err
			}, codes.InvalidArgument, "INVALID_PAGE_TOKEN", nil},
		}
		for _, tc := range cases {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				code, info := errorInfo(t, tc.call())
				if code != tc.code || info.GetReason() != tc.reason {
					t.Errorf("got %v %s, want %v %s", code, info.GetReason(), tc.code, tc.reason)
				}
				for k, v := range tc.meta {
					if got := info.GetMetadata()[k]; got != v {
						t.Errorf("metadata[%q] = %q, want %q", k, got, v)
					}
				}
			})
		}
		if after := h.journalSize(t); after != before {
			t.Errorf("refusals posted %d journal entries", after-before)
		}
		h.verify(t)
	})
}

// TestBadInputChangesNothing sends malformed requests: each gets INVALID_ARGUMENT with an
// ErrorInfo and a BadRequest naming the field, and the journal is unchanged (invariant 7).
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	ctx := context.Background()
	h.buildFund(t)
	before := h.journalSize(t)
	valid := func() *pb.CommitRequest {
		return &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1, RequestId: "r"}
	}
	cases := []struct {
		name  string
		edit  func(*pb.CommitRequest)
		field string
	}{
		{"negative amount", func(r *pb.CommitRequest) { r.Amount = -5 }, "amount"},
		{"zero amount", func(r *pb.CommitRequest) { r.Amount = 0 }, "amount"},
		{"missing request id", func(r *pb.CommitRequest) { r.RequestId = "" }, "request_id"},
		{"request id with a space", func(r *pb.CommitRequest) { r.RequestId = "a b" }, "request_id"},
		{"request id too long", func(r *pb.CommitRequest) { r.RequestId = strings.Repeat("x", 129) }, "request_id"},
		{"missing envelope", func(r *pb.CommitRequest) { r.Envelope = "" }, "envelope"},
		{"malformed envelope name", func(r *pb.CommitRequest) { r.Envelope = "axis-1" }, "envelope"},
		{"upper-case envelope id", func(r *pb.CommitRequest) { r.Envelope = "envelopes/Axis-1" }, "envelope"},
		{"missing beneficiary", func(r *pb.CommitRequest) { r.Beneficiary = "" }, "beneficiary"},
		{"control character in project", func(r *pb.CommitRequest) { r.Project = "a\nb" }, "project"},
		{"oversized description", func(r *pb.CommitRequest) { r.Description = strings.Repeat("é", 501) }, "description"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			req := valid()
			tc.edit(req)
			_, err := h.commitments.Commit(ctx, req)
			code, info := errorInfo(t, err)
			if code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" {
				t.Errorf("got %v %s, want InvalidArgument INVALID_ARGUMENT", code, info.GetReason())
			}
			if fields := badRequestFields(err); len(fields) == 0 || fields[0] != tc.field {
				t.Errorf("BadRequest fields = %v, want %q first", fields, tc.field)
			}
		})
	}
	if after := h.journalSize(t); after != before {
		t.Errorf("bad input posted %d journal entries", after-before)
	}
}

// TestConcurrentOverCommit races 64 clients to over-commit one envelope through the gRPC API:
// exactly the affordable number of awards succeed (invariant 2), every other call is refused with
// INSUFFICIENT_FUNDS or told to retry (never both posted and refused), and the balances recomputed
// from the journal equal the stored ones (invariant 4).
func TestConcurrentOverCommit(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		ctx := context.Background()
		const (
			clients   = 64
			perClient = 4
			award     = 37
			budget    = 1000 // affords 27 awards of 37
		)
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "hot", Allocation: budget, RequestId: "hot"}); err != nil {
			t.Fatal(err)
		}
		var (
			mu                       sync.Mutex
			accepted, refused, retry int
			wg                       sync.WaitGroup
		)
		for c := range clients {
			wg.Go(func() {
				for i := range perClient {
					_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/hot", Beneficiary: fmt.Sprintf("b-%d", c),
						Project: fmt.Sprintf("p-%d-%d", c, i), Amount: award, RequestId: fmt.Sprintf("race-%d-%d", c, i)})
					// Not errorInfo: its t.Fatal would end this goroutine with mu held.
					var reason string
					for _, d := range status.Convert(err).Details() {
						if info, ok := d.(*errdetails.ErrorInfo); ok {
							reason = info.GetReason()
						}
					}
					code := status.Code(err)
					mu.Lock()
					switch {
					case err == nil:
						accepted++
					case code == codes.FailedPrecondition && reason == "INSUFFICIENT_FUNDS":
						refused++
					case code == codes.Aborted || code == codes.Unavailable:
						retry++ // told to retry: must have posted nothing, checked below
					default:
						t.Errorf("unexpected refusal %v %q: %v", code, reason, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		env, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/hot"})
		if err != nil {
			t.Fatal(err)
		}
		e := env.GetEnvelope()
		if e.GetAvailable() < 0 || e.GetCommitted() != int64(accepted)*award || e.GetCommitmentCount() != int64(accepted) {
			t.Errorf("envelope %v after %d accepted awards", e, accepted)
		}
		if accepted+refused+retry != clients*perClient {
			t.Errorf("accepted %d + refused %d + retry %d != %d calls", accepted, refused, retry, clients*perClient)
		}
		// Every call that was not told to retry was decided; with that many over-commits the
		// envelope ends exactly full.
		if want := budget / award; accepted != want {
			t.Errorf("accepted %d awards, want exactly %d (budget %d / award %d); %d told to retry", accepted, want, budget, award, retry)
		}
		t.Logf("accepted %d, refused %d, told to retry %d", accepted, refused, retry)
		h.verify(t)
	})
}

// TestConcurrentSameRequestID sends one Commit 32 times at once with one request id: it posts
// exactly once and every caller gets the same answer (invariant 5).
func TestConcurrentSameRequestID(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		ctx := context.Background()
		h.buildFund(t)
		before := h.journalSize(t)
		req := &pb.CommitRequest{Envelope: "envelopes/axis-3", Beneficiary: "commune:29019", Project: "ecole-numerique",
			Amount: 19_400_00, RequestId: "0193f1a2-same-request"}
		const callers = 32
		answers := make([]*pb.CommitResponse, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { answers[i], errs[i] = h.commitments.Commit(ctx, req) })
		}
		wg.Wait()
		var first *pb.CommitResponse
		for i := range callers {
			if errs[i] != nil {
				code, info := errorInfo(t, errs[i])
				if code != codes.Aborted {
					t.Errorf("caller %d: %v %s", i, code, info.GetReason())
				}
				continue
			}
			if first == nil {
				first = answers[i]
			} else if diff := cmp.Diff(first, answers[i], protocmp.Transform()); diff != "" {
				t.Errorf("caller %d got another answer (-first +this):\n%s", i, diff)
			}
		}
		if first == nil {
			t.Fatal("no caller succeeded")
		}
		if got := h.journalSize(t) - before; got != 1 {
			t.Errorf("one request id posted %d journal entries, want 1", got)
		}
		env, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/axis-3"})
		if err != nil {
			t.Fatal(err)
		}
		if env.GetEnvelope().GetCommitted() != req.GetAmount() {
			t.Errorf("axis-3 committed %d, want %d", env.GetEnvelope().GetCommitted(), req.GetAmount())
		}
		// A retry long after still gets the first answer, envelope balances included.
		again, err := h.commitments.Commit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again, protocmp.Transform()); diff != "" {
			t.Errorf("later retry got another answer (-first +retry):\n%s", diff)
		}
		h.verify(t)
	})
}

// TestRefusalIsFinalForItsRequestID documents what a retried refused request returns: the same
// refusal, even after the envelope could afford it, because a request id names one decision. A
// new request id is a new request.
func TestRefusalIsFinalForItsRequestID(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	ctx := context.Background()
	if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "small", Allocation: 100, RequestId: "small"}); err != nil {
		t.Fatal(err)
	}
	first, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/small", Beneficiary: "b", Project: "p1", Amount: 80, RequestId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	refused := &pb.CommitRequest{Envelope: "envelopes/small", Beneficiary: "b", Project: "p2", Amount: 50, RequestId: "b"}
	if _, info := errorInfo(t, second(h.commitments.Commit(ctx, refused))); info.GetReason() != "INSUFFICIENT_FUNDS" {
		t.Fatalf("got %s, want INSUFFICIENT_FUNDS", info.GetReason())
	}
	if _, err := h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: first.GetCommitment().GetName(), Amount: 80, Reason: "abandoned", RequestId: "c"}); err != nil {
		t.Fatal(err)
	}
	_, info := errorInfo(t, second(h.commitments.Commit(ctx, refused)))
	if info.GetReason() != "INSUFFICIENT_FUNDS" || info.GetMetadata()["available"] != "20" {
		t.Errorf("retry of a refused request: %s %v, want the first refusal (available 20)", info.GetReason(), info.GetMetadata())
	}
	refused.RequestId = "b-again"
	if _, err := h.commitments.Commit(ctx, refused); err != nil {
		t.Errorf("the same award under a new request id: %v", err)
	}
	h.verify(t)
}

func second[T any](_ T, err error) error { return err }

// TestHealthAndReflection checks what an administrator sees first: health SERVING for the
// server and each service, and reflection listing the budgetledger.v1 services.
func TestHealthAndReflection(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	ctx := context.Background()
	hc := healthpb.NewHealthClient(h.conn)
	for _, svc := range []string{"", "budgetledger.v1.EnvelopeService", "budgetledger.v1.CommitmentService", "budgetledger.v1.JournalService"} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		listed[s.GetName()] = true
	}
	for _, want := range []string{"budgetledger.v1.EnvelopeService", "budgetledger.v1.CommitmentService", "budgetledger.v1.JournalService"} {
		if !listed[want] {
			t.Errorf("reflection does not list %s (got %v)", want, listed)
		}
	}
}
