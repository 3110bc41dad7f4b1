package ledger

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// countRecords counts the request log's records in format tag.
func countRecords(t *testing.T, l *Ledger, tag byte) int {
	t.Helper()
	var n int
	if err := l.db.Reader().QueryRow(t.Context(), "SELECT count(*) FROM requests WHERE packed IS NOT NULL AND substr(packed, 1, 1) = $1",
		[]byte{tag}).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPaymentAnswersReplayUnbatchedAndBatched protects invariant 5 for the payments' answers kept
// by reference (migration 30) on both paths that record them: the group commit's batches
// (core.DecideBatch) and a transaction of their own (mutate). Payments of a backdated award on a
// child envelope, one of them backdated, one of a commitment released before, one made by a hold's
// confirmation; the commitments then paid again, released and closed, the envelope awarded from;
// every payment retried in the same process and after reopening gets its first answer byte for
// byte and posts nothing.
func TestPaymentAnswersReplayUnbatchedAndBatched(t *testing.T) {
	t.Parallel()
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			forEachDatabase(t, func(t *testing.T, db testDB) {
				ctx := t.Context()
				clock := newTestClock()
				cfg := Config{TxTimeout: testdb.TxTimeout, Clock: clock.Now, HoldSweepInterval: -1, DisableBatching: !batching}
				l, err := Open(ctx, db.dsn, cfg)
				if err != nil {
					t.Fatal(err)
				}
				start := clock.Now().Add(-24 * time.Hour)
				for _, e := range []CreateEnvelope{
					{EnvelopeID: "root", Allocation: 10_000_000, Effective: start, GrantingBody: GrantingBody{GrantingBodyName: "Région"}},
					{EnvelopeID: "kid", ParentID: "root", Allocation: 1_000_000, Effective: start},
				} {
					e.RequestID, e.Caller = newRequestID(), testCaller
					if _, err := l.CreateEnvelope(ctx, e); err != nil {
						t.Fatal(err)
					}
				}
				clock.Advance(time.Minute)
				award := commitCmd("kid", "siren:p1", 50_000)
				award.Effective = clock.Now().Add(-time.Hour)
				award.Publication = Publication{DecisionReference: "délib-1", Purpose: "toits"}
				awarded, err := l.Commit(ctx, award)
				if err != nil {
					t.Fatal(err)
				}
				released := mustCommit(t, l, "kid", "siren:p2", 8_000)
				if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: released.Commitment.ID,
					Amount: 1_000, Reason: "r"}); err != nil {
					t.Fatal(err)
				}
				held := mustHold(t, l, holdCmd("root", "siren:p3", 9_000))
				confirmed, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: testCaller, HoldID: held.Hold.ID, Amount: 6_000})
				if err != nil {
					t.Fatal(err)
				}
				clock.Advance(time.Minute)

				var calls []replayCall
				answers := map[string]string{}
				do := func(c replayCall) {
					t.Helper()
					res, err := c.send(ctx, l)
					if err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
					answers[c.name] = answerBytes(t, res, err)
					calls = append(calls, c)
					clock.Advance(time.Minute)
				}
				pay := func(name, id string, amount int64, effective time.Time) {
					do(call(name, (*Ledger).CreatePayment, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
						CommitmentID: id, Amount: amount, Effective: effective}))
				}
				pay("backdated", awarded.Commitment.ID, 10_000, clock.Now().Add(-30*time.Second))
				pay("again", awarded.Commitment.ID, 5_000, time.Time{})
				pay("of a released award", released.Commitment.ID, 3_000, time.Time{})
				pay("of a confirmed hold", confirmed.Commitment.ID, 6_000, time.Time{})
				mustCommit(t, l, "kid", "siren:p4", 4_000)
				if _, err := l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
					CommitmentID: awarded.Commitment.ID, Amount: 1_000}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: awarded.Commitment.ID,
					Amount: 2_000, Reason: "r"}); err != nil {
					t.Fatal(err)
				}
				for _, id := range []string{released.Commitment.ID, confirmed.Commitment.ID} {
					if _, err := l.CloseCommitment(ctx, CloseCommitment{RequestID: newRequestID(), Caller: testCaller,
						CommitmentID: id, Reason: "done"}); err != nil {
						t.Fatal(err)
					}
				}
				if n := countRecords(t, l, 6); n != 5 {
					t.Errorf("%d payment records by reference, want 5", n)
				}
				replay := func(what string, l *Ledger) {
					t.Helper()
					entries := entryCount(t, l)
					for _, c := range calls {
						res, err := c.send(ctx, l)
						if got := answerBytes(t, res, err); got != answers[c.name] {
							t.Errorf("%s, %s:\n got %s\nwant %s", what, c.name, got, answers[c.name])
						}
					}
					if got := entryCount(t, l); got != entries {
						t.Errorf("%s: the replays posted %d entries", what, got-entries)
					}
				}
				replay("same process", l)
				l.Close()
				re, err := Open(ctx, db.dsn, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer re.Close()
				replay("reopened", re)
				requireVerifyOK(t, re)
			})
		})
	}
}

// TestPaymentRowsBeforeMigration30Replay protects invariant 5 across migration 30: a
// CreatePayment's result recorded before it (its JSON deflated) keeps replaying byte for byte
// after its commitment was paid again, released and closed, refuses another payload under its id,
// and posts nothing; the same request recorded now is kept by reference.
func TestPaymentRowsBeforeMigration30Replay(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		c := mustCommit(t, l, "fund", "siren:1", 10_000)
		payment := CreatePayment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: c.Commitment.ID, Amount: 4_000}
		paid, err := l.CreatePayment(ctx, payment)
		if err != nil {
			t.Fatal(err)
		}
		// The same answer recorded under another request id as before migration 30 (the
		// fingerprint does not include the request id).
		old := payment
		old.RequestID = newRequestID()
		insertDeflatedRequestRow(t, l, core.RequestKey(old.Caller, old.RequestID), old.Fingerprint(), paid)
		var record []byte
		if err := l.db.Reader().QueryRow(ctx, "SELECT packed FROM requests WHERE request_id = $1",
			core.RequestKey(payment.Caller, payment.RequestID)).Scan(&record); err != nil {
			t.Fatal(err)
		}
		if !core.IsPackedPayment(record) {
			t.Errorf("the payment recorded in format %d, not by reference", record[0])
		}

		if _, err := l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: c.Commitment.ID,
			Amount: 1_000}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: c.Commitment.ID,
			Amount: 500, Reason: "later"}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.CloseCommitment(ctx, CloseCommitment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: c.Commitment.ID, Reason: "done"}); err != nil {
			t.Fatal(err)
		}
		entries := entryCount(t, l)
		for name, cmd := range map[string]CreatePayment{"old row": old, "new row": payment} {
			res, err := l.CreatePayment(ctx, cmd)
			if got, want := answerBytes(t, res, err), answerBytes(t, paid, nil); got != want {
				t.Errorf("%s:\n got %s\nwant %s", name, got, want)
			}
		}
		changed := old
		changed.Amount++
		_, err = l.CreatePayment(ctx, changed)
		requireError(t, err, ErrRequestIDReused)
		if got := entryCount(t, l); got != entries {
			t.Errorf("replays posted %d entries", got-entries)
		}
		requireVerifyOK(t, l)
	})
}

// TestARecordNamingNoUUIDFailsAlone protects the rule that a retry whose recorded answer cannot
// be given back fails alone (INTERNAL), the other requests of its batch decided as usual, for
// records kept by reference that name a row by an id that is not a UUID (damaged behind the
// ledger's back: the ledger only makes UUIDs). On PostgreSQL and CockroachDB, where those ids are
// native UUIDs, reading such an id with the others failed the whole lookup, and every request of
// the batch with it: a payment's record naming its payment or its commitment so, and an award's
// naming its commitment so.
func TestARecordNamingNoUUIDFailsAlone(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		award := commitCmd("fund", "siren:1", 10_000)
		awarded, err := l.Commit(ctx, award)
		if err != nil {
			t.Fatal(err)
		}
		payment := CreatePayment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: awarded.Commitment.ID, Amount: 400}
		paid, err := l.CreatePayment(ctx, payment)
		if err != nil {
			t.Fatal(err)
		}
		// Each damaged record under a request id of its own, for the same payload.
		record := func(caller string, fp core.Fingerprint, packed []byte) string {
			t.Helper()
			if packed == nil {
				t.Fatal("not packed")
			}
			id := newRequestID()
			insertRequestRow(t, l, core.RequestKey(caller, id), "result", "", "", core.FingerprintDigest(fp.Current), packed)
			return id
		}
		damaged := map[string]*core.Op{}
		for name, edit := range map[string]func(r *CreatePaymentResult){
			"payment's id":    func(r *CreatePaymentResult) { r.Payment.ID = "pay-1" },
			"commitment's id": func(r *CreatePaymentResult) { r.Commitment.ID, r.Payment.CommitmentID = "c-1", "c-1" },
		} {
			r := paid
			edit(&r)
			cmd := payment
			cmd.RequestID = record(payment.Caller, payment.Fingerprint(), core.PackPayment(&r))
			damaged["payment, "+name] = &core.Op{Payment: &cmd, Fingerprint: cmd.Fingerprint()}
		}
		r := awarded
		r.Commitment.ID = "c-1"
		cmd := award
		cmd.RequestID = record(award.Caller, award.Fingerprint(), core.PackCommit(&r))
		damaged["award, commitment's id"] = &core.Op{Commit: &cmd, Fingerprint: cmd.Fingerprint()}

		fresh := commitCmd("fund", "siren:2", 200)
		freshOp := &core.Op{Commit: &fresh, Fingerprint: fresh.Fingerprint()}
		retryOp := &core.Op{Payment: &payment, Fingerprint: payment.Fingerprint()}
		units := []*core.Unit{{EnvelopeID: "fund", Ops: []*core.Op{freshOp}}, {EnvelopeID: "fund", Ops: []*core.Op{retryOp}}}
		for _, op := range damaged {
			units = append(units, &core.Unit{EnvelopeID: "fund", Ops: []*core.Op{op}})
		}
		entries := entryCount(t, l)
		if err := l.applyBatch(ctx, units); err != nil {
			t.Fatalf("the batch failed whole: %v", err)
		}
		for name, op := range damaged {
			if !errors.Is(op.Err, ErrInternal) {
				t.Errorf("%s: %v, want INTERNAL", name, op.Err)
			}
		}
		var made CommitResult
		if err := freshOp.Decode(&made); err != nil || made.Commitment.Amount != 200 {
			t.Errorf("the award batched with them: %+v, %v", made, err)
		}
		var retried CreatePaymentResult
		if err := retryOp.Decode(&retried); err != nil || answerBytes(t, retried, nil) != answerBytes(t, paid, nil) {
			t.Errorf("the payment's retry batched with them: %+v, %v", retried, err)
		}
		if got := entryCount(t, l); got != entries+1 {
			t.Errorf("the batch posted %d entries, want the fresh award's only", got-entries)
		}
		// Each alone, outside a batch too.
		for name, op := range damaged {
			var err error
			if op.Payment != nil {
				_, err = l.CreatePayment(ctx, *op.Payment)
			} else {
				_, err = l.Commit(ctx, *op.Commit)
			}
			if !errors.Is(err, ErrInternal) {
				t.Errorf("%s sent alone: %v, want INTERNAL", name, err)
			}
		}
	})
}
