package clienttest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestTypedMethods runs every typed method against a live server and checks the balances each
// answer reports (allocation = committed + allocated_to_children + available).
func TestTypedMethods(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()

	fund, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", DisplayName: "France Relance", Allocation: 88 * million})
	if err != nil {
		t.Fatalf("CreateEnvelope(fund): %v", err)
	}
	if got := fund.GetEnvelope(); got.GetName() != "envelopes/fund" || got.GetAvailable() != 88*million || got.GetCurrencyCode() != "EUR" {
		t.Errorf("fund = %v, want envelopes/fund with 88 M€ available in EUR", got)
	}
	axis1, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Parent: "envelopes/fund", Allocation: 30 * million})
	if err != nil {
		t.Fatalf("CreateEnvelope(axis-1): %v", err)
	}
	if got := axis1.GetParent().GetAvailable(); got != 58*million {
		t.Errorf("fund available after axis-1 = %d, want %d", got, 58*million)
	}
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-2", Parent: "envelopes/fund", Allocation: 24 * million}); err != nil {
		t.Fatalf("CreateEnvelope(axis-2): %v", err)
	}

	moved, err := c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/axis-1", Destination: "envelopes/axis-2",
		Amount: 1 * million, Reason: "rebalancing"})
	if err != nil {
		t.Fatalf("MoveAllocation: %v", err)
	}
	if src, dst := moved.GetSource().GetAllocation(), moved.GetDestination().GetAllocation(); src != 29*million || dst != 25*million {
		t.Errorf("after the move: axis-1 %d, axis-2 %d; want %d, %d", src, dst, 29*million, 25*million)
	}

	award, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:200054781",
		Project: "guichet-numerique", Amount: 30_000_000, Description: "first wave"})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if cm := award.GetCommitment(); cm.GetAmount() != 30_000_000 || cm.GetRemaining() != 30_000_000 || cm.GetEnvelope() != "envelopes/axis-1" {
		t.Errorf("commitment = %v", cm)
	}
	if env := award.GetEnvelope(); env.GetCommitted() != 30_000_000 || env.GetAvailable() != 29*million-30_000_000 {
		t.Errorf("axis-1 after the award: committed %d, available %d", env.GetCommitted(), env.GetAvailable())
	}

	gotCommitment, err := c.GetCommitment(ctx, award.GetCommitment().GetName())
	if err != nil {
		t.Fatalf("GetCommitment: %v", err)
	}
	if diff := cmp.Diff(award.GetCommitment(), gotCommitment, protocmp.Transform()); diff != "" {
		t.Errorf("GetCommitment differs from what Commit answered (-commit +get):\n%s", diff)
	}
	gotEnvelope, err := c.GetEnvelope(ctx, "envelopes/axis-1")
	if err != nil {
		t.Fatalf("GetEnvelope: %v", err)
	}
	if diff := cmp.Diff(award.GetEnvelope(), gotEnvelope, protocmp.Transform()); diff != "" {
		t.Errorf("GetEnvelope differs from what Commit answered (-commit +get):\n%s", diff)
	}

	released, err := c.Release(ctx, client.ReleaseParams{Commitment: award.GetCommitment().GetName(), Amount: 5_000_000,
		Reason: "final cost lower than planned"})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if cm := released.GetCommitment(); cm.GetReleased() != 5_000_000 || cm.GetRemaining() != 25_000_000 {
		t.Errorf("after the release: released %d, remaining %d; want 5000000, 25000000", cm.GetReleased(), cm.GetRemaining())
	}
	if got := released.GetEnvelope().GetCommitted(); got != 25_000_000 {
		t.Errorf("axis-1 committed after the release = %d, want 25000000", got)
	}

	// A request id the client made itself is a UUIDv7, recorded with the entry.
	entries := collect(t, c.ListJournalEntries(ctx, client.JournalFilter{Commitment: award.GetCommitment().GetName()}))
	if len(entries) != 2 {
		t.Fatalf("the commitment has %d journal entries, want 2 (award, release)", len(entries))
	}
	if id, err := uuid.Parse(entries[0].GetRequestId()); err != nil || id.Version() != 7 {
		t.Errorf("generated request id %q is not a UUIDv7 (%v)", entries[0].GetRequestId(), err)
	}
	if entries[0].GetName() != award.GetJournalEntry() || entries[1].GetName() != released.GetJournalEntry() {
		t.Errorf("journal entries %s, %s; want %s, %s", entries[0].GetName(), entries[1].GetName(),
			award.GetJournalEntry(), released.GetJournalEntry())
	}

	// Invariant 5: a request id given by the caller names one operation; sending it again returns
	// the first outcome and posts nothing.
	again := client.CommitParams{Envelope: "envelopes/axis-2", Beneficiary: "siren:217500016", Project: "grc",
		Amount: 120_000_000, RequestID: "award-0002"}
	first, err := c.Commit(ctx, again)
	if err != nil {
		t.Fatalf("Commit(award-0002): %v", err)
	}
	second, err := c.Commit(ctx, again)
	if err != nil {
		t.Fatalf("Commit(award-0002) again: %v", err)
	}
	if diff := cmp.Diff(first, second, protocmp.Transform()); diff != "" {
		t.Errorf("the same request answered differently (-first +second):\n%s", diff)
	}
	if env, err := c.GetEnvelope(ctx, "envelopes/axis-2"); err != nil || env.GetCommitmentCount() != 1 || env.GetCommitted() != 120_000_000 {
		t.Errorf("axis-2 after one award sent twice: %v (%v); want one commitment of 120000000", env, err)
	}
	d.verify(t)
}

// TestTypedErrors checks that each refusal of the error table comes back as an *Error that
// errors.Is matches against its sentinel (and no other), that keeps its gRPC code for
// status.Code, and whose metadata can be read.
func TestTypedErrors(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	buildFund(t, c)
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "line-1-1", Parent: "envelopes/axis-1", Allocation: million}); err != nil {
		t.Fatal(err)
	}
	award, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 10, RequestID: "award-1"})
	if err != nil {
		t.Fatal(err)
	}
	commitment := award.GetCommitment().GetName()

	sentinels := []error{client.ErrInvalidArgument, client.ErrInvalidPageToken, client.ErrEnvelopeNotFound,
		client.ErrCommitmentNotFound, client.ErrEnvelopeAlreadyExists, client.ErrInsufficientFunds,
		client.ErrReleaseExceedsRemaining, client.ErrCurrencyMismatch, client.ErrEnvelopesNotRelated,
		client.ErrAmountOverflow, client.ErrRequestIDReused, client.ErrConflict, client.ErrUnavailable,
		client.ErrDeadlineExceeded, client.ErrCancelled, client.ErrInternal, client.ErrUnauthenticated, client.ErrPermissionDenied}

	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason client.Reason
		is     []error // the sentinels err must match; it must match no other
	}{
		{
			name: "insufficient funds",
			call: func() error {
				_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "too-big", Amount: 30 * million})
				return err
			},
			code: codes.FailedPrecondition, reason: client.ReasonInsufficientFunds, is: []error{client.ErrInsufficientFunds},
		},
		{
			name: "envelope not found",
			call: func() error { _, err := c.GetEnvelope(ctx, "envelopes/nowhere"); return err },
			code: codes.NotFound, reason: client.ReasonEnvelopeNotFound, is: []error{client.ErrEnvelopeNotFound},
		},
		{
			name: "commit to a missing envelope",
			call: func() error {
				_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/nowhere", Beneficiary: "b", Project: "p", Amount: 1})
				return err
			},
			code: codes.NotFound, reason: client.ReasonEnvelopeNotFound, is: []error{client.ErrEnvelopeNotFound},
		},
		{
			name: "commitment not found",
			call: func() error { _, err := c.GetCommitment(ctx, "commitments/"+uuid.NewString()); return err },
			code: codes.NotFound, reason: client.ReasonCommitmentNotFound, is: []error{client.ErrCommitmentNotFound},
		},
		{
			name: "request id reused",
			call: func() error {
				_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 11, RequestID: "award-1"})
				return err
			},
			code: codes.FailedPrecondition, reason: client.ReasonRequestIDReused, is: []error{client.ErrRequestIDReused},
		},
		{
			name: "release exceeds remaining",
			call: func() error {
				_, err := c.Release(ctx, client.ReleaseParams{Commitment: commitment, Amount: 11, Reason: "r"})
				return err
			},
			code: codes.FailedPrecondition, reason: client.ReasonReleaseExceedsRemaining, is: []error{client.ErrReleaseExceedsRemaining},
		},
		{
			name: "envelope already exists",
			call: func() error {
				_, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: 1})
				return err
			},
			code: codes.AlreadyExists, reason: client.ReasonEnvelopeAlreadyExists, is: []error{client.ErrEnvelopeAlreadyExists},
		},
		{
			name: "envelopes not related",
			call: func() error {
				_, err := c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/line-1-1", Destination: "envelopes/axis-2", Amount: 1, Reason: "r"})
				return err
			},
			code: codes.FailedPrecondition, reason: client.ReasonEnvelopesNotRelated, is: []error{client.ErrEnvelopesNotRelated},
		},
		{
			name: "currency mismatch",
			call: func() error {
				_, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "usd", Parent: "envelopes/fund", Allocation: 1, CurrencyCode: "USD"})
				return err
			},
			code: codes.FailedPrecondition, reason: client.ReasonCurrencyMismatch, is: []error{client.ErrCurrencyMismatch},
		},
		{
			name: "invalid argument",
			call: func() error {
				_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 0})
				return err
			},
			code: codes.InvalidArgument, reason: client.ReasonInvalidArgument, is: []error{client.ErrInvalidArgument},
		},
		{
			name: "invalid page token, through the generated client",
			call: func() error {
				_, err := c.Envelopes().ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageToken: "not-a-token"})
				return err
			},
			code: codes.InvalidArgument, reason: client.ReasonInvalidPageToken, is: []error{client.ErrInvalidPageToken, client.ErrInvalidArgument},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *client.Error", err, err)
			}
			if e.Code != tt.code || e.Reason != tt.reason {
				t.Errorf("got %v %s, want %v %s", e.Code, e.Reason, tt.code, tt.reason)
			}
			if got := status.Code(err); got != tt.code {
				t.Errorf("status.Code = %v, want %v", got, tt.code)
			}
			st, ok := status.FromError(err)
			if !ok || st.Code() != tt.code || !hasErrorInfo(st, string(tt.reason)) {
				t.Errorf("status.FromError = %v, %v; want %v with an ErrorInfo %s", st, ok, tt.code, tt.reason)
			}
			for _, s := range sentinels {
				if want := slices.Contains(tt.is, s); errors.Is(err, s) != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, !want, want)
				}
			}
		})
	}

	t.Run("cancelled by the caller", func(t *testing.T) {
		// A sentinel for every reason: CANCELLED too, for a call whose own context was
		// cancelled, alongside context.Canceled.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.GetEnvelope(cctx, "envelopes/axis-1")
		if !errors.Is(err, client.ErrCancelled) || !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrDeadlineExceeded) {
			t.Errorf("err = %v, want ErrCancelled and context.Canceled", err)
		}
	})
	t.Run("insufficient funds figures", func(t *testing.T) {
		_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "too-big", Amount: 30 * million})
		var e *client.Error
		if !errors.As(err, &e) || !errors.Is(err, client.ErrInsufficientFunds) {
			t.Fatalf("err = %v, want INSUFFICIENT_FUNDS", err)
		}
		// axis-1: 30 M€, of which 1 M€ went to line-1-1 and 10 cents to award-1.
		wantAvailable := int64(29*million - 10)
		if got, ok := e.Available(); !ok || got != wantAvailable {
			t.Errorf("Available() = %d, %v; want %d", got, ok, wantAvailable)
		}
		if got, ok := e.Requested(); !ok || got != 30*million {
			t.Errorf("Requested() = %d, %v; want %d", got, ok, 30*million)
		}
		if _, ok := e.Remaining(); ok {
			t.Error("Remaining() is set on an INSUFFICIENT_FUNDS")
		}
		if e.Metadata["envelope"] != "envelopes/axis-1" || e.Metadata["currency_code"] != "EUR" {
			t.Errorf("metadata = %v", e.Metadata)
		}
		if _, err := uuid.Parse(e.RequestID); err != nil {
			t.Errorf("Error.RequestID = %q, want the generated request id", e.RequestID)
		}
	})
	t.Run("release figures", func(t *testing.T) {
		_, err := c.Release(ctx, client.ReleaseParams{Commitment: commitment, Amount: 11, Reason: "r", RequestID: "release-1"})
		var e *client.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want an *Error", err)
		}
		remaining, ok1 := e.Remaining()
		requested, ok2 := e.Requested()
		if !ok1 || !ok2 || remaining != 10 || requested != 11 || e.RequestID != "release-1" {
			t.Errorf("Remaining() = %d, %v; Requested() = %d, %v; RequestID %q; want 10, 11, release-1", remaining, ok1, requested, ok2, e.RequestID)
		}
	})
	t.Run("request id reused names the id", func(t *testing.T) {
		_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 12, RequestID: "award-1"})
		var e *client.Error
		if !errors.As(err, &e) || e.RequestID != "award-1" || e.Metadata["request_id"] != "award-1" {
			t.Errorf("err = %v (RequestID %q, metadata %v), want REQUEST_ID_REUSED naming award-1", err, e.RequestID, e.Metadata)
		}
	})
	t.Run("field violations", func(t *testing.T) {
		_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: -5})
		var e *client.Error
		if !errors.As(err, &e) || len(e.FieldViolations) == 0 || e.FieldViolations[0].Field != "amount" {
			t.Errorf("err = %v, want a violation of field amount", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.GetEnvelope(cctx, "envelopes/fund")
		if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled || errors.Is(err, client.ErrUnavailable) {
			t.Errorf("err = %v, want codes.Canceled matching context.Canceled", err)
		}
	})
	// A refusal posts nothing (invariant 7).
	d.verify(t)
}

func hasErrorInfo(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == client.ErrorDomain && info.GetReason() == reason {
			return true
		}
	}
	return false
}

// TestPagination walks every list over several pages and checks that a loop that breaks early
// fetches no more pages than it used.
func TestPagination(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	calls := &callCounter{}
	c := dial(t, d.addr, client.WithDialOptions(grpc.WithChainUnaryInterceptor(calls.interceptor)))
	ctx := context.Background()
	buildFund(t, c)
	var lines []string
	for i := range 7 {
		resp, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: fmt.Sprintf("line-%d", i+1), Parent: "envelopes/axis-1", Allocation: million})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, resp.GetEnvelope().GetName())
	}
	var awards []string
	for i := range 7 {
		beneficiary := "siren:200054781"
		if i%2 == 1 {
			beneficiary = "siren:217500016"
		}
		resp, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-2", Beneficiary: beneficiary, Project: fmt.Sprintf("p-%d", i), Amount: int64(1000 + i)})
		if err != nil {
			t.Fatal(err)
		}
		awards = append(awards, resp.GetCommitment().GetName())
	}

	// pagesFetched counts the calls of method made by fn.
	pagesFetched := func(method string, fn func()) int {
		before := calls.count(method)
		fn()
		return calls.count(method) - before
	}
	names := func(n int, name func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = name(i)
		}
		return out
	}

	t.Run("envelopes", func(t *testing.T) {
		var got []*pb.Envelope
		n := pagesFetched(pb.EnvelopeService_ListEnvelopes_FullMethodName, func() {
			got = collect(t, c.ListEnvelopes(ctx, client.EnvelopeFilter{Parent: "envelopes/axis-1", PageSize: 2}))
		})
		if diff := cmp.Diff(lines, names(len(got), func(i int) string { return got[i].GetName() })); diff != "" {
			t.Errorf("envelopes (-want +got):\n%s", diff)
		}
		if n != 4 {
			t.Errorf("fetched %d pages of 2 for 7 envelopes, want 4", n)
		}
		all := collect(t, c.ListEnvelopes(ctx, client.EnvelopeFilter{PageSize: 3}))
		if len(all) != 11 {
			t.Errorf("ListEnvelopes without parent yielded %d envelopes, want 11", len(all))
		}
	})
	t.Run("commitments", func(t *testing.T) {
		var got []*pb.Commitment
		n := pagesFetched(pb.CommitmentService_ListCommitments_FullMethodName, func() {
			got = collect(t, c.ListCommitments(ctx, client.CommitmentFilter{Envelope: "envelopes/axis-2", PageSize: 3}))
		})
		if diff := cmp.Diff(awards, names(len(got), func(i int) string { return got[i].GetName() })); diff != "" {
			t.Errorf("commitments (-want +got):\n%s", diff)
		}
		if n != 3 {
			t.Errorf("fetched %d pages of 3 for 7 commitments, want 3", n)
		}
		some := collect(t, c.ListCommitments(ctx, client.CommitmentFilter{Beneficiary: "siren:217500016", PageSize: 1}))
		want := []string{awards[1], awards[3], awards[5]}
		if diff := cmp.Diff(want, names(len(some), func(i int) string { return some[i].GetName() })); diff != "" {
			t.Errorf("commitments of one beneficiary (-want +got):\n%s", diff)
		}
	})
	t.Run("journal entries", func(t *testing.T) {
		var got []*pb.JournalEntry
		n := pagesFetched(pb.JournalService_ListJournalEntries_FullMethodName, func() {
			got = collect(t, c.ListJournalEntries(ctx, client.JournalFilter{Envelope: "envelopes/axis-2", PageSize: 2}))
		})
		// axis-2: its allocation from the fund, then the seven awards, oldest first.
		if len(got) != 8 || got[0].GetKind() != pb.EntryKind_ENTRY_KIND_ENVELOPE_ALLOCATED {
			t.Fatalf("got %d entries starting with %v, want 8 starting with the allocation", len(got), got[0].GetKind())
		}
		for _, e := range got[1:] {
			if e.GetKind() != pb.EntryKind_ENTRY_KIND_COMMITTED {
				t.Errorf("entry %s is %v, want COMMITTED", e.GetName(), e.GetKind())
			}
		}
		if n != 4 {
			t.Errorf("fetched %d pages of 2 for 8 entries, want 4", n)
		}
	})
	t.Run("break stops fetching", func(t *testing.T) {
		var seen []string
		n := pagesFetched(pb.EnvelopeService_ListEnvelopes_FullMethodName, func() {
			for env, err := range c.ListEnvelopes(ctx, client.EnvelopeFilter{Parent: "envelopes/axis-1", PageSize: 2}) {
				if err != nil {
					t.Fatal(err)
				}
				seen = append(seen, env.GetName())
				if len(seen) == 3 {
					break
				}
			}
		})
		if !slices.Equal(seen, lines[:3]) || n != 2 {
			t.Errorf("saw %v over %d pages, want %v over 2", seen, n, lines[:3])
		}
		n = pagesFetched(pb.JournalService_ListJournalEntries_FullMethodName, func() {
			for range c.ListJournalEntries(ctx, client.JournalFilter{PageSize: 5}) {
				break
			}
		})
		if n != 1 {
			t.Errorf("breaking at the first entry fetched %d pages, want 1", n)
		}
	})
	t.Run("error ends the sequence", func(t *testing.T) {
		var errs []error
		for env, err := range c.ListCommitments(ctx, client.CommitmentFilter{PageSize: -1}) {
			if env != nil {
				t.Errorf("yielded %v with an invalid page size", env)
			}
			errs = append(errs, err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], client.ErrInvalidArgument) {
			t.Errorf("yielded errors %v, want one INVALID_ARGUMENT", errs)
		}
	})
}

// TestRetryAcrossRestart is invariant 5 seen from the client: the first attempt of a Commit is
// decided and recorded, but its answer is lost (the server answers UNAVAILABLE and goes down);
// the client's retry reaches a new server on the same database and port with the same request
// id, and gets the first outcome. The award is made once.
func TestRetryAcrossRestart(t *testing.T) {
	t.Parallel()
	database := testdb.SQLite(t)
	first := startLedgerd(t, database, "127.0.0.1:0")

	var (
		decided   = make(chan struct{})
		recorded  *pb.CommitResponse // the outcome the first server decided, set before decided closes
		firstID   string
		goingAway atomic.Bool
		loseReply = onMethod(pb.CommitmentService_Commit_FullMethodName,
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				goneAway := status.Error(codes.Unavailable, "the server went away before answering")
				if goingAway.Load() {
					// An attempt that arrives while the server stops must not reach the old ledger.
					return nil, goneAway
				}
				resp, err := handler(ctx, req) // the ledger decides and commits
				if err != nil {
					return resp, err
				}
				if goingAway.CompareAndSwap(false, true) {
					recorded, firstID = resp.(*pb.CommitResponse), req.(*pb.CommitRequest).GetRequestId()
					close(decided)
				}
				return nil, goneAway
			})
	)
	gw1 := startGateway(t, first.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{loseReply}})
	addr := gw1.addr // the fixed port both servers serve on

	c := dial(t, addr, client.WithRetry(50, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: 30 * million}); err != nil {
		t.Fatal(err)
	}

	type result struct {
		resp *pb.CommitResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:200054781",
			Project: "guichet-numerique", Amount: 30_000_000})
		done <- result{resp, err}
	}()

	// Restart: once the award is recorded, the first server answers its lost reply and stops; a
	// second one opens the same SQLite file and serves on the same port.
	<-decided
	gw1.stop()
	first.stop()
	second := startLedgerd(t, database, "127.0.0.1:0")
	var (
		mu   sync.Mutex
		seen []metadata.MD // the Commit attempts the second server received
		ids  []string
	)
	record := onMethod(pb.CommitmentService_Commit_FullMethodName,
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			seen, ids = append(seen, md), append(ids, req.(*pb.CommitRequest).GetRequestId())
			mu.Unlock()
			return handler(ctx, req)
		})
	startGateway(t, second.addr, gatewayConfig{addr: addr, interceptors: []grpc.UnaryServerInterceptor{record}})

	r := <-done
	if r.err != nil {
		t.Fatalf("Commit across the restart: %v", r.err)
	}
	if diff := cmp.Diff(recorded, r.resp, protocmp.Transform()); diff != "" {
		t.Errorf("the retry's answer differs from the outcome the first server recorded (-recorded +got):\n%s", diff)
	}
	mu.Lock()
	if len(ids) == 0 {
		t.Fatal("the second server received no Commit")
	}
	for i, id := range ids {
		if id != firstID {
			t.Errorf("retry %d carried request id %q, the first attempt %q", i, id, firstID)
		}
		if seen[i].Get("x-retry-attempt") == nil {
			t.Errorf("call %d to the second server is not marked as a retry", i)
		}
	}
	mu.Unlock()

	commitments := collect(t, c.ListCommitments(ctx, client.CommitmentFilter{Envelope: "envelopes/axis-1"}))
	if len(commitments) != 1 || commitments[0].GetName() != recorded.GetCommitment().GetName() {
		t.Errorf("commitments of axis-1: %v; want only %s", commitments, recorded.GetCommitment().GetName())
	}
	var entries []*pb.JournalEntry
	for _, e := range collect(t, c.ListJournalEntries(ctx, client.JournalFilter{})) {
		if e.GetRequestId() == firstID {
			entries = append(entries, e)
		}
	}
	if len(entries) != 1 || entries[0].GetName() != recorded.GetJournalEntry() {
		t.Errorf("journal entries of request %s: %v; want only %s", firstID, entries, recorded.GetJournalEntry())
	}
	if env, err := c.GetEnvelope(ctx, "envelopes/axis-1"); err != nil || env.GetCommitted() != 30_000_000 || env.GetCommitmentCount() != 1 {
		t.Errorf("axis-1 = %v (%v); want one award of 30000000", env, err)
	}
	second.verify(t)
}

// TestRetryGivesUp checks the bound: a call that keeps failing with UNAVAILABLE is tried exactly
// as many times as configured, always with the same request id, and fails with ErrUnavailable.
func TestRetryGivesUp(t *testing.T) {
	t.Parallel()
	t.Run("server keeps answering UNAVAILABLE", func(t *testing.T) {
		t.Parallel()
		d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
		var (
			mu  sync.Mutex
			ids []string
		)
		down := onMethod(pb.CommitmentService_Commit_FullMethodName,
			func(_ context.Context, req any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
				mu.Lock()
				ids = append(ids, req.(*pb.CommitRequest).GetRequestId())
				mu.Unlock()
				return nil, status.Error(codes.Unavailable, "database unreachable")
			})
		gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{down}})
		c := dial(t, gw.addr, client.WithRetry(4, time.Millisecond))
		ctx := context.Background()
		if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: million}); err != nil {
			t.Fatal(err)
		}
		_, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1})
		if !errors.Is(err, client.ErrUnavailable) || status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(ids) != 4 {
			t.Errorf("the server received %d attempts, want 4", len(ids))
		}
		var e *client.Error
		if !errors.As(err, &e) || ids[0] == "" || e.RequestID != ids[0] {
			t.Errorf("Error.RequestID = %q, want the id sent %q", e.RequestID, ids[0])
		}
		for i, id := range ids {
			if id != ids[0] {
				t.Errorf("attempt %d carried request id %q, the first %q", i, id, ids[0])
			}
		}
		if env, err := c.GetEnvelope(ctx, "envelopes/axis-1"); err != nil || env.GetCommitted() != 0 {
			t.Errorf("axis-1 = %v (%v), want nothing committed", env, err)
		}
	})
	t.Run("no server listening", func(t *testing.T) {
		t.Parallel()
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		calls := &callCounter{}
		c := dial(t, addr, client.WithRetry(3, time.Millisecond), client.WithDialOptions(grpc.WithChainUnaryInterceptor(calls.interceptor)))
		_, err = c.GetEnvelope(context.Background(), "envelopes/axis-1")
		if !errors.Is(err, client.ErrUnavailable) || status.Code(err) != codes.Unavailable {
			t.Errorf("err = %v, want ErrUnavailable", err)
		}
		if n := calls.count(pb.EnvelopeService_GetEnvelope_FullMethodName); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
	})
}

// attempts records the arrival time of each attempt of a Commit at a gateway.
type attempts struct {
	mu    sync.Mutex
	times []time.Time
	ids   []string
}

func (a *attempts) add(req any) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, time.Now())
	a.ids = append(a.ids, req.(*pb.CommitRequest).GetRequestId())
	return len(a.times)
}

func (a *attempts) snapshot() ([]time.Time, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.times), slices.Clone(a.ids)
}

// failFirst makes the first Commit attempt fail with err; later attempts reach the ledger.
func failFirst(a *attempts, err error) grpc.UnaryServerInterceptor {
	return onMethod(pb.CommitmentService_Commit_FullMethodName,
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if a.add(req) == 1 {
				return nil, err
			}
			return handler(ctx, req)
		})
}

func retryInfoError(t *testing.T, delay time.Duration) error {
	t.Helper()
	st, err := status.New(codes.ResourceExhausted, "too many awards at once; slow down").
		WithDetails(&errdetails.ErrorInfo{Domain: client.ErrorDomain, Reason: string(client.ReasonRateLimited)},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// TestRetryInfo checks that the client waits as long as a google.rpc.RetryInfo asks before it
// retries, though its own backoff is a millisecond, and gives up at once when it asks too much.
func TestRetryInfo(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	setup := dial(t, d.addr)
	if _, err := setup.CreateEnvelope(context.Background(), client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: million}); err != nil {
		t.Fatal(err)
	}
	commit := func(ctx context.Context, c *client.Client) (*pb.CommitResponse, error) {
		return c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1})
	}

	t.Run("waits the delay", func(t *testing.T) {
		t.Parallel()
		const delay = 50 * time.Millisecond
		a := &attempts{}
		gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{failFirst(a, retryInfoError(t, delay))}})
		c := dial(t, gw.addr, client.WithRetry(5, time.Millisecond))
		if _, err := commit(context.Background(), c); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		times, ids := a.snapshot()
		if len(times) != 2 {
			t.Fatalf("%d attempts, want 2", len(times))
		}
		if gap := times[1].Sub(times[0]); gap < delay {
			t.Errorf("retried %v after a RetryInfo of %v", gap, delay)
		}
		if ids[0] != ids[1] {
			t.Errorf("the retry carried request id %q, the first attempt %q", ids[1], ids[0])
		}
	})
	t.Run("longer than the bound", func(t *testing.T) {
		t.Parallel()
		a := &attempts{}
		gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{failFirst(a, retryInfoError(t, time.Hour))}})
		c := dial(t, gw.addr, client.WithRetry(5, time.Millisecond))
		_, err := commit(context.Background(), c)
		var e *client.Error
		if !errors.As(err, &e) || e.Code != codes.ResourceExhausted {
			t.Fatalf("err = %v, want RESOURCE_EXHAUSTED at once", err)
		}
		if d, ok := e.RetryDelay(); !ok || d != time.Hour {
			t.Errorf("RetryDelay() = %v, %v; want 1h", d, ok)
		}
		if times, _ := a.snapshot(); len(times) != 1 {
			t.Errorf("%d attempts, want 1", len(times))
		}
	})
	t.Run("longer than the deadline", func(t *testing.T) {
		t.Parallel()
		a := &attempts{}
		// A delay far longer than a deadline far longer than the call takes, on any machine.
		gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{failFirst(a, retryInfoError(t, time.Hour))}})
		c := dial(t, gw.addr, client.WithRetry(5, time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, err := commit(ctx, c)
		// The caller learns why the call failed, not that its deadline passed while waiting.
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("err = %v, want RESOURCE_EXHAUSTED", err)
		}
		if times, _ := a.snapshot(); len(times) != 1 {
			t.Errorf("%d attempts, want 1", len(times))
		}
	})
}

// TestRetriedCodes checks which failures are retried: the transient ones, never a refusal, and
// RESOURCE_EXHAUSTED only as the server's rate limit (reason RATE_LIMITED): gRPC's own, for a
// message over a size limit, would get the same answer again (issue 16).
func TestRetriedCodes(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	setup := dial(t, d.addr)
	if _, err := setup.CreateEnvelope(context.Background(), client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: million}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		code    codes.Code
		reason  client.Reason // of the ErrorInfo sent with it; none when empty
		retried bool
	}{
		{codes.Unavailable, "", true},
		{codes.Aborted, "", true},
		{codes.Aborted, client.ReasonETagMismatch, false}, // a stale etag stays stale (AIP-154)
		{codes.ResourceExhausted, client.ReasonRateLimited, true},
		{codes.ResourceExhausted, "", false},
		{codes.FailedPrecondition, "", false},
		{codes.InvalidArgument, "", false},
		{codes.NotFound, "", false},
		{codes.Internal, "", false},
		{codes.DeadlineExceeded, "", false},
		{codes.Unknown, "", false},
	} {
		t.Run(strings.TrimSuffix(tt.code.String()+" "+string(tt.reason), " "), func(t *testing.T) {
			t.Parallel()
			st := status.New(tt.code, "injected")
			if tt.reason != "" {
				var err error
				if st, err = st.WithDetails(&errdetails.ErrorInfo{Domain: client.ErrorDomain, Reason: string(tt.reason)}); err != nil {
					t.Fatal(err)
				}
			}
			a := &attempts{}
			gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{failFirst(a, st.Err())}})
			c := dial(t, gw.addr, client.WithRetry(3, time.Millisecond))
			_, err := c.Commit(context.Background(), client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1})
			times, _ := a.snapshot()
			if tt.retried {
				if err != nil || len(times) != 2 {
					t.Errorf("err = %v after %d attempts, want success after 2", err, len(times))
				}
				return
			}
			if status.Code(err) != tt.code || len(times) != 1 {
				t.Errorf("err = %v after %d attempts, want %v after 1", err, len(times), tt.code)
			}
		})
	}
	t.Run("retries disabled", func(t *testing.T) {
		t.Parallel()
		a := &attempts{}
		gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{failFirst(a, status.Error(codes.Unavailable, "injected"))}})
		c := dial(t, gw.addr, client.WithRetry(1, time.Millisecond))
		_, err := c.Commit(context.Background(), client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1})
		if times, _ := a.snapshot(); !errors.Is(err, client.ErrUnavailable) || len(times) != 1 {
			t.Errorf("err = %v after %d attempts, want UNAVAILABLE after 1", err, len(times))
		}
	})
}

// TestCredentials checks where the bearer token goes: with every call over TLS, over plaintext
// only when WithInsecure says so, and that the default transport is TLS.
func TestCredentials(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	authorization := func(got *[]string, mu *sync.Mutex) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			*got = append(*got, md.Get("authorization")...)
			mu.Unlock()
			return handler(ctx, req)
		}
	}
	getFund := func(c *client.Client) error {
		_, err := c.GetEnvelope(context.Background(), "envelopes/fund")
		return err
	}

	t.Run("plaintext with WithInsecure", func(t *testing.T) {
		t.Parallel()
		var (
			mu  sync.Mutex
			got []string
		)
		gw := startGateway(t, d.addr, gatewayConfig{interceptors: []grpc.UnaryServerInterceptor{authorization(&got, &mu)}})
		c := dial(t, gw.addr, client.WithToken("s3cret"))
		if err := getFund(c); !errors.Is(err, client.ErrEnvelopeNotFound) {
			t.Fatalf("GetEnvelope: %v, want ENVELOPE_NOT_FOUND from the server", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(got, []string{"Bearer s3cret"}) {
			t.Errorf("authorization = %q, want [Bearer s3cret]", got)
		}
	})
	t.Run("never over plaintext otherwise", func(t *testing.T) {
		t.Parallel()
		_, err := client.Dial(context.Background(), d.addr, client.WithToken("s3cret"),
			client.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
		if err == nil {
			t.Error("Dial sent a token over plaintext without WithInsecure")
		}
	})
	t.Run("TLS", func(t *testing.T) {
		t.Parallel()
		serverTLS, roots := selfSignedTLS(t)
		var (
			mu  sync.Mutex
			got []string
		)
		gw := startGateway(t, d.addr, gatewayConfig{tls: serverTLS, interceptors: []grpc.UnaryServerInterceptor{authorization(&got, &mu)}})
		c, err := client.Dial(context.Background(), gw.addr, client.WithTLSConfig(&tls.Config{RootCAs: roots}), client.WithToken("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := getFund(c); !errors.Is(err, client.ErrEnvelopeNotFound) {
			t.Fatalf("GetEnvelope over TLS: %v, want ENVELOPE_NOT_FOUND from the server", err)
		}
		mu.Lock()
		if !slices.Equal(got, []string{"Bearer s3cret"}) {
			t.Errorf("authorization = %q, want [Bearer s3cret]", got)
		}
		mu.Unlock()

		// The default is TLS with the system's roots, which do not know this server.
		def, err := client.Dial(context.Background(), gw.addr, client.WithRetry(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer def.Close()
		if err := getFund(def); !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("GetEnvelope with the system's roots: %v, want UNAVAILABLE (certificate not trusted)", err)
		}
	})
	t.Run("WithInsecure and WithTLSConfig", func(t *testing.T) {
		t.Parallel()
		if _, err := client.Dial(context.Background(), d.addr, client.WithInsecure(), client.WithTLSConfig(&tls.Config{})); err == nil {
			t.Error("Dial accepted both WithInsecure and WithTLSConfig")
		}
	})
}

// selfSignedTLS makes a server certificate for 127.0.0.1 and the pool that trusts it.
func selfSignedTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ledgerd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots
}
