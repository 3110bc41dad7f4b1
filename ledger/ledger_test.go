package ledger

// Behavioural tests of the ledger, run on every engine by forEachEngine (testdb_test.go). Each
// test names the invariant of DESIGN.md §2 it protects:
//
//  1. every journal entry's postings sum to zero;
//  2. available >= 0 for every envelope at every commit point;
//  3. released <= amount for every commitment;
//  4. stored balances equal the balances recomputed from the journal;
//  5. a request id names one operation;
//  6. the journal is append-only;
//  7. a success is durable, a failure posted nothing.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Amounts of the France Relance fund "Transformation numérique des collectivités territoriales",
// in euro cents.
const (
	fundCents  int64 = 8_800_000_000 // 88 M€
	axis1Cents int64 = 3_000_000_000 // 30 M€
	axis2Cents int64 = 2_400_000_000 // 24 M€
	axis3Cents int64 = 3_400_000_000 // 34 M€
)

const testCaller = "admin:test"

// balances is what the tests compare of an envelope.
type balances struct {
	Allocation, Committed, ChildrenAllocated, Available, Released, CommitmentCount int64
}

func balancesOf(e Envelope) balances {
	return balances{e.Allocation, e.Committed, e.ChildrenAllocated, e.Available(), e.Released, e.CommitmentCount}
}

// newRequestID returns a request id no other request of the test uses.
func newRequestID() string { return "req-" + newID() }

func mustCreateEnvelope(t *testing.T, l *Ledger, id, parent string, allocation int64) CreateEnvelopeResult {
	t.Helper()
	res, err := l.CreateEnvelope(t.Context(), CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
		EnvelopeID: id, ParentID: parent, DisplayName: "envelope " + id, Allocation: allocation})
	if err != nil {
		t.Fatalf("CreateEnvelope(%s, parent %q, %d): %v", id, parent, allocation, err)
	}
	return res
}

// buildFund creates the France Relance fund and its three axes, and returns the creation results
// by envelope id.
func buildFund(t *testing.T, l *Ledger) map[string]CreateEnvelopeResult {
	t.Helper()
	return map[string]CreateEnvelopeResult{
		"fund":   mustCreateEnvelope(t, l, "fund", "", fundCents),
		"axis-1": mustCreateEnvelope(t, l, "axis-1", "fund", axis1Cents),
		"axis-2": mustCreateEnvelope(t, l, "axis-2", "fund", axis2Cents),
		"axis-3": mustCreateEnvelope(t, l, "axis-3", "fund", axis3Cents),
	}
}

func commitCmd(envelope, beneficiary string, amount int64) Commit {
	return Commit{RequestID: newRequestID(), Caller: "service:test", EnvelopeID: envelope,
		Beneficiary: beneficiary, Project: "project of " + beneficiary, Amount: amount}
}

// untilDecided sends a request again, unchanged (the same request id), while it answers
// TRANSACTION_CONFLICT, as a client is told to: a request that lost its serializable retries to
// other processes' transactions recorded nothing. Tests of several processes racing on PostgreSQL
// use it where they check what was decided, not how often a transaction had to start again.
func untilDecided[R any](send func() (R, error)) (R, error) {
	for tries := 1; ; tries++ {
		res, err := send()
		if !errors.Is(err, ErrTransactionConflict) || tries == 50 {
			return res, err
		}
	}
}

func mustCommit(t *testing.T, l *Ledger, envelope, beneficiary string, amount int64) CommitResult {
	t.Helper()
	res, err := l.Commit(t.Context(), commitCmd(envelope, beneficiary, amount))
	if err != nil {
		t.Fatalf("Commit(%s, %s, %d): %v", envelope, beneficiary, amount, err)
	}
	return res
}

func releaseCmd(commitmentID string, amount int64) Release {
	return Release{RequestID: newRequestID(), Caller: "service:test", CommitmentID: commitmentID,
		Amount: amount, Reason: "cost lower than planned"}
}

func mustGetEnvelope(t *testing.T, l *Ledger, id string) Envelope {
	t.Helper()
	env, err := l.GetEnvelope(t.Context(), id)
	if err != nil {
		t.Fatalf("GetEnvelope(%s): %v", id, err)
	}
	return env
}

// checkBalances asserts the stored balances of each envelope.
func checkBalances(t *testing.T, l *Ledger, want map[string]balances) {
	t.Helper()
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if diff := cmp.Diff(want[id], balancesOf(mustGetEnvelope(t, l, id))); diff != "" {
			t.Errorf("envelope %s balances (-want +got):\n%s", id, diff)
		}
	}
}

// allEntries reads every journal entry the filter selects, page by page.
func allEntries(t *testing.T, l *Ledger, f EntryFilter) []Entry {
	t.Helper()
	var all []Entry
	page := Page{Size: 100}
	for {
		entries, next, err := l.ListEntries(t.Context(), f, page)
		if err != nil {
			t.Fatalf("ListEntries(%+v): %v", f, err)
		}
		all = append(all, entries...)
		if next == "" {
			return all
		}
		page.Token = next
	}
}

func entryCount(t *testing.T, l *Ledger) int {
	t.Helper()
	return len(allEntries(t, l, EntryFilter{}))
}

// requireError asserts that err is the ledger error target (by reason) and returns it.
func requireError(t *testing.T, err error, target *Error) *Error {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %s", err, target.Reason)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	return e
}

// requireMetadata asserts some metadata of a ledger error.
func requireMetadata(t *testing.T, e *Error, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := e.Metadata[k]; !ok || got != v {
			t.Errorf("%s metadata[%q] = %q (present: %v), want %q; all metadata: %v", e.Reason, k, got, ok, v, e.Metadata)
		}
	}
}

func requireVerifyOK(t *testing.T, l *Ledger) VerifyReport {
	t.Helper()
	rep, err := l.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify found discrepancies: %v", rep.Discrepancies)
	}
	return rep
}

// rawExec runs one statement in a read-write transaction, bypassing the ledger's logic.
func rawExec(ctx context.Context, l *Ledger, query string, args ...any) error {
	return l.db.ReadWrite(ctx, func(q store.Querier) error {
		_, err := q.Exec(ctx, query, args...)
		return err
	})
}

var envelopeTimes = cmpopts.IgnoreFields(Envelope{}, "CreatedAt", "UpdatedAt", "EffectiveAt", "LatestEffectiveAt")

// TestFranceRelanceFund builds the reference fund.
// Invariant 2: a child's allocation comes out of its parent's available amount, which never goes
// below zero; invariant 1: the funding and allocation entries balance; invariant 7: a refused
// creation posts nothing.
func TestFranceRelanceFund(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		created := buildFund(t, l)

		if diff := cmp.Diff(Envelope{ID: "fund", DisplayName: "envelope fund", Currency: "EUR", Allocation: fundCents},
			created["fund"].Envelope, envelopeTimes); diff != "" {
			t.Errorf("created fund (-want +got):\n%s", diff)
		}
		if created["fund"].Parent != nil {
			t.Errorf("creating a root returned a parent: %+v", created["fund"].Parent)
		}
		// Each child's result shows its parent right after the allocation.
		allocatedSoFar := int64(0)
		for _, axis := range []struct {
			id         string
			allocation int64
		}{{"axis-1", axis1Cents}, {"axis-2", axis2Cents}, {"axis-3", axis3Cents}} {
			allocatedSoFar += axis.allocation
			res := created[axis.id]
			want := Envelope{ID: axis.id, ParentID: "fund", DisplayName: "envelope " + axis.id, Currency: "EUR",
				Allocation: axis.allocation}
			if diff := cmp.Diff(want, res.Envelope, envelopeTimes); diff != "" {
				t.Errorf("created %s (-want +got):\n%s", axis.id, diff)
			}
			if res.Parent == nil {
				t.Fatalf("creating %s returned no parent", axis.id)
			}
			if diff := cmp.Diff(balances{Allocation: fundCents, ChildrenAllocated: allocatedSoFar,
				Available: fundCents - allocatedSoFar}, balancesOf(*res.Parent)); diff != "" {
				t.Errorf("parent after creating %s (-want +got):\n%s", axis.id, diff)
			}
		}
		checkBalances(t, l, map[string]balances{
			"fund":   {Allocation: fundCents, ChildrenAllocated: fundCents, Available: 0},
			"axis-1": {Allocation: axis1Cents, Available: axis1Cents},
			"axis-2": {Allocation: axis2Cents, Available: axis2Cents},
			"axis-3": {Allocation: axis3Cents, Available: axis3Cents},
		})

		// Invariant 1: the journal holds one funding and three balanced allocation entries.
		type entryShape struct {
			Kind     EntryKind
			Currency string
			Caller   string
			Postings []Posting
		}
		var got []entryShape
		for _, e := range allEntries(t, l, EntryFilter{}) {
			got = append(got, entryShape{e.Kind, e.Currency, e.Caller, e.Postings})
		}
		allocation := func(child string, amount int64) entryShape {
			return entryShape{KindEnvelopeAllocated, "EUR", testCaller,
				[]Posting{{Account: "envelopes/fund", Amount: -amount}, {Account: "envelopes/" + child, Amount: amount}}}
		}
		want := []entryShape{
			{KindEnvelopeFunded, "EUR", testCaller, []Posting{{Account: FundingAccount, Amount: -fundCents}, {Account: "envelopes/fund", Amount: fundCents}}},
			allocation("axis-1", axis1Cents), allocation("axis-2", axis2Cents), allocation("axis-3", axis3Cents),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("journal (-want +got):\n%s", diff)
		}

		// A fourth axis does not fit: the fund has nothing left to allocate.
		before := allEntries(t, l, EntryFilter{})
		_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "axis-4", ParentID: "fund", Allocation: 1})
		e := requireError(t, err, ErrInsufficientFunds)
		requireMetadata(t, e, map[string]string{"envelope": "envelopes/fund", "available": "0", "requested": "1"})
		if diff := cmp.Diff(before, allEntries(t, l, EntryFilter{})); diff != "" {
			t.Errorf("a refused creation changed the journal (-before +after):\n%s", diff)
		}
		if _, err := l.GetEnvelope(ctx, "axis-4"); !errors.Is(err, ErrEnvelopeNotFound) {
			t.Errorf("GetEnvelope(axis-4) after a refused creation: %v, want ENVELOPE_NOT_FOUND", err)
		}
		envs, _, err := l.ListEnvelopes(ctx, EnvelopeFilter{ParentID: "fund"}, Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != 3 {
			t.Errorf("fund has %d children after a refused creation, want 3", len(envs))
		}
		checkBalances(t, l, map[string]balances{"fund": {Allocation: fundCents, ChildrenAllocated: fundCents}})

		// An envelope id is created once.
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "axis-1", ParentID: "fund", Allocation: 1})
		requireError(t, err, ErrEnvelopeAlreadyExists)

		rep := requireVerifyOK(t, l)
		if rep.Envelopes != 4 || rep.Entries != 4 || rep.Commitments != 0 {
			t.Errorf("Verify counted %d envelopes, %d entries, %d commitments; want 4, 4, 0",
				rep.Envelopes, rep.Entries, rep.Commitments)
		}
	})
}

// TestCommitAndRelease follows an award of axis 3 through partial and full release.
// Invariant 2: a commit never takes more than available (exactly available is allowed);
// invariant 3: a release never exceeds what the commitment still holds; invariant 7: refusals
// post nothing.
func TestCommitAndRelease(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)

		const award = 970_000_000 // 9.7 M€
		c := mustCommit(t, l, "axis-3", "commune-de-rodez", award)
		if diff := cmp.Diff(Commitment{ID: c.Commitment.ID, EnvelopeID: "axis-3", Beneficiary: "commune-de-rodez",
			Project: "project of commune-de-rodez", Currency: "EUR", Amount: award},
			c.Commitment, cmpopts.IgnoreFields(Commitment{}, "CreatedAt", "UpdatedAt", "EffectiveAt")); diff != "" {
			t.Errorf("commitment (-want +got):\n%s", diff)
		}
		wantAxis3 := balances{Allocation: axis3Cents, Committed: award, Available: axis3Cents - award, CommitmentCount: 1}
		if diff := cmp.Diff(wantAxis3, balancesOf(c.Envelope)); diff != "" {
			t.Errorf("envelope in the commit result (-want +got):\n%s", diff)
		}
		// The result is what is stored.
		if diff := cmp.Diff(c.Envelope, mustGetEnvelope(t, l, "axis-3")); diff != "" {
			t.Errorf("stored envelope differs from the commit result (-result +stored):\n%s", diff)
		}
		if got, err := l.GetCommitment(ctx, c.Commitment.ID); err != nil {
			t.Fatal(err)
		} else if diff := cmp.Diff(c.Commitment, got); diff != "" {
			t.Errorf("stored commitment differs from the commit result (-result +stored):\n%s", diff)
		}

		// Partial release.
		r, err := l.Release(ctx, releaseCmd(c.Commitment.ID, 100_000_000))
		if err != nil {
			t.Fatalf("Release: %v", err)
		}
		if r.Commitment.Released != 100_000_000 || r.Commitment.Remaining() != award-100_000_000 {
			t.Errorf("after a partial release the commitment holds released %d, remaining %d; want %d, %d",
				r.Commitment.Released, r.Commitment.Remaining(), 100_000_000, award-100_000_000)
		}
		wantAxis3 = balances{Allocation: axis3Cents, Committed: award - 100_000_000,
			Available: axis3Cents - award + 100_000_000, Released: 100_000_000, CommitmentCount: 1}
		if diff := cmp.Diff(wantAxis3, balancesOf(r.Envelope)); diff != "" {
			t.Errorf("envelope after a partial release (-want +got):\n%s", diff)
		}
		checkBalances(t, l, map[string]balances{"axis-3": wantAxis3})

		// Releasing more than remains is refused, with the figures, and posts nothing.
		entriesBefore := entryCount(t, l)
		_, err = l.Release(ctx, releaseCmd(c.Commitment.ID, award-100_000_000+1))
		e := requireError(t, err, ErrReleaseExceedsRemaining)
		requireMetadata(t, e, map[string]string{"commitment": CommitmentName(c.Commitment.ID),
			"remaining": strconv.Itoa(award - 100_000_000), "requested": strconv.Itoa(award - 100_000_000 + 1)})
		checkBalances(t, l, map[string]balances{"axis-3": wantAxis3})

		// Full release of what remains.
		r, err = l.Release(ctx, releaseCmd(c.Commitment.ID, award-100_000_000))
		if err != nil {
			t.Fatalf("releasing the remainder: %v", err)
		}
		if r.Commitment.Remaining() != 0 || r.Commitment.Released != award {
			t.Errorf("after a full Release: released %d, remaining %d; want %d, 0",
				r.Commitment.Released, r.Commitment.Remaining(), award)
		}
		wantAxis3 = balances{Allocation: axis3Cents, Available: axis3Cents, Released: award, CommitmentCount: 1}
		checkBalances(t, l, map[string]balances{"axis-3": wantAxis3})
		_, err = l.Release(ctx, releaseCmd(c.Commitment.ID, 1))
		e = requireError(t, err, ErrReleaseExceedsRemaining)
		requireMetadata(t, e, map[string]string{"remaining": "0", "requested": "1"})

		// A commit above available is refused with the figures.
		_, err = l.Commit(ctx, commitCmd("axis-3", "region-occitanie", axis3Cents+1))
		e = requireError(t, err, ErrInsufficientFunds)
		requireMetadata(t, e, map[string]string{"envelope": "envelopes/axis-3",
			"available": strconv.FormatInt(axis3Cents, 10), "requested": strconv.FormatInt(axis3Cents+1, 10),
			"currency_code": "EUR"})
		if got := entryCount(t, l); got != entriesBefore+1 {
			t.Errorf("journal has %d entries, want %d: refusals must post nothing", got, entriesBefore+1)
		}

		// Exactly the available amount can be committed; then not one cent more.
		mustCommit(t, l, "axis-3", "region-occitanie", axis3Cents)
		_, err = l.Commit(ctx, commitCmd("axis-3", "region-occitanie", 1))
		e = requireError(t, err, ErrInsufficientFunds)
		requireMetadata(t, e, map[string]string{"available": "0", "requested": "1"})
		checkBalances(t, l, map[string]balances{"axis-3": {Allocation: axis3Cents, Committed: axis3Cents,
			Released: award, CommitmentCount: 2}})

		requireVerifyOK(t, l)
	})
}

// TestIdempotency protects invariant 5: a request id names one operation, whose first outcome —
// result or business refusal — is final; a different payload under a used id is refused.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		mustCreateEnvelope(t, l, "small", "axis-1", 100)

		t.Run("same payload replays the result", func(t *testing.T) {
			cmd := commitCmd("axis-2", "metropole-de-lyon", 500)
			first, err := l.Commit(ctx, cmd)
			if err != nil {
				t.Fatal(err)
			}
			entries := entryCount(t, l)
			second, err := l.Commit(ctx, cmd)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if diff := cmp.Diff(first, second); diff != "" {
				t.Errorf("a replay returned another result (-first +replay):\n%s", diff)
			}
			if got := entryCount(t, l); got != entries {
				t.Errorf("a replay posted %d entries", got-entries)
			}
			posted := allEntries(t, l, EntryFilter{CommitmentID: first.Commitment.ID})
			if len(posted) != 1 || posted[0].ID != first.EntryID || posted[0].RequestID != cmd.RequestID {
				t.Errorf("entries of the commitment: %+v; want one, %s, with request id %s", posted, first.EntryID, cmd.RequestID)
			}
			// The stored envelope moved once, not twice.
			if got := mustGetEnvelope(t, l, "axis-2").Committed; got != 500 {
				t.Errorf("axis-2 committed %d, want 500", got)
			}
		})

		t.Run("other payload under a used id is refused", func(t *testing.T) {
			cmd := commitCmd("axis-2", "departement-du-nord", 700)
			if _, err := l.Commit(ctx, cmd); err != nil {
				t.Fatal(err)
			}
			entries := entryCount(t, l)
			envBefore := mustGetEnvelope(t, l, "axis-2")
			changes := map[string]func(c *Commit){
				"amount":      func(c *Commit) { c.Amount++ },
				"beneficiary": func(c *Commit) { c.Beneficiary = "departement-du-gard" },
				"envelope":    func(c *Commit) { c.EnvelopeID = "axis-1" },
			}
			// (Another caller is not another payload: request ids belong to their caller; see
			// TestRequestIDsBelongToTheirCaller.)
			for _, name := range slices.Sorted(maps.Keys(changes)) {
				other := cmd
				changes[name](&other)
				_, err := l.Commit(ctx, other)
				e := requireError(t, err, ErrRequestIDReused)
				requireMetadata(t, e, map[string]string{"request_id": cmd.RequestID})
			}
			// The same id on another operation (a release, a move, a creation) is refused too.
			_, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: cmd.RequestID, Caller: cmd.Caller,
				SourceID: "axis-1", DestinationID: "axis-2", Amount: 1, Reason: "reuse"})
			requireError(t, err, ErrRequestIDReused)
			_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: cmd.RequestID, Caller: cmd.Caller,
				EnvelopeID: "reused", Allocation: 1})
			requireError(t, err, ErrRequestIDReused)
			if got := entryCount(t, l); got != entries {
				t.Errorf("refused reuses posted %d entries", got-entries)
			}
			if diff := cmp.Diff(envBefore, mustGetEnvelope(t, l, "axis-2")); diff != "" {
				t.Errorf("refused reuses changed axis-2:\n%s", diff)
			}
			if _, err := l.GetEnvelope(ctx, "reused"); !errors.Is(err, ErrEnvelopeNotFound) {
				t.Errorf("GetEnvelope(reused) = %v, want ENVELOPE_NOT_FOUND", err)
			}
			// The original request still replays.
			if _, err := l.Commit(ctx, cmd); err != nil {
				t.Errorf("replaying the original after reuses: %v", err)
			}
		})

		t.Run("a refusal is final for its request id", func(t *testing.T) {
			first := mustCommit(t, l, "small", "commune-a", 60)
			refused := commitCmd("small", "commune-b", 50)
			_, err := l.Commit(ctx, refused)
			e := requireError(t, err, ErrInsufficientFunds)
			requireMetadata(t, e, map[string]string{"available": "40", "requested": "50"})

			// Funds come back; the refused request, retried, stays refused with the same figures.
			if _, err := l.Release(ctx, releaseCmd(first.Commitment.ID, 60)); err != nil {
				t.Fatal(err)
			}
			if small := mustGetEnvelope(t, l, "small"); small.Available() != 100 {
				t.Fatalf("small available %d after the release, want 100", small.Available())
			}
			entries := entryCount(t, l)
			_, err = l.Commit(ctx, refused)
			e = requireError(t, err, ErrInsufficientFunds)
			requireMetadata(t, e, map[string]string{"available": "40", "requested": "50"})
			if got := entryCount(t, l); got != entries {
				t.Errorf("retrying a refused request posted %d entries", got-entries)
			}
			// A new request id is a new decision.
			retry := refused
			retry.RequestID = newRequestID()
			if _, err := l.Commit(ctx, retry); err != nil {
				t.Errorf("the same award under a new request id: %v", err)
			}
		})

		t.Run("a refused move is final too", func(t *testing.T) {
			// Moves and creations are decided outside the envelope batches, by their own path.
			mustCreateEnvelope(t, l, "pot", "axis-1", 50)
			refused := MoveAllocation{RequestID: newRequestID(), Caller: testCaller, SourceID: "pot",
				DestinationID: "axis-1", Amount: 80, Reason: "give back"}
			_, err := l.MoveAllocation(ctx, refused)
			e := requireError(t, err, ErrInsufficientFunds)
			requireMetadata(t, e, map[string]string{"available": "50", "requested": "80"})
			if _, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
				SourceID: "axis-1", DestinationID: "pot", Amount: 30, Reason: "top-up"}); err != nil {
				t.Fatal(err)
			}
			_, err = l.MoveAllocation(ctx, refused)
			e = requireError(t, err, ErrInsufficientFunds)
			requireMetadata(t, e, map[string]string{"available": "50", "requested": "80"})
			checkBalances(t, l, map[string]balances{"pot": {Allocation: 80, Available: 80}})
			refused.RequestID = newRequestID()
			if _, err := l.MoveAllocation(ctx, refused); err != nil {
				t.Errorf("the same move under a new request id: %v", err)
			}
		})

		t.Run("a validation error records nothing", func(t *testing.T) {
			cmd := commitCmd("axis-2", "commune-c", 0)
			_, err := l.Commit(ctx, cmd)
			e := requireError(t, err, ErrInvalidArgument)
			if e.Field != "amount" {
				t.Errorf("invalid argument field %q, want amount", e.Field)
			}
			cmd.Amount = 10
			if _, err := l.Commit(ctx, cmd); err != nil {
				t.Errorf("the request id of a malformed request, used with a valid one: %v", err)
			}
		})

		t.Run("envelope creation and moves replay too", func(t *testing.T) {
			create := CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "line-1",
				ParentID: "axis-1", Allocation: 1000}
			first, err := l.CreateEnvelope(ctx, create)
			if err != nil {
				t.Fatal(err)
			}
			move := MoveAllocation{RequestID: newRequestID(), Caller: testCaller, SourceID: "axis-1",
				DestinationID: "line-1", Amount: 10, Reason: "top-up"}
			firstMove, err := l.MoveAllocation(ctx, move)
			if err != nil {
				t.Fatal(err)
			}
			entries := entryCount(t, l)
			again, err := l.CreateEnvelope(ctx, create)
			if err != nil {
				t.Fatalf("replaying a creation: %v", err)
			}
			if diff := cmp.Diff(first, again); diff != "" {
				t.Errorf("replayed creation (-first +replay):\n%s", diff)
			}
			againMove, err := l.MoveAllocation(ctx, move)
			if err != nil {
				t.Fatalf("replaying a move: %v", err)
			}
			if diff := cmp.Diff(firstMove, againMove); diff != "" {
				t.Errorf("replayed move (-first +replay):\n%s", diff)
			}
			if got := entryCount(t, l); got != entries {
				t.Errorf("replays posted %d entries", got-entries)
			}
			if got := mustGetEnvelope(t, l, "line-1").Allocation; got != 1010 {
				t.Errorf("line-1 allocation %d, want 1010 (one creation, one move)", got)
			}
			create.Allocation++
			_, err = l.CreateEnvelope(ctx, create)
			requireError(t, err, ErrRequestIDReused)
		})

		requireVerifyOK(t, l)
	})
}

// TestRequestLogRefusesASecondDecision protects invariant 5 at its last line of defence: when a
// transaction finds, on recording its outcome, that another transaction recorded the same request
// id after it looked, it asks to be retried (so that the first outcome is replayed) rather than
// committing a second decision.
func TestRequestLogRefusesASecondDecision(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		row := core.RequestRow{Key: newRequestID(), Fingerprint: "first", Outcome: core.Outcome{Result: []byte(`{"n":1}`)}}
		if err := l.db.ReadWrite(ctx, func(q store.Querier) error { return store.InsertRequests(ctx, q, stamp().At, []core.RequestRow{row}) }); err != nil {
			t.Fatal(err)
		}
		// An engine may send writes just before COMMIT: the refusal must fail the transaction
		// before it commits, whichever way the engine sends them.
		second := l.db.ReadWrite(ctx, func(q store.Querier) error {
			other := row
			other.Fingerprint = "second"
			return store.InsertRequests(ctx, q, stamp().At, []core.RequestRow{{Key: newRequestID(), Fingerprint: "x",
				Outcome: core.Outcome{Result: []byte(`{}`)}}, other})
		})
		if !errors.Is(second, store.ErrRequestRecorded) {
			t.Errorf("recording a used request id: %v, want ErrRequestRecorded", second)
		}
		err := l.db.ReadWrite(ctx, func(q store.Querier) error {
			priors, err := store.LoadRequests(ctx, q, []string{row.Key})
			if err == nil && priors[row.Key].Fingerprint != "first" {
				err = fmt.Errorf("request log holds %+v, want the first decision", priors[row.Key])
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
	})
}

// TestConcurrentCommits protects invariant 2 under contention: 64 callers race for an envelope
// that affords exactly 27 awards; exactly the affordable number succeed.
func TestConcurrentCommits(t *testing.T) {
	t.Parallel()
	const (
		allocation = 1000
		award      = 37
		callers    = 64
		affordable = allocation / award // 27
	)
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "hot", "", allocation)

		var (
			wg                             sync.WaitGroup
			mu                             sync.Mutex
			successes, refusals, conflicts int
			ids                            = map[string]bool{}
			start                          = make(chan struct{})
		)
		for i := range callers {
			wg.Go(func() {
				cmd := commitCmd("hot", fmt.Sprintf("commune-%02d", i), award)
				<-start
				res, err := l.Commit(ctx, cmd)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					successes++
					ids[res.Commitment.ID] = true
				case errors.Is(err, ErrInsufficientFunds):
					refusals++
					e := requireErrorNoFatal(t, err)
					if e != nil && (e.Metadata["available"] != strconv.Itoa(allocation-affordable*award) ||
						e.Metadata["requested"] != strconv.Itoa(award)) {
						t.Errorf("refusal metadata %v, want available %d, requested %d",
							e.Metadata, allocation-affordable*award, award)
					}
				case errors.Is(err, ErrTransactionConflict) && l.Engine() != "sqlite":
					// A lost race on a server engine: allowed, as long as it posted nothing
					// (checked below through the balances).
					conflicts++
				default:
					t.Errorf("Commit: unexpected error %v", err)
				}
			})
		}
		close(start)
		wg.Wait()

		t.Logf("%s: %d successes, %d refusals, %d conflicts", l.Engine(), successes, refusals, conflicts)
		if successes+refusals+conflicts != callers {
			t.Fatalf("%d successes + %d refusals + %d conflicts != %d callers", successes, refusals, conflicts, callers)
		}
		// A refusal means the envelope was exhausted; without conflicts every affordable award
		// succeeds.
		if want := min(affordable, callers-conflicts); successes != want {
			t.Errorf("%d awards succeeded, want %d", successes, want)
		}
		if len(ids) != successes {
			t.Errorf("%d distinct commitment ids for %d successes", len(ids), successes)
		}
		checkBalances(t, l, map[string]balances{"hot": {Allocation: allocation, Committed: int64(successes) * award,
			Available: allocation - int64(successes)*award, CommitmentCount: int64(successes)}})
		cs, _, err := l.ListCommitments(ctx, CommitmentFilter{EnvelopeID: "hot"}, Page{Size: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != successes {
			t.Errorf("%d commitments stored, %d successes returned", len(cs), successes)
		}
		if got := len(allEntries(t, l, EntryFilter{EnvelopeID: "hot"})); got != 1+successes {
			t.Errorf("%d journal entries on the envelope, want 1 funding + %d awards", got, successes)
		}
		requireVerifyOK(t, l)
	})
}

// requireErrorNoFatal is errors.As for goroutines, where t.Fatal must not be called.
func requireErrorNoFatal(t *testing.T, err error) *Error {
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("errors.As(%v, *Error) = false", err)
		return nil
	}
	return e
}

// TestConcurrentSameRequest protects invariant 5 under contention: 32 callers send the same
// Commit at once; it is decided and posted once, and every success carries the same commitment.
func TestConcurrentSameRequest(t *testing.T) {
	t.Parallel()
	const callers = 32
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "hot", "", 1_000_000)
		cmd := commitCmd("hot", "commune-unique", 250)

		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			results   []CommitResult
			conflicts int
			start     = make(chan struct{})
		)
		for range callers {
			wg.Go(func() {
				<-start
				res, err := l.Commit(ctx, cmd)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					results = append(results, res)
				case errors.Is(err, ErrTransactionConflict) && l.Engine() != "sqlite":
					conflicts++
				default:
					t.Errorf("Commit: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()

		t.Logf("%s: %d successes, %d conflicts", l.Engine(), len(results), conflicts)
		if len(results) == 0 {
			t.Fatal("no caller succeeded")
		}
		for _, r := range results[1:] {
			if diff := cmp.Diff(results[0], r); diff != "" {
				t.Errorf("two callers of one request got different results (-first +other):\n%s", diff)
			}
		}
		var committed []Entry
		for _, e := range allEntries(t, l, EntryFilter{EnvelopeID: "hot"}) {
			if e.Kind == KindCommitted {
				committed = append(committed, e)
			}
		}
		if len(committed) != 1 || committed[0].ID != results[0].EntryID || committed[0].RequestID != cmd.RequestID {
			t.Errorf("COMMITTED entries %+v; want exactly one, %s", committed, results[0].EntryID)
		}
		checkBalances(t, l, map[string]balances{"hot": {Allocation: 1_000_000, Committed: 250,
			Available: 1_000_000 - 250, CommitmentCount: 1}})
		requireVerifyOK(t, l)
	})
}

// TestConcurrentCreation protects invariants 2 and 4 when callers race to create the same
// envelope under different request ids: it is created, and funded or taken from its parent,
// once. A child's creation locks its parent; a root's has no row to lock and relies on the
// serializable transaction alone.
func TestConcurrentCreation(t *testing.T) {
	t.Parallel()
	const callers = 16
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		for _, target := range []struct{ id, parent string }{{"axis-1", "fund"}, {"second-fund", ""}} {
			var (
				wg                         sync.WaitGroup
				mu                         sync.Mutex
				created, exists, conflicts int
				start                      = make(chan struct{})
			)
			for range callers {
				wg.Go(func() {
					<-start
					_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
						EnvelopeID: target.id, ParentID: target.parent, Allocation: 1_000})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						created++
					case errors.Is(err, ErrEnvelopeAlreadyExists):
						exists++
					case errors.Is(err, ErrTransactionConflict) && l.Engine() != "sqlite":
						conflicts++
					default:
						t.Errorf("CreateEnvelope(%s): unexpected error %v", target.id, err)
					}
				})
			}
			close(start)
			wg.Wait()
			t.Logf("%s: %s: %d created, %d already existing, %d conflicts", l.Engine(), target.id, created, exists, conflicts)
			if created != 1 {
				t.Errorf("%s was created %d times, want once", target.id, created)
			}
		}
		checkBalances(t, l, map[string]balances{
			"fund":        {Allocation: 1_000_000, ChildrenAllocated: 1_000, Available: 999_000},
			"axis-1":      {Allocation: 1_000, Available: 1_000},
			"second-fund": {Allocation: 1_000, Available: 1_000},
		})
		if got := entryCount(t, l); got != 3 {
			t.Errorf("%d journal entries, want 3 (two fundings, one allocation)", got)
		}
		requireVerifyOK(t, l)
	})
}

// TestMoveAllocation moves allocation along every allowed path and refuses the others.
// Invariant 2: no move leaves a source below zero available; invariant 4: Verify agrees with
// the stored balances after every move; invariant 7: refused moves post nothing.
func TestMoveAllocation(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		mustCreateEnvelope(t, l, "line-1a", "axis-1", 1_000_000_000)
		mustCreateEnvelope(t, l, "line-2a", "axis-2", 500_000_000)
		mustCommit(t, l, "axis-3", "region-bretagne", 3_300_000_000)

		steps := []struct {
			name     string
			src, dst string
			amount   int64
			wantErr  *Error
			metadata map[string]string
			want     map[string]balances // after the step
		}{
			{
				name: "child to parent", src: "axis-1", dst: "fund", amount: 500_000_000,
				want: map[string]balances{
					"axis-1": {Allocation: 2_500_000_000, ChildrenAllocated: 1_000_000_000, Available: 1_500_000_000},
					"fund":   {Allocation: fundCents, ChildrenAllocated: 8_300_000_000, Available: 500_000_000},
				},
			},
			{
				name: "parent to child", src: "fund", dst: "axis-2", amount: 200_000_000,
				want: map[string]balances{
					"fund":   {Allocation: fundCents, ChildrenAllocated: 8_500_000_000, Available: 300_000_000},
					"axis-2": {Allocation: 2_600_000_000, ChildrenAllocated: 500_000_000, Available: 2_100_000_000},
				},
			},
			{
				name: "sibling to sibling", src: "axis-2", dst: "axis-3", amount: 100_000_000,
				want: map[string]balances{
					"axis-2": {Allocation: 2_500_000_000, ChildrenAllocated: 500_000_000, Available: 2_000_000_000},
					"axis-3": {Allocation: 3_500_000_000, Committed: 3_300_000_000, Available: 200_000_000, CommitmentCount: 1},
					// The parent's share in its children is unchanged.
					"fund": {Allocation: fundCents, ChildrenAllocated: 8_500_000_000, Available: 300_000_000},
				},
			},
			{
				name: "cousins", src: "line-1a", dst: "line-2a", amount: 1,
				wantErr:  ErrEnvelopesNotRelated,
				metadata: map[string]string{"source": "envelopes/line-1a", "destination": "envelopes/line-2a"},
			},
			{name: "grandparent to grandchild", src: "fund", dst: "line-1a", amount: 1, wantErr: ErrEnvelopesNotRelated},
			{name: "child to uncle", src: "line-2a", dst: "axis-1", amount: 1, wantErr: ErrEnvelopesNotRelated},
			{
				name: "source lacking funds", src: "axis-3", dst: "axis-1", amount: 300_000_000,
				wantErr:  ErrInsufficientFunds,
				metadata: map[string]string{"envelope": "envelopes/axis-3", "available": "200000000", "requested": "300000000"},
			},
			{
				// axis-1 holds 2.5 G but gave 1 G to line-1a: only its available can move.
				name: "child's allocation held by its own child", src: "axis-1", dst: "fund", amount: 1_500_000_001,
				wantErr:  ErrInsufficientFunds,
				metadata: map[string]string{"available": "1500000000"},
			},
			{name: "unknown destination", src: "axis-1", dst: "axis-9", amount: 1, wantErr: ErrEnvelopeNotFound},
			{
				name: "whole available of a child back to its parent", src: "line-1a", dst: "axis-1", amount: 1_000_000_000,
				want: map[string]balances{
					"line-1a": {},
					"axis-1":  {Allocation: 2_500_000_000, Available: 2_500_000_000},
				},
			},
		}
		for _, step := range steps {
			entries := allEntries(t, l, EntryFilter{})
			before := map[string]Envelope{}
			for _, id := range []string{step.src, step.dst} {
				if env, err := l.GetEnvelope(ctx, id); err == nil {
					before[id] = env
				}
			}
			res, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
				SourceID: step.src, DestinationID: step.dst, Amount: step.amount, Reason: step.name})
			if step.wantErr != nil {
				if !errors.Is(err, step.wantErr) {
					t.Errorf("%s: got %v, want %s", step.name, err, step.wantErr.Reason)
					continue
				}
				e, _ := core.AsError(err)
				requireMetadata(t, e, step.metadata)
				if diff := cmp.Diff(entries, allEntries(t, l, EntryFilter{})); diff != "" {
					t.Errorf("%s: a refused move changed the journal:\n%s", step.name, diff)
				}
				for id, env := range before {
					if diff := cmp.Diff(env, mustGetEnvelope(t, l, id)); diff != "" {
						t.Errorf("%s: a refused move changed %s:\n%s", step.name, id, diff)
					}
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", step.name, err)
				continue
			}
			if diff := cmp.Diff(step.want[step.src], balancesOf(res.Source)); diff != "" {
				t.Errorf("%s: source in the result (-want +got):\n%s", step.name, diff)
			}
			if diff := cmp.Diff(step.want[step.dst], balancesOf(res.Destination)); diff != "" {
				t.Errorf("%s: destination in the result (-want +got):\n%s", step.name, diff)
			}
			checkBalances(t, l, step.want)
			moved := allEntries(t, l, EntryFilter{})
			if len(moved) != len(entries)+1 {
				t.Fatalf("%s: %d entries posted, want 1", step.name, len(moved)-len(entries))
			}
			last := moved[len(moved)-1]
			wantPostings := []Posting{{Account: EnvelopeName(step.src), Amount: -step.amount}, {Account: EnvelopeName(step.dst), Amount: step.amount}}
			if last.ID != res.EntryID || last.Kind != KindAllocationMoved || !slices.Equal(last.Postings, wantPostings) {
				t.Errorf("%s: last entry %+v, want %s moving %v", step.name, last, res.EntryID, wantPostings)
			}
			requireVerifyOK(t, l)
		}
	})
}

// TestCurrencies protects invariants 1 and 2 across currencies: amounts of different currencies
// never meet in one entry or one envelope.
func TestCurrencies(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		usd, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "usd-fund", Currency: "USD", Allocation: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		if usd.Envelope.Currency != "USD" {
			t.Errorf("root currency %q, want USD", usd.Envelope.Currency)
		}
		eur := mustCreateEnvelope(t, l, "eur-fund", "", 10_000)
		if eur.Envelope.Currency != "EUR" {
			t.Errorf("default root currency %q, want EUR", eur.Envelope.Currency)
		}
		// A child without a currency takes its parent's.
		child := mustCreateEnvelope(t, l, "usd-child", "usd-fund", 1_000)
		if child.Envelope.Currency != "USD" {
			t.Errorf("child currency %q, want the parent's USD", child.Envelope.Currency)
		}
		c := mustCommit(t, l, "usd-child", "city-of-montreal", 100)
		if c.Commitment.Currency != "USD" {
			t.Errorf("commitment currency %q, want USD", c.Commitment.Currency)
		}
		for _, e := range allEntries(t, l, EntryFilter{EnvelopeID: "usd-child"}) {
			if e.Currency != "USD" {
				t.Errorf("entry %s on a USD envelope in %s", e.ID, e.Currency)
			}
		}

		entries := entryCount(t, l)
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "eur-child", ParentID: "usd-fund", Currency: "EUR", Allocation: 1_000})
		e := requireError(t, err, ErrCurrencyMismatch)
		requireMetadata(t, e, map[string]string{"envelope": "envelopes/usd-fund", "envelope_currency": "USD",
			"requested_currency": "EUR"})
		_, err = l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
			SourceID: "eur-fund", DestinationID: "usd-fund", Amount: 1, Reason: "two roots, two currencies"})
		requireError(t, err, ErrCurrencyMismatch)
		if got := entryCount(t, l); got != entries {
			t.Errorf("currency refusals posted %d entries", got-entries)
		}
		checkBalances(t, l, map[string]balances{
			"usd-fund": {Allocation: 10_000, ChildrenAllocated: 1_000, Available: 9_000},
			"eur-fund": {Allocation: 10_000, Available: 10_000},
		})
		requireVerifyOK(t, l)
	})
}

// TestNotFound protects invariant 7: a request naming nothing is refused and posts nothing.
func TestNotFound(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		unknownCommitment := newID()
		cases := []struct {
			name string
			call func() error
			want *Error
		}{
			{"Commit on an unknown envelope", func() error {
				_, err := l.Commit(ctx, commitCmd("axis-9", "commune", 1))
				return err
			}, ErrEnvelopeNotFound},
			{"Release of an unknown commitment", func() error {
				_, err := l.Release(ctx, releaseCmd(unknownCommitment, 1))
				return err
			}, ErrCommitmentNotFound},
			{"GetEnvelope", func() error {
				_, err := l.GetEnvelope(ctx, "axis-9")
				return err
			}, ErrEnvelopeNotFound},
			{"GetCommitment", func() error {
				_, err := l.GetCommitment(ctx, unknownCommitment)
				return err
			}, ErrCommitmentNotFound},
			{"child of an unknown parent", func() error {
				_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
					EnvelopeID: "orphan", ParentID: "axis-9", Allocation: 1})
				return err
			}, ErrEnvelopeNotFound},
			{"move from an unknown envelope", func() error {
				_, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
					SourceID: "axis-9", DestinationID: "axis-1", Amount: 1, Reason: "x"})
				return err
			}, ErrEnvelopeNotFound},
			{"malformed commitment id", func() error {
				_, err := l.GetCommitment(ctx, "not-a-uuid")
				return err
			}, ErrInvalidArgument},
		}
		entries := entryCount(t, l)
		for _, c := range cases {
			if err := c.call(); !errors.Is(err, c.want) {
				t.Errorf("%s: got %v, want %s", c.name, err, c.want.Reason)
			}
		}
		if got := entryCount(t, l); got != entries {
			t.Errorf("not-found refusals posted %d entries", got-entries)
		}
		if _, err := l.GetEnvelope(ctx, "orphan"); !errors.Is(err, ErrEnvelopeNotFound) {
			t.Errorf("GetEnvelope(orphan) = %v, want ENVELOPE_NOT_FOUND", err)
		}
		requireVerifyOK(t, l)
	})
}

// listAll pages through a List call and returns the pages' sizes, the items and the tokens.
func listAll[T any](t *testing.T, size int, list func(Page) ([]T, string, error)) (sizes []int, items []T, tokens []string) {
	t.Helper()
	page := Page{Size: size}
	for range 100 {
		got, next, err := list(page)
		if err != nil {
			t.Fatalf("listing with %+v: %v", page, err)
		}
		sizes = append(sizes, len(got))
		items = append(items, got...)
		if next == "" {
			return sizes, items, tokens
		}
		tokens = append(tokens, next)
		page.Token = next
	}
	t.Fatal("pagination does not end")
	return nil, nil, nil
}

// TestPagination protects the readers an auditor relies on to check invariants 1 and 4: every
// item is listed once, in order, and every listed entry balances.
func TestPagination(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "pages", "", 1_000_000)
		var wantIDs []string
		for _, suffix := range []string{"g", "c", "a", "e", "b", "f", "d"} { // created out of order
			id := "pages-" + suffix
			mustCreateEnvelope(t, l, id, "pages", 1_000)
			wantIDs = append(wantIDs, id)
		}
		slices.Sort(wantIDs)

		sizes, envs, tokens := listAll(t, 3, func(p Page) ([]Envelope, string, error) {
			return l.ListEnvelopes(ctx, EnvelopeFilter{ParentID: "pages"}, p)
		})
		if diff := cmp.Diff([]int{3, 3, 1}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		var gotIDs []string
		for _, e := range envs {
			gotIDs = append(gotIDs, e.ID)
		}
		if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
			t.Errorf("envelopes listed (-want +got):\n%s", diff)
		}
		// Without a filter, the root is listed too.
		_, all, _ := listAll(t, 3, func(p Page) ([]Envelope, string, error) {
			return l.ListEnvelopes(ctx, EnvelopeFilter{}, p)
		})
		if len(all) != 8 {
			t.Errorf("%d envelopes listed without a filter, want 8", len(all))
		}

		// Tokens belong to their filters.
		_, _, err := l.ListEnvelopes(ctx, EnvelopeFilter{}, Page{Size: 3, Token: tokens[0]})
		requireError(t, err, ErrInvalidPageToken)
		_, _, err = l.ListEntries(ctx, EntryFilter{}, Page{Size: 3, Token: tokens[0]})
		requireError(t, err, ErrInvalidPageToken)
		for _, garbage := range []string{"not a token", "bm90LWpzb24", base64.RawURLEncoding.EncodeToString(
			[]byte(`{"v":1,"a":"pages-c","f":"0000000000000000"}`))} {
			_, _, err = l.ListEnvelopes(ctx, EnvelopeFilter{ParentID: "pages"}, Page{Token: garbage})
			requireError(t, err, ErrInvalidPageToken)
		}

		// Commitments, by envelope and by beneficiary.
		var awards []CommitResult
		for i, target := range []string{"pages-a", "pages-a", "pages-a", "pages-a", "pages-a", "pages-b", "pages-b"} {
			beneficiary := []string{"commune-x", "commune-y"}[i%2]
			awards = append(awards, mustCommit(t, l, target, beneficiary, int64(10+i)))
		}
		released, err := l.Release(ctx, releaseCmd(awards[0].Commitment.ID, 4))
		if err != nil {
			t.Fatal(err)
		}
		idsOf := func(cs []Commitment) []string {
			var ids []string
			for _, c := range cs {
				ids = append(ids, c.ID)
			}
			return ids
		}
		wantByEnvelope := idsOf([]Commitment{awards[0].Commitment, awards[1].Commitment, awards[2].Commitment,
			awards[3].Commitment, awards[4].Commitment})
		slices.Sort(wantByEnvelope)
		sizes, cs, _ := listAll(t, 2, func(p Page) ([]Commitment, string, error) {
			return l.ListCommitments(ctx, CommitmentFilter{EnvelopeID: "pages-a"}, p)
		})
		if diff := cmp.Diff([]int{2, 2, 1}, sizes); diff != "" {
			t.Errorf("commitment page sizes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantByEnvelope, idsOf(cs)); diff != "" {
			t.Errorf("commitments of pages-a (-want +got):\n%s", diff)
		}
		if cs[slices.Index(idsOf(cs), released.Commitment.ID)].Released != 4 {
			t.Errorf("the listed commitment does not show its release")
		}
		var wantX []string
		for _, a := range awards {
			if a.Commitment.Beneficiary == "commune-x" {
				wantX = append(wantX, a.Commitment.ID)
			}
		}
		slices.Sort(wantX)
		_, cs, _ = listAll(t, 2, func(p Page) ([]Commitment, string, error) {
			return l.ListCommitments(ctx, CommitmentFilter{Beneficiary: "commune-x"}, p)
		})
		if diff := cmp.Diff(wantX, idsOf(cs)); diff != "" {
			t.Errorf("commitments of commune-x (-want +got):\n%s", diff)
		}
		_, cs, _ = listAll(t, 2, func(p Page) ([]Commitment, string, error) {
			return l.ListCommitments(ctx, CommitmentFilter{EnvelopeID: "pages-b", Beneficiary: "commune-x"}, p)
		})
		if len(cs) != 1 || cs[0].ID != awards[6].Commitment.ID {
			t.Errorf("commitments of commune-x on pages-b: %v, want [%s]", idsOf(cs), awards[6].Commitment.ID)
		}

		// Entries, with their postings, by envelope and by commitment.
		checkEntries := func(name string, f EntryFilter, account string, wantKinds []EntryKind) {
			t.Helper()
			sizes, entries, _ := listAll(t, 2, func(p Page) ([]Entry, string, error) { return l.ListEntries(ctx, f, p) })
			var kinds []EntryKind
			seen := map[string]bool{}
			for i, e := range entries {
				kinds = append(kinds, e.Kind)
				if seen[e.ID] {
					t.Errorf("%s: entry %s listed twice", name, e.ID)
				}
				seen[e.ID] = true
				if i > 0 && entries[i-1].ID >= e.ID {
					t.Errorf("%s: entries out of order: %s then %s", name, entries[i-1].ID, e.ID)
				}
				var sum int64
				touches := false
				for _, p := range e.Postings {
					sum += p.Amount
					touches = touches || p.Account == account
				}
				if len(e.Postings) < 2 || sum != 0 {
					t.Errorf("%s: entry %s has %d postings summing to %d", name, e.ID, len(e.Postings), sum)
				}
				if !touches {
					t.Errorf("%s: entry %s does not post to %s: %v", name, e.ID, account, e.Postings)
				}
			}
			if diff := cmp.Diff(wantKinds, kinds); diff != "" {
				t.Errorf("%s: kinds (-want +got):\n%s", name, diff)
			}
			if len(entries) > 2 && sizes[0] != 2 {
				t.Errorf("%s: first page of %d, want 2", name, sizes[0])
			}
		}
		checkEntries("pages-a", EntryFilter{EnvelopeID: "pages-a"}, "envelopes/pages-a", []EntryKind{
			KindEnvelopeAllocated, KindCommitted, KindCommitted, KindCommitted, KindCommitted, KindCommitted, KindReleased})
		first := awards[0].Commitment.ID
		checkEntries("first commitment", EntryFilter{CommitmentID: first}, CommitmentName(first),
			[]EntryKind{KindCommitted, KindReleased})
		checkEntries("first commitment on pages-a", EntryFilter{EnvelopeID: "pages-a", CommitmentID: first},
			CommitmentName(first), []EntryKind{KindCommitted, KindReleased})
		if got := allEntries(t, l, EntryFilter{EnvelopeID: "pages-b", CommitmentID: first}); len(got) != 0 {
			t.Errorf("entries of pages-a's commitment on pages-b: %v", got)
		}
	})
}

// TestAmountOverflow protects invariants 2 and 4 at the edge of int64: a sum that would overflow
// is refused with AMOUNT_OVERFLOW instead of wrapping around, and posts nothing.
func TestAmountOverflow(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		// The largest allocation exists, can be split and committed in full.
		mustCreateEnvelope(t, l, "max", "", math.MaxInt64)
		mustCreateEnvelope(t, l, "max-child", "max", math.MaxInt64)
		checkBalances(t, l, map[string]balances{
			"max":       {Allocation: math.MaxInt64, ChildrenAllocated: math.MaxInt64},
			"max-child": {Allocation: math.MaxInt64, Available: math.MaxInt64},
		})
		if _, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
			SourceID: "max-child", DestinationID: "max", Amount: math.MaxInt64, Reason: "back"}); err != nil {
			t.Fatalf("moving the whole allocation back: %v", err)
		}

		// Two roots near the limit: moving 2 from one to the other would overflow the
		// destination's allocation; moving 1 reaches the limit exactly.
		mustCreateEnvelope(t, l, "left", "", math.MaxInt64-1)
		mustCreateEnvelope(t, l, "right", "", math.MaxInt64-1)
		entries := entryCount(t, l)
		_, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
			SourceID: "left", DestinationID: "right", Amount: 2, Reason: "overflow"})
		requireError(t, err, ErrAmountOverflow)
		if got := entryCount(t, l); got != entries {
			t.Errorf("an overflowing move posted %d entries", got-entries)
		}
		checkBalances(t, l, map[string]balances{
			"left":  {Allocation: math.MaxInt64 - 1, Available: math.MaxInt64 - 1},
			"right": {Allocation: math.MaxInt64 - 1, Available: math.MaxInt64 - 1},
		})
		if _, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
			SourceID: "left", DestinationID: "right", Amount: 1, Reason: "to the limit"}); err != nil {
			t.Fatalf("moving up to MaxInt64: %v", err)
		}
		checkBalances(t, l, map[string]balances{"right": {Allocation: math.MaxInt64, Available: math.MaxInt64}})

		// The envelope's total released grows with every Release: commit and release the whole
		// allocation, commit it again, and the next release would overflow it.
		c1 := mustCommit(t, l, "max", "commune", math.MaxInt64)
		if _, err := l.Release(ctx, releaseCmd(c1.Commitment.ID, math.MaxInt64)); err != nil {
			t.Fatal(err)
		}
		c2 := mustCommit(t, l, "max", "commune", math.MaxInt64)
		entries = entryCount(t, l)
		_, err = l.Release(ctx, releaseCmd(c2.Commitment.ID, 1))
		requireError(t, err, ErrAmountOverflow)
		if got := entryCount(t, l); got != entries {
			t.Errorf("an overflowing release posted %d entries", got-entries)
		}
		checkBalances(t, l, map[string]balances{"max": {Allocation: math.MaxInt64, Committed: math.MaxInt64,
			Released: math.MaxInt64, CommitmentCount: 2}})

		// The auditor sums with arbitrary precision: the funding account's balance is far below
		// MinInt64, and the ledger still checks out.
		requireVerifyOK(t, l)
	})
}

// TestJournalAppendOnly protects invariant 6: the database itself refuses to edit or delete
// journal entries (their legs too, for an entry of two), postings and the request log, whatever
// code path sends the statement.
func TestJournalAppendOnly(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		c := mustCommit(t, l, "axis-1", "commune", 1_000)
		if _, err := l.Release(ctx, releaseCmd(c.Commitment.ID, 10)); err != nil {
			t.Fatal(err)
		}
		paid := mustPay(t, l, c.Commitment.ID, 100)
		// A hold confirmed at a lower amount: three postings, kept in the postings table (the
		// entries of two legs are kept in their journal_entries row, migration 17).
		h := mustHold(t, l, holdCmd("axis-1", "commune-2", 500))
		if _, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: testCaller, HoldID: h.Hold.ID, Amount: 400}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis-1",
			Call: "appel-1", Rules: Rules{MaxFundingShareBPS: ptr(5000)}}); err != nil {
			t.Fatal(err)
		}
		before := allEntries(t, l, EntryFilter{})
		rulesBefore, err := l.GetRules(ctx, "axis-1", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{
			// Rule sets are read by every decision: append-only too (issue 12 item 5).
			`UPDATE envelope_rules SET rules = '{"max_funding_share_bps":10000}'`,
			"DELETE FROM envelope_rules",
			"UPDATE journal_entries SET memo = 'x'",
			// An entry of two legs is one row: its legs are as append-only as the postings.
			"UPDATE journal_entries SET amount = amount * 2 WHERE amount IS NOT NULL",
			"UPDATE journal_entries SET credit_account = 'suspense/tamper' WHERE amount IS NOT NULL",
			"UPDATE journal_entries SET debit_account = NULL, credit_account = NULL, amount = NULL",
			"DELETE FROM journal_entries",
			"UPDATE postings SET amount = amount * 2",
			"DELETE FROM postings",
			"UPDATE requests SET outcome = '{}'",
			// Outcomes kept by reference or deflated (migration 18) are as append-only.
			"UPDATE requests SET packed = NULL",
			"DELETE FROM requests",
			// Payments are money that left: recorded once (migration 16).
			"UPDATE payments SET amount = amount + 1",
			"DELETE FROM payments",
		} {
			err := rawExec(ctx, l, stmt)
			if err == nil {
				t.Errorf("%s: succeeded, want it refused", stmt)
			} else if !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: refused for another reason than the append-only rule: %v", stmt, err)
			}
		}
		if diff := cmp.Diff(before, allEntries(t, l, EntryFilter{})); diff != "" {
			t.Errorf("the journal changed (-before +after):\n%s", diff)
		}
		if rulesAfter, err := l.GetRules(ctx, "axis-1", rulesBefore.At); err != nil {
			t.Fatal(err)
		} else if diff := cmp.Diff(rulesBefore.RuleSets, rulesAfter.RuleSets); diff != "" {
			t.Errorf("the rule sets changed (-before +after):\n%s", diff)
		}
		if payments, _, err := l.ListPayments(ctx, c.Commitment.ID, Page{}); err != nil {
			t.Fatal(err)
		} else if diff := cmp.Diff([]Payment{paid.Payment}, payments); diff != "" {
			t.Errorf("the payments changed (-before +after):\n%s", diff)
		}
		// The request log still replays: the commit's outcome was not erased.
		requireVerifyOK(t, l)
	})
}

// TestVerifyDetectsTampering protects invariants 1 and 4 by proving that the auditor can fail:
// balances edited behind the ledger's back, and an unbalanced posting slipped into the journal,
// are each reported.
func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		created := buildFund(t, l)
		mustCommit(t, l, "axis-3", "commune", 1_000)
		c := mustCommit(t, l, "axis-2", "metropole", 500)
		requireVerifyOK(t, l)

		// Every tamper passes the schema's CHECK constraints.
		tampers := []struct {
			query string
			args  []any
		}{
			// Invariant 4: a stored envelope balance no longer matches the journal.
			{"UPDATE envelopes SET committed = committed + 1 WHERE id = $1", []any{"axis-3"}},
			// Invariant 4: a commitment claims a release the journal never saw.
			{"UPDATE commitments SET released = COALESCE(released, 0) + 1 WHERE id = $1", []any{c.Commitment.ID}},
			// Invariant 1: an entry gains an unbalanced posting (inserting is allowed: the journal
			// is append-only, not read-only).
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 99, 'suspense/tamper', 5)",
				[]any{created["axis-1"].EntryID}},
		}
		for _, tamper := range tampers {
			if err := rawExec(ctx, l, tamper.query, tamper.args...); err != nil {
				t.Fatalf("tampering with %q: %v", tamper.query, err)
			}
		}

		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if rep.OK() {
			t.Fatal("Verify reports OK on a tampered ledger")
		}
		type finding struct {
			Invariant int
			Subject   string
		}
		var got []finding
		for _, d := range rep.Discrepancies {
			got = append(got, finding{d.Invariant, d.Subject})
		}
		want := []finding{
			{1, EntryName(created["axis-1"].EntryID)}, // postings sum to 5
			{1, EntryName(created["axis-1"].EntryID)}, // posts to suspense/tamper, which does not exist
			{4, CommitmentName(c.Commitment.ID)},
			{4, "envelopes/axis-2"},                                // committed != its commitments' remaining
			{4, "envelopes/axis-2"},                                // released != its commitments' released
			{4, `envelopes/axis-2 project "project of metropole"`}, // project total != its commitments
			{4, "envelopes/axis-3"},                                // available != the journal's balance
			{4, "envelopes/axis-3"},                                // committed != its commitments' remaining
		}
		less := func(a, b finding) int {
			if a.Invariant != b.Invariant {
				return a.Invariant - b.Invariant
			}
			return strings.Compare(a.Subject, b.Subject)
		}
		slices.SortFunc(got, less)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("discrepancies (-want +got):\n%s\nreport: %v", diff, rep.Discrepancies)
		}
	})
}

// TestReopen protects invariant 7: what a success reported survives closing and reopening the
// database, and opening an up-to-date database again does not alter it.
func TestReopen(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l, err := Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		buildFund(t, l)
		c := mustCommit(t, l, "axis-2", "region-grand-est", 13_100_000)
		before := allEntries(t, l, EntryFilter{})
		l.Close()

		l = db.open(t)
		if got := mustGetEnvelope(t, l, "axis-2"); got.Committed != 13_100_000 || got.CommitmentCount != 1 {
			t.Errorf("after reopening, axis-2 committed %d in %d commitments; want 13100000 in 1",
				got.Committed, got.CommitmentCount)
		}
		if got, err := l.GetCommitment(ctx, c.Commitment.ID); err != nil {
			t.Errorf("the commitment is gone after reopening: %v", err)
		} else if diff := cmp.Diff(c.Commitment, got); diff != "" {
			t.Errorf("commitment after reopening (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(before, allEntries(t, l, EntryFilter{})); diff != "" {
			t.Errorf("journal after reopening (-before +after):\n%s", diff)
		}
		requireVerifyOK(t, l)
	})
}

// TestRulesAppendOnlyMigrationReruns: migration 6 (the rule sets' append-only triggers) may run
// again on a database that has it, or that lost its triggers, and leaves the triggers in place.
func TestRulesAppendOnlyMigrationReruns(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l := db.open(t)
		buildFund(t, l)
		if _, err := l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis-1",
			Call: "appel-1", Rules: Rules{MaxFundingShareBPS: ptr(5000)}}); err != nil {
			t.Fatal(err)
		}
		drop := "DROP TRIGGER envelope_rules_no_delete"
		if db.engine != "sqlite" {
			drop = "DROP TRIGGER envelope_rules_append_only ON envelope_rules"
		}
		for _, stmt := range []string{drop, "DELETE FROM goose_db_version WHERE version_id = 6"} {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		l.Close()
		l = db.open(t) // runs migration 6 again
		for _, stmt := range []string{"UPDATE envelope_rules SET call_name = 'x'", "DELETE FROM envelope_rules"} {
			if err := rawExec(ctx, l, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s after migration 6 ran again: %v, want it refused as append-only", stmt, err)
			}
		}
		requireVerifyOK(t, l)
	})
}
