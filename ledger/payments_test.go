package ledger

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

func payCmd(commitmentID string, amount int64) CreatePayment {
	return CreatePayment{RequestID: newRequestID(), Caller: "service:test", CommitmentID: commitmentID, Amount: amount}
}

func mustPay(t *testing.T, l *Ledger, commitmentID string, amount int64) CreatePaymentResult {
	t.Helper()
	res, err := l.CreatePayment(t.Context(), payCmd(commitmentID, amount))
	if err != nil {
		t.Fatalf("CreatePayment(%s, %d): %v", commitmentID, amount, err)
	}
	return res
}

func closeCmd(commitmentID string) CloseCommitment {
	return CloseCommitment{RequestID: newRequestID(), Caller: "service:test", CommitmentID: commitmentID, Reason: "project completed"}
}

// figures are what the payment tests compare of a commitment and its envelope.
type figures struct {
	Amount, Released, Paid, RemainingToPay         int64
	Closed                                         bool
	EnvCommitted, EnvPaid, EnvRemaining, Available int64
}

func figuresOf(c Commitment, e Envelope) figures {
	return figures{c.Amount, c.Released, c.Paid, c.RemainingToPay(), c.Closed(), e.Committed, e.Paid, e.RemainingToPay(), e.Available()}
}

// TestPaymentsAndClosing follows an award through its life: an advance, a partial release, the
// balance, the closing. Invariant 10 (paid + released ≤ amount; paid money never returns; a
// closed commitment takes nothing more), invariant 4 (Verify: the stored figures equal the
// journal's) and invariant 5 (a retried payment replays its first outcome).
func TestPaymentsAndClosing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-3", "fund", 500_000)
		c := mustCommit(t, l, "axis-3", "siren:217500016", 100_000).Commitment

		// The advance: paid, still committed; the envelope's available does not move.
		cmd := payCmd(c.ID, 30_000)
		adv, err := l.CreatePayment(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(figures{100_000, 0, 30_000, 70_000, false, 100_000, 30_000, 70_000, 400_000},
			figuresOf(adv.Commitment, adv.Envelope)); diff != "" {
			t.Errorf("after the advance (-want +got):\n%s", diff)
		}
		if adv.Payment.ID == "" || adv.Payment.CommitmentID != c.ID || adv.Payment.Amount != 30_000 || adv.EntryID == "" {
			t.Errorf("payment = %+v", adv.Payment)
		}
		// Invariant 5: the retry replays, a new payload under the id is refused.
		again, err := l.CreatePayment(ctx, cmd)
		if err != nil || again.Payment.ID != adv.Payment.ID || again.EntryID != adv.EntryID {
			t.Errorf("retry = %+v, %v; want the first payment %s", again.Payment, err, adv.Payment.ID)
		}
		other := cmd
		other.Amount++
		_, err = l.CreatePayment(ctx, other)
		requireError(t, err, ErrRequestIDReused)

		// More than remains to pay is refused, with the figures.
		_, err = l.CreatePayment(ctx, payCmd(c.ID, 70_001))
		requireMetadata(t, requireError(t, err, ErrPaymentExceedsRemaining),
			map[string]string{"remaining_to_pay": "70000", "paid": "30000", "requested": "70001"})
		// A release cannot return what was paid.
		_, err = l.Release(ctx, releaseCmd(c.ID, 80_000))
		requireMetadata(t, requireError(t, err, ErrReleaseExceedsUnpaid),
			map[string]string{"remaining_to_pay": "70000", "paid": "30000", "remaining": "100000", "requested": "80000"})
		rel, err := l.Release(ctx, releaseCmd(c.ID, 10_000))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(figures{100_000, 10_000, 30_000, 60_000, false, 90_000, 30_000, 60_000, 410_000},
			figuresOf(rel.Commitment, rel.Envelope)); diff != "" {
			t.Errorf("after the release (-want +got):\n%s", diff)
		}

		// The balance, then the closing returns the unpaid rest in one entry.
		mustPay(t, l, c.ID, 50_000)
		closed, err := l.CloseCommitment(ctx, closeCmd(c.ID))
		if err != nil {
			t.Fatal(err)
		}
		if closed.Returned != 10_000 {
			t.Errorf("closing returned %d, want 10000", closed.Returned)
		}
		if diff := cmp.Diff(figures{100_000, 20_000, 80_000, 0, true, 80_000, 80_000, 0, 420_000},
			figuresOf(closed.Commitment, closed.Envelope)); diff != "" {
			t.Errorf("after the closing (-want +got):\n%s", diff)
		}
		if got := mustGetEnvelope(t, l, "axis-3"); got.Paid != 80_000 || got.Committed != 80_000 {
			t.Errorf("GetEnvelope: paid %d committed %d, want 80000 80000", got.Paid, got.Committed)
		}
		entries := allEntries(t, l, EntryFilter{CommitmentID: c.ID})
		var kinds []EntryKind
		for _, e := range entries {
			kinds = append(kinds, e.Kind)
		}
		if diff := cmp.Diff([]EntryKind{KindCommitted, KindPaid, KindReleased, KindPaid, KindCommitmentClosed}, kinds); diff != "" {
			t.Errorf("the commitment's entries (-want +got):\n%s", diff)
		}
		last := entries[len(entries)-1]
		if diff := cmp.Diff([]Posting{{Account: CommitmentName(c.ID), Amount: -10_000}, {Account: EnvelopeName("axis-3"), Amount: 10_000}}, last.Postings); diff != "" {
			t.Errorf("closing postings (-want +got):\n%s", diff)
		}

		// Closed: no payment, release or second closing.
		_, err = l.CreatePayment(ctx, payCmd(c.ID, 1))
		requireMetadata(t, requireError(t, err, ErrCommitmentClosed), map[string]string{"commitment": CommitmentName(c.ID)})
		_, err = l.Release(ctx, releaseCmd(c.ID, 1))
		requireError(t, err, ErrCommitmentClosed)
		_, err = l.CloseCommitment(ctx, closeCmd(c.ID))
		requireError(t, err, ErrCommitmentClosed)

		// ListPayments, oldest first, page by page.
		_, payments, _ := listAll(t, 1, func(p Page) ([]Payment, string, error) { return l.ListPayments(ctx, c.ID, p) })
		if len(payments) != 2 || payments[0].ID != adv.Payment.ID || payments[1].Amount != 50_000 {
			t.Errorf("ListPayments = %+v", payments)
		}

		// The report: engagé, décaissé, reste à payer, rolled up.
		rep, err := l.Report(ctx, "fund", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range rep.Lines {
			if line.Total.Paid != 80_000 || line.Total.Committed != 80_000 || line.Total.RemainingToPay != 0 || line.Total.Released != 20_000 {
				t.Errorf("report line %s: %+v", line.EnvelopeID, line.Total)
			}
		}
		// As of the advance: 30,000 paid of 100,000 committed (a report as of a past time counts
		// the payments made by then).
		past, err := l.ReportAt(ctx, "axis-3", adv.Payment.CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		if got := past.Lines[0].Own; got.Paid != 30_000 || got.Committed != 100_000 || got.RemainingToPay != 70_000 || got.Released != 0 {
			t.Errorf("report as of the advance: %+v", got)
		}
		requireVerifyOK(t, l)
	})
}

// TestCloseFullyPaidAndUnknown: a commitment paid in full closes with nothing to return (an entry
// without postings), and payments or closings of an unknown commitment are refused and recorded
// (invariant 7: a refusal posts nothing).
func TestCloseFullyPaidAndUnknown(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000)
		c := mustCommit(t, l, "fund", "b", 600).Commitment
		mustPay(t, l, c.ID, 600)
		closed, err := l.CloseCommitment(ctx, closeCmd(c.ID))
		if err != nil || closed.Returned != 0 || !closed.Commitment.Closed() || closed.Envelope.Committed != 600 {
			t.Fatalf("closing = %+v, %v", closed, err)
		}
		before := entryCount(t, l)
		unknown := "0190a000-0000-7000-8000-000000000000"
		cmd := payCmd(unknown, 1)
		_, err = l.CreatePayment(ctx, cmd)
		requireError(t, err, ErrCommitmentNotFound)
		_, err = l.CreatePayment(ctx, cmd)
		requireError(t, err, ErrCommitmentNotFound)
		_, err = l.CloseCommitment(ctx, closeCmd(unknown))
		requireError(t, err, ErrCommitmentNotFound)
		_, _, err = l.ListPayments(ctx, unknown, Page{})
		requireError(t, err, ErrCommitmentNotFound)
		if got := entryCount(t, l); got != before {
			t.Errorf("refusals posted %d entries", got-before)
		}
		requireVerifyOK(t, l)
	})
}

// TestPublicationFields: an award's publication fields and a root's granting body are checked
// (a SIRET's Luhn key, La Poste's rule, an RNA number), stored and returned.
func TestPublicationFields(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		env, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "fund",
			Allocation: 1_000, GrantingBody: GrantingBody{GrantingBodyName: "Agence nationale de la cohésion des territoires",
				GrantingBodySIRET: "13001853500042"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustGetEnvelope(t, l, "fund"); got.GrantingBody != env.Envelope.GrantingBody || got.GrantingBodySIRET != "13001853500042" {
			t.Errorf("granting body = %+v, want %+v", got.GrantingBody, env.Envelope.GrantingBody)
		}
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis",
			ParentID: "fund", Allocation: 10, GrantingBody: GrantingBody{GrantingBodyName: "x"}})
		if e := requireError(t, err, ErrInvalidArgument); e.Field != "granting_body_name" {
			t.Errorf("field = %q", e.Field)
		}
		pub := Publication{DecisionReference: "ANCT-2021-0042", BeneficiaryLegalName: "Commune de Lyon",
			BeneficiarySIRET: "21690123100011", BeneficiaryRNA: "W691234567", Purpose: "Dématérialisation des actes"}
		cmd := commitCmd("fund", "siren:216901231", 100)
		cmd.Publication = pub
		res, err := l.Commit(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.GetCommitment(ctx, res.Commitment.ID)
		if err != nil || got.Publication != pub {
			t.Errorf("GetCommitment publication = %+v, %v; want %+v", got.Publication, err, pub)
		}
		// La Poste's establishments: digits summing to a multiple of 5 instead of Luhn.
		cmd = commitCmd("fund", "la-poste", 1)
		cmd.BeneficiarySIRET = "35600000049837"
		if _, err := l.Commit(ctx, cmd); err != nil {
			t.Errorf("La Poste SIRET: %v", err)
		}
		for field, p := range map[string]Publication{
			"beneficiary_siret":  {BeneficiarySIRET: "21690123100012"},
			"beneficiary_rna":    {BeneficiaryRNA: "W12345678"},
			"purpose":            {Purpose: string(make([]rune, 257))},
			"decision_reference": {DecisionReference: "a\nb"},
		} {
			cmd := commitCmd("fund", "b", 1)
			cmd.Publication = p
			_, err := l.Commit(ctx, cmd)
			if e := requireError(t, err, ErrInvalidArgument); e.Field != field {
				t.Errorf("%+v: field %q, want %q", p, e.Field, field)
			}
		}
		requireVerifyOK(t, l)
	})
}

// TestVerifyDetectsPaymentTampering protects invariants 10 and 4 for payments: a commitment whose
// stored paid figure disagrees with its payments and the journal, and one marked closed with
// money still to pay, are each reported (by the invariant they break, naming the commitment).
func TestVerifyDetectsPaymentTampering(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000)
		paid := mustCommit(t, l, "fund", "a", 100).Commitment
		mustPay(t, l, paid.ID, 40)
		open := mustCommit(t, l, "fund", "b", 100).Commitment
		requireVerifyOK(t, l)

		// Paid beyond the amount: more than it holds, and more than its payments.
		if err := rawExec(ctx, l, "UPDATE commitments SET paid = 101 WHERE id = $1", paid.ID); err != nil {
			t.Fatal(err)
		}
		// Closed, with its 100 still held.
		if err := rawExec(ctx, l, "UPDATE commitments SET closed_at = 1 WHERE id = $1", open.ID); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]map[int]bool{}
		for _, d := range rep.Discrepancies {
			if found[d.Subject] == nil {
				found[d.Subject] = map[int]bool{}
			}
			found[d.Subject][d.Invariant] = true
		}
		if f := found[CommitmentName(paid.ID)]; !f[30] || !f[4] {
			t.Errorf("the overpaid commitment is not reported under invariants 30 and 4: %v", rep.Discrepancies)
		}
		if f := found[CommitmentName(open.ID)]; !f[30] {
			t.Errorf("the commitment closed with money to pay is not reported under invariant 30: %v", rep.Discrepancies)
		}
		if f := found[EnvelopeName("fund")]; !f[4] {
			t.Errorf("the envelope whose paid disagrees with its commitments is not reported: %v", rep.Discrepancies)
		}
	})
}

// TestConcurrentPaymentsReleasesAndClosing protects invariant 10 under concurrency, with two
// Ledgers (two processes) on one database: payments, releases and a closing of one commitment
// race; what was accepted never exceeds the amount, the stored figures are the sums of what was
// accepted, nothing is paid or released after the closing, and Verify is clean.
func TestConcurrentPaymentsReleasesAndClosing(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l1, l2 := db.open(t), db.open(t)
		mustCreateEnvelope(t, l1, "fund", "", 10_000)
		c := mustCommit(t, l1, "fund", "b", 1_000).Commitment
		var (
			mu                 sync.Mutex
			paid, released     int64
			closings, returned int64
			wg                 sync.WaitGroup
		)
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := l1
				if i%2 == 1 {
					l = l2
				}
				switch {
				case i == 17:
					cmd := closeCmd(c.ID)
					res, err := untilDecided(func() (CloseCommitmentResult, error) { return l.CloseCommitment(ctx, cmd) })
					if err == nil {
						mu.Lock()
						closings++
						returned += res.Returned
						mu.Unlock()
					} else if !errors.Is(err, ErrCommitmentClosed) {
						t.Errorf("closing: %v", err)
					}
				case i%3 == 0:
					cmd := releaseCmd(c.ID, 50)
					_, err := untilDecided(func() (ReleaseResult, error) { return l.Release(ctx, cmd) })
					if err == nil {
						mu.Lock()
						released += 50
						mu.Unlock()
					} else if !errors.Is(err, ErrCommitmentClosed) && !errors.Is(err, ErrReleaseExceedsUnpaid) &&
						!errors.Is(err, ErrReleaseExceedsRemaining) {
						t.Errorf("release: %v", err)
					}
				default:
					cmd := payCmd(c.ID, 70)
					_, err := untilDecided(func() (CreatePaymentResult, error) { return l.CreatePayment(ctx, cmd) })
					if err == nil {
						mu.Lock()
						paid += 70
						mu.Unlock()
					} else if !errors.Is(err, ErrCommitmentClosed) && !errors.Is(err, ErrPaymentExceedsRemaining) {
						t.Errorf("payment: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		got, err := l2.GetCommitment(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if closings != 1 || got.Paid != paid || got.Released != released+returned || got.RemainingToPay() != 0 || !got.Closed() {
			t.Errorf("commitment %+v after %d paid, %d released, %d closing(s) returning %d", got, paid, released, closings, returned)
		}
		if paid+released+returned != 1_000 {
			t.Errorf("paid %d + released %d + returned %d != 1000", paid, released, returned)
		}
		requireVerifyOK(t, l1)
	})
}

// TestVerifyHoldsPaymentsToTheirEntries protects invariant 6 for payments: a payment's amount and
// dates are what its PAID journal entry recorded. Two payments of one commitment whose amounts
// are swapped keep every sum (the commitment's paid, the envelope's, PaymentsAccount's), and a
// payment moved to another date changes no sum at all; both change what ListPayments and the
// open data publish. The triggers that keep the payments table append-only are dropped first, as
// an operator with the database's rights could.
func TestVerifyHoldsPaymentsToTheirEntries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000)
		c := mustCommit(t, l, "fund", "a", 100).Commitment
		first := mustPay(t, l, c.ID, 30).Payment
		second := mustPay(t, l, c.ID, 20).Payment
		dated := mustPay(t, l, mustCommit(t, l, "fund", "b", 100).Commitment.ID, 10).Payment
		requireVerifyOK(t, l)

		drops := []string{"DROP TRIGGER payments_append_only", "DROP TRIGGER payments_no_delete"}
		if l.Engine() != "sqlite" {
			drops = []string{"DROP TRIGGER payments_append_only ON payments"}
		}
		for _, drop := range drops {
			if err := rawExec(ctx, l, drop); err != nil {
				t.Fatal(err)
			}
		}
		if err := rawExec(ctx, l, "UPDATE payments SET amount = 50 - amount WHERE commitment_id = $1", c.ID); err != nil {
			t.Fatal(err)
		}
		if err := rawExec(ctx, l, "UPDATE payments SET effective_at = effective_at - 86400000000 WHERE id = $1", dated.ID); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reported := detailsOf(rep, 6)
		for _, p := range []Payment{first, second} {
			if d := reported[PaymentName(c.ID, p.ID)]; !strings.Contains(d, "PAID journal entry") || !strings.Contains(d, "posts") {
				t.Errorf("payment %s, its amount swapped, is not reported under invariant 6 for its amount: %q (all: %v)", p.ID, d, rep.Discrepancies)
			}
		}
		if d := reported[PaymentName(dated.CommitmentID, dated.ID)]; !strings.Contains(d, "took effect at") {
			t.Errorf("the payment moved a day earlier is not reported under invariant 6 for its date: %q (all: %v)", d, rep.Discrepancies)
		}
	})
}

// TestClosingNotBeforeTheLastRelease protects the rule that a commitment is closed after its last
// release (docs/dates.md), on every engine, with group commit and without: a closing dated before
// a release recorded earlier is refused EFFECTIVE_TIME_BEFORE_RELEASE and changes nothing; one
// dated after it is made. An outside probe closed an award as of 1 July after a release dated 30
// November: the funding report as of 1 August showed the closed award still owing the released
// amount.
func TestClosingNotBeforeTheLastRelease(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		for _, batching := range []bool{true, false} {
			l, err := Open(t.Context(), db.dsn, Config{TxTimeout: testdb.TxTimeout, DisableBatching: !batching})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
			day := func(m time.Month, d int) time.Time { return time.Date(2021, m, d, 0, 0, 0, 0, time.UTC) }
			fund := fmt.Sprintf("fund-%t", batching)
			if _, err := l.CreateEnvelope(t.Context(), CreateEnvelope{RequestID: newRequestID(), EnvelopeID: fund, Allocation: 1_000, Effective: day(1, 15)}); err != nil {
				t.Fatal(err)
			}
			cmd := commitCmd(fund, "ville", 500)
			cmd.Effective = day(3, 11)
			res, err := l.Commit(t.Context(), cmd)
			if err != nil {
				t.Fatal(err)
			}
			c := res.Commitment
			rel := releaseCmd(c.ID, 50)
			rel.Effective = day(11, 30)
			if _, err := l.Release(t.Context(), rel); err != nil {
				t.Fatal(err)
			}
			pay := payCmd(c.ID, 100)
			pay.Effective = day(6, 1)
			if _, err := l.CreatePayment(t.Context(), pay); err != nil {
				t.Fatal(err)
			}
			early := closeCmd(c.ID)
			early.Effective = day(7, 1)
			_, err = l.CloseCommitment(t.Context(), early)
			var lerr *Error
			if !errors.As(err, &lerr) || lerr.Reason != ReasonEffectiveTimeBeforeRelease ||
				lerr.Metadata["release_effective_time"] != "2021-11-30T00:00:00Z" || lerr.Metadata["commitment"] != CommitmentName(c.ID) {
				t.Fatalf("batching %t: closing dated before the release: %v, want EFFECTIVE_TIME_BEFORE_RELEASE naming the release's date", batching, err)
			}
			if got, err := l.GetCommitment(t.Context(), c.ID); err != nil || got.Closed() {
				t.Fatalf("batching %t: the refused closing closed the commitment: %+v, %v", batching, got, err)
			}
			late := closeCmd(c.ID)
			late.Effective = day(12, 1)
			if _, err := l.CloseCommitment(t.Context(), late); err != nil {
				t.Fatalf("batching %t: closing dated after the release: %v", batching, err)
			}
			requireVerifyOK(t, l)
		}
	})
}
