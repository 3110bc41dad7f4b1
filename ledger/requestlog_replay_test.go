package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// replayCall is a request sent again with the same request id and payload, and the bytes of its
// answer (the result's JSON, or the refusal's).
type replayCall struct {
	name string
	send func(ctx context.Context, l *Ledger) (any, error)
}

// answerBytes is an answer as bytes: the result's JSON, or the refusal's (reason, message,
// field, metadata).
func answerBytes(t *testing.T, res any, err error) string {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("not a refusal: %v", err)
		}
		b, _ := json.Marshal(e)
		return "refused " + string(b)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func call[C any, R any](name string, f func(*Ledger, context.Context, C) (R, error), cmd C) replayCall {
	return replayCall{name, func(ctx context.Context, l *Ledger) (any, error) { return f(l, ctx, cmd) }}
}

// TestEveryAnswerReplaysAfterRestartAndCopy protects invariant 5 over the request log's compact
// rows (migration 18: a Commit's result by reference, fingerprints as bytes; migration 29: a
// CreateHold's and a ConfirmHold's too; migration 30: a CreatePayment's): every kind of
// request, accepted or refused, sent again with its request id after the ledger is closed and
// reopened, and again after `ledgerd copy` to the other engine, gets the same answer byte for byte
// and posts nothing, even though the commitments, holds and envelopes its first answer showed were
// changed in between (released, paid, closed, awarded from; holds confirmed, cancelled, expired;
// paid commitments paid again, released and closed).
func TestEveryAnswerReplaysAfterRestartAndCopy(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		clock := newTestClock()
		cfg := Config{TxTimeout: testdb.TxTimeout, Clock: clock.Now, HoldSweepInterval: -1}
		l, err := Open(ctx, db.dsn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := clock.Now().Add(-30 * 24 * time.Hour)
		var calls []replayCall
		answers := map[string]string{}
		do := func(c replayCall) any {
			t.Helper()
			res, err := c.send(ctx, l)
			answers[c.name] = answerBytes(t, res, err)
			calls = append(calls, c)
			clock.Advance(time.Minute)
			return res
		}
		do(call("CreateEnvelope root", (*Ledger).CreateEnvelope, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "prog", DisplayName: "Programme", Allocation: 10_000_000, Effective: start,
			GrantingBody: GrantingBody{GrantingBodyName: "Région"}}))
		do(call("CreateEnvelope child", (*Ledger).CreateEnvelope, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "axis", ParentID: "prog", DisplayName: "Axis", Allocation: 2_000_000, Effective: start}))
		do(call("CreateEnvelope other", (*Ledger).CreateEnvelope, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "side", ParentID: "prog", Allocation: 1_000_000}))
		backdated := commitCmd("axis", "siren:2", 20_000)
		backdated.Effective = clock.Now().Add(-20 * 24 * time.Hour)
		do(call("Commit backdated", (*Ledger).Commit, backdated))
		do(call("MoveAllocation", (*Ledger).MoveAllocation, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
			SourceID: "side", DestinationID: "axis", Amount: 100_000, Reason: "rebalance"}))
		share := int64(8000)
		do(call("SetRules", (*Ledger).SetRules, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "side",
			Call: "appel-1", EffectiveTime: start, Rules: Rules{MaxFundingShareBPS: &share}}))
		plain := do(call("Commit", (*Ledger).Commit, commitCmd("axis", "siren:1", 10_000))).(CommitResult)
		// A backdated award refused: its envelope has a later entry.
		tooEarly := commitCmd("axis", "siren:2a", 2_000)
		tooEarly.Effective = clock.Now().Add(-25 * 24 * time.Hour)
		do(call("Commit refused: backdated too far", (*Ledger).Commit, tooEarly))
		do(call("Commit after others", (*Ledger).Commit, commitCmd("prog", "siren:2c", 2_000)))
		do(call("Commit after a backdated one", (*Ledger).Commit, commitCmd("axis", "siren:2b", 2_000)))
		published := commitCmd("side", "siren:3", 30_000)
		published.Description = "a described award"
		published.Policy = Policy{EligibleCost: 100_000, Territory: "insee:69123", Population: 0, PopulationGiven: true}
		published.Publication = Publication{DecisionReference: "délib-2026-1", Purpose: "équipement"}
		paid := do(call("Commit with policy and publication", (*Ledger).Commit, published)).(CommitResult)
		do(call("Commit refused: funds", (*Ledger).Commit, commitCmd("axis", "siren:big", 50_000_000)))
		over := commitCmd("side", "siren:over", 90_000)
		over.Policy = Policy{EligibleCost: 100_000}
		do(call("Commit refused: rules", (*Ledger).Commit, over))
		do(call("BulkCommit", (*Ledger).BulkCommit, BulkCommit{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis",
			Items: []BulkItem{{Beneficiary: "siren:b1", Project: "p1", Amount: 1_000},
				{Beneficiary: "siren:b2", Project: "p2", Amount: 90_000_000},
				{Beneficiary: "siren:b3", Project: "p3", Amount: 3_000}}}))
		// Every item refused on its own: the answer shows the envelope as the call found it,
		// which a replay from one row per call gives back too.
		do(call("BulkCommit every item refused", (*Ledger).BulkCommit, BulkCommit{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "axis", Items: []BulkItem{{Beneficiary: "siren:d1", Project: "p1", Amount: 90_000_000}}}))
		do(call("BulkCommit all or nothing, refused", (*Ledger).BulkCommit, BulkCommit{RequestID: newRequestID(), Caller: testCaller,
			EnvelopeID: "axis", AllOrNothing: true,
			Items: []BulkItem{{Beneficiary: "siren:c1", Project: "p1", Amount: 1_000}, {Beneficiary: "siren:c2", Project: "p2", Amount: 90_000_000}}}))
		do(call("Release", (*Ledger).Release, Release{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: plain.Commitment.ID, Amount: 1_000, Reason: "lower cost"}))
		// Holds (migration 29: a CreateHold's and a ConfirmHold's results by reference), each
		// ended after its creation was answered: confirmed in part, confirmed whole, cancelled,
		// expired; the commitments the confirmations made then released, paid and closed.
		heldCmd := holdCmd("axis", "siren:h1", 40_000)
		heldCmd.Description = "a described hold"
		heldCmd.Policy = Policy{EligibleCost: 200_000, EligibleCostGiven: true, Territory: "insee:69123", Population: 0, PopulationGiven: true}
		heldCmd.ExpireTime = clock.Now().Add(24 * time.Hour)
		held := do(call("CreateHold", (*Ledger).CreateHold, heldCmd)).(CreateHoldResult)
		confirmed := do(call("ConfirmHold", (*Ledger).ConfirmHold, ConfirmHold{RequestID: newRequestID(), Caller: testCaller,
			HoldID: held.Hold.ID, Amount: 30_000})).(ConfirmHoldResult)
		wholeCmd := holdCmd("prog", "siren:h3", 6_000)
		wholeCmd.Effective = clock.Now().Add(-30 * time.Second)
		whole := do(call("CreateHold backdated", (*Ledger).CreateHold, wholeCmd)).(CreateHoldResult)
		confirmedWhole := do(call("ConfirmHold whole", (*Ledger).ConfirmHold, ConfirmHold{RequestID: newRequestID(), Caller: testCaller,
			HoldID: whole.Hold.ID})).(ConfirmHoldResult)
		cancelled := do(call("CreateHold to cancel", (*Ledger).CreateHold, holdCmd("axis", "siren:h2", 5_000))).(CreateHoldResult)
		do(call("CancelHold", (*Ledger).CancelHold, CancelHold{RequestID: newRequestID(), Caller: testCaller,
			HoldID: cancelled.Hold.ID, Reason: "withdrawn"}))
		// A cost given without EligibleCostGiven (the Go API allows it) is answered so, but its
		// row gives it back as given: that result is kept deflated, not by reference.
		notGiven := holdCmd("axis", "siren:h5", 1_000)
		notGiven.Policy = Policy{EligibleCost: 50_000}
		do(call("CreateHold with a cost not marked given", (*Ledger).CreateHold, notGiven))
		expiring := holdCmd("axis", "siren:h4", 4_000)
		expiring.ExpireTime = clock.Now().Add(10 * time.Minute)
		do(call("CreateHold to expire", (*Ledger).CreateHold, expiring))
		do(call("ConfirmHold refused: exceeds", (*Ledger).ConfirmHold, ConfirmHold{RequestID: newRequestID(), Caller: testCaller,
			HoldID: held.Hold.ID, Amount: 1}))
		clock.Advance(time.Hour)
		if n, err := l.SweepExpiredHolds(ctx); err != nil || n != 1 {
			t.Fatalf("SweepExpiredHolds: %d, %v; want the one hold expired", n, err)
		}
		if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: confirmed.Commitment.ID,
			Amount: 1_000, Reason: "lower cost"}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: confirmed.Commitment.ID, Amount: 2_000}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.CloseCommitment(ctx, CloseCommitment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: confirmedWhole.Commitment.ID, Reason: "abandoned"}); err != nil {
			t.Fatal(err)
		}
		do(call("CreatePayment", (*Ledger).CreatePayment, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: paid.Commitment.ID, Amount: 5_000}))
		do(call("CloseCommitment", (*Ledger).CloseCommitment, CloseCommitment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: paid.Commitment.ID, Reason: "done"}))
		// Payments (migration 30: a CreatePayment's result by reference) of the first award, which
		// was released before: one backdated, one after it; the award then paid again and released
		// again below, and a refused payment.
		do(call("CreatePayment backdated, of a released award", (*Ledger).CreatePayment, CreatePayment{RequestID: newRequestID(),
			Caller: testCaller, CommitmentID: plain.Commitment.ID, Amount: 2_500, Effective: clock.Now().Add(-90 * time.Second)}))
		do(call("CreatePayment again", (*Ledger).CreatePayment, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: plain.Commitment.ID, Amount: 1_500}))
		do(call("CreatePayment refused: exceeds", (*Ledger).CreatePayment, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: plain.Commitment.ID, Amount: 9_000}))
		// More changes to what the first answers showed: the first award paid and released again,
		// the envelopes awarded from.
		mustCommit(t, l, "axis", "siren:later", 7_000)
		if _, err := l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
			CommitmentID: plain.Commitment.ID, Amount: 500}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: plain.Commitment.ID,
			Amount: 2_000, Reason: "later"}); err != nil {
			t.Fatal(err)
		}

		// New rows are compact: a Commit's or a bulk call's row holds references, every other
		// row its outcome deflated, no row JSON text or a 67-character fingerprint.
		rs, err := l.db.Reader().Query(ctx, "SELECT packed, outcome, fingerprint FROM requests")
		if err != nil {
			t.Fatal(err)
		}
		var byReference, deflated, texts, rows int
		for rs.Next() {
			var (
				record      []byte
				outcome, fp string
			)
			if err := rs.Scan(&record, &outcome, &fp); err != nil {
				t.Fatal(err)
			}
			rows++
			switch {
			case core.IsPackedCommit(record), core.IsPackedBulk(record), core.IsPackedCreateHold(record), core.IsPackedConfirmHold(record),
				core.IsPackedPayment(record):
				byReference++
			case core.IsDeflated(record):
				deflated++
			}
			if outcome != "" || fp != "" {
				texts++
			}
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		rs.Close()
		if byReference != 19 || deflated != rows-19 || texts != 0 {
			t.Errorf("of %d rows, %d by reference, %d deflated, %d with text; want the 6 accepted Commits, 2 bulk calls, "+
				"4 CreateHolds, 2 ConfirmHolds and 5 CreatePayments by reference, the others deflated, none with text",
				rows, byReference, deflated, texts)
		}

		replayAll := func(what string, l *Ledger) {
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
			requireVerifyOK(t, l)
		}
		replayAll("same process", l)
		l.Close()
		reopened, err := Open(ctx, db.dsn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		replayAll("after reopening", reopened)
		reopened.Close()

		other := newPostgresDB(t)
		if db.engine == "postgres" {
			other = newSQLiteDB(t)
		}
		if _, err := Copy(ctx, db.dsn, other.dsn, CopyOptions{}); err != nil {
			t.Fatalf("Copy: %v", err)
		}
		copied, err := Open(ctx, other.dsn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer copied.Close()
		replayAll("after a copy to "+other.engine, copied)
	})
}

// insertOldRequestRow writes a request-log row as the code before migration 18 wrote it: the
// fingerprint's text and the outcome's JSON.
func insertOldRequestRow(t *testing.T, l *Ledger, key, fingerprint string, outcome core.Outcome) {
	t.Helper()
	raw, err := outcome.Encode()
	if err != nil {
		t.Fatal(err)
	}
	op := "result"
	if outcome.Refusal != nil {
		op = string(outcome.Refusal.Reason)
	}
	insertRequestRow(t, l, key, op, fingerprint, string(raw), nil, nil)
}

// insertRequestRow writes a request-log row as given (digest and packed nil: NULL).
func insertRequestRow(t *testing.T, l *Ledger, key, op, fingerprint, outcome string, digest, packed any) {
	t.Helper()
	err := l.db.ReadWrite(t.Context(), func(q store.Querier) error {
		return q.Write(t.Context(), "INSERT INTO requests (request_id, operation, fingerprint, outcome, created_at, digest, packed) "+
			"VALUES ($1, $2, $3, $4, $5, $6, $7)", []any{key, op, fingerprint, outcome, stamp().At.UnixMicro(), digest, packed}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRequestRowsBeforeMigration18Replay protects invariant 5 across migration 18: rows written
// in the former format (the fingerprint as text, the whole outcome as JSON; a bulk call as a row
// for the call and one per item) keep replaying their outcome byte for byte, refuse another
// payload under their id, and post nothing.
func TestRequestRowsBeforeMigration18Replay(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		// Answers of requests decided now, recorded again under other request ids in the old
		// format (a Commit's fingerprint does not include its request id).
		cmd := commitCmd("fund", "siren:1", 100)
		first, err := l.Commit(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		old := cmd
		old.RequestID = newRequestID()
		outcome, err := core.Settle(&first, nil)
		if err != nil {
			t.Fatal(err)
		}
		insertOldRequestRow(t, l, core.RequestKey(old.Caller, old.RequestID), old.Fingerprint().Current, outcome)

		refused := commitCmd("fund", "siren:2", 10_000_000)
		_, refusal := l.Commit(ctx, refused)
		var e *Error
		if !errors.As(refusal, &e) {
			t.Fatalf("the refused award: %v", refusal)
		}
		oldRefused := refused
		oldRefused.RequestID = newRequestID()
		insertOldRequestRow(t, l, core.RequestKey(oldRefused.Caller, oldRefused.RequestID), oldRefused.Fingerprint().Current,
			core.Outcome{Refusal: e})

		bulk := BulkCommit{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "fund",
			Items: []BulkItem{{Beneficiary: "siren:3", Project: "p3", Amount: 10}, {Beneficiary: "siren:4", Project: "p4", Amount: 90_000_000},
				{Beneficiary: "siren:5", Project: "p5", Amount: 20}}}
		bulkFirst, err := l.BulkCommit(ctx, bulk)
		if err != nil {
			t.Fatal(err)
		}
		oldBulk := bulk
		oldBulk.RequestID = newRequestID()
		u := oldBulk.Unit()
		insertOldRequestRow(t, l, core.RequestKey(oldBulk.Caller, oldBulk.RequestID), u.CallFingerprint.Current,
			core.Outcome{Result: json.RawMessage(fmt.Sprintf(`{"items":%d}`, len(u.Ops)))})
		for i, op := range u.Ops {
			o := core.Outcome{Refusal: bulkFirst.Items[i].Refusal}
			if c := bulkFirst.Items[i].Commitment; c != nil {
				raw, err := json.Marshal(CommitResult{Commitment: *c, Envelope: bulkFirst.Envelope, EntryID: newID()})
				if err != nil {
					t.Fatal(err)
				}
				o = core.Outcome{Result: raw}
			}
			insertOldRequestRow(t, l, op.Key(), op.Fingerprint.Current, o)
		}

		// Changes since: the first award released.
		if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: first.Commitment.ID,
			Amount: 50, Reason: "later"}); err != nil {
			t.Fatal(err)
		}
		entries := entryCount(t, l)
		res, err := l.Commit(ctx, old)
		if got, want := answerBytes(t, res, err), answerBytes(t, first, nil); got != want {
			t.Errorf("old Commit row:\n got %s\nwant %s", got, want)
		}
		res, err = l.Commit(ctx, oldRefused)
		if got, want := answerBytes(t, res, err), answerBytes(t, nil, refusal); got != want {
			t.Errorf("old refusal row:\n got %s\nwant %s", got, want)
		}
		bulkRes, err := l.BulkCommit(ctx, oldBulk)
		if got, want := answerBytes(t, bulkRes, err), answerBytes(t, bulkFirst, nil); got != want {
			t.Errorf("old bulk rows:\n got %s\nwant %s", got, want)
		}
		changed := old
		changed.Amount++
		_, err = l.Commit(ctx, changed)
		requireError(t, err, ErrRequestIDReused)
		changedBulk := oldBulk
		changedBulk.Items = changedBulk.Items[:2]
		_, err = l.BulkCommit(ctx, changedBulk)
		requireError(t, err, ErrRequestIDReused)
		if got := entryCount(t, l); got != entries {
			t.Errorf("replays of old rows posted %d entries", got-entries)
		}
		requireVerifyOK(t, l)
	})
}

// TestCommitRecordsWithTheirEntryReplay protects invariant 5 across migration 28: a Commit's
// packed record of now holds no journal entry id (the journal's COMMITTED entry gives it back),
// a record written before it, which holds one, still replays byte for byte, and such a record
// naming another entry is refused as INTERNAL, never answered with it.
func TestCommitRecordsWithTheirEntryReplay(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		cmd := commitCmd("fund", "siren:1", 100)
		first, err := l.Commit(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		mustCommit(t, l, "fund", "siren:2", 200) // another COMMITTED entry in the journal
		var record []byte
		key := core.RequestKey(cmd.Caller, cmd.RequestID)
		if err := l.db.Reader().QueryRow(ctx, "SELECT packed FROM requests WHERE request_id = $1", key).Scan(&record); err != nil {
			t.Fatal(err)
		}
		if id, entry, err := core.PackedCommitRefs(record); err != nil || id != first.Commitment.ID || entry != "" {
			t.Fatalf("the record of a Commit made now names commitment %q and entry %q (%v), want its commitment and no entry",
				id, entry, err)
		}
		entries := entryCount(t, l)
		for name, c := range map[string]Commit{"now": cmd, "before migration 28": commitRecordedWithEntry(t, l, cmd, first.EntryID)} {
			res, err := l.Commit(ctx, c)
			if got, want := answerBytes(t, res, err), answerBytes(t, first, nil); got != want {
				t.Errorf("a record of %s:\n got %s\nwant %s", name, got, want)
			}
		}
		_, err = l.Commit(ctx, commitRecordedWithEntry(t, l, cmd, newID()))
		requireError(t, err, ErrInternal)
		if got := entryCount(t, l); got != entries {
			t.Errorf("the replays posted %d entries", got-entries)
		}
	})
}

// commitRecordedWithEntry records cmd's answer (cmd was decided) again under a new request id, as
// a record written before migration 28: the packed record with field 3, entryID as 16 bytes. It
// returns cmd under that request id. With another entry than cmd's, its answer cannot be given
// back: a retry of it fails INTERNAL.
func commitRecordedWithEntry(t *testing.T, l *Ledger, cmd Commit, entryID string) Commit {
	t.Helper()
	var (
		digest any
		fp     string
		record []byte
	)
	key := core.RequestKey(cmd.Caller, cmd.RequestID)
	if err := l.db.Reader().QueryRow(t.Context(), "SELECT digest, fingerprint, packed FROM requests WHERE request_id = $1", key).
		Scan(&digest, &fp, &record); err != nil {
		t.Fatal(err)
	}
	u, ok := core.ParseUUID(entryID)
	if !ok {
		t.Fatalf("entry id %q", entryID)
	}
	again := cmd
	again.RequestID = newRequestID()
	insertRequestRow(t, l, core.RequestKey(again.Caller, again.RequestID), "result", fp, "", digest,
		protowire.AppendBytes(protowire.AppendTag(slices.Clone(record), 3, protowire.BytesType), u[:]))
	return again
}

// TestAnUnanswerableRetryFailsAlone protects the availability of the requests batched with a
// retry whose recorded answer cannot be given back (a row it is rebuilt from changed): that
// retry alone fails INTERNAL, deciding nothing, be it a Commit's or a bulk call's; a fresh award
// and another retry in the same batch are decided and answered as usual.
func TestAnUnanswerableRetryFailsAlone(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		cmd := commitCmd("fund", "siren:1", 100)
		first, err := l.Commit(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		broken := commitRecordedWithEntry(t, l, cmd, newID())
		// A bulk call whose answer cannot be given back either: a commitment it made was changed.
		bulk := BulkCommit{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "fund",
			Items: []BulkItem{{Beneficiary: "siren:3", Project: "p3", Amount: 10}, {Beneficiary: "siren:4", Project: "p4", Amount: 20}}}
		bulkFirst, err := l.BulkCommit(ctx, bulk)
		if err != nil {
			t.Fatal(err)
		}
		if err := rawExec(ctx, l, "UPDATE commitments SET beneficiary = 'someone else' WHERE id = $1", bulkFirst.Items[1].Commitment.ID); err != nil {
			t.Fatal(err)
		}
		fresh := commitCmd("fund", "siren:2", 200)
		ops := map[string]*core.Op{}
		bulkUnit := bulk.Unit()
		units := []*core.Unit{bulkUnit}
		for name, c := range map[string]Commit{"broken": broken, "fresh": fresh, "retry": cmd} {
			ops[name] = &core.Op{Commit: &c, Fingerprint: c.Fingerprint()}
			units = append(units, &core.Unit{EnvelopeID: c.EnvelopeID, Ops: []*core.Op{ops[name]}})
		}
		entries := entryCount(t, l)
		if err := l.applyBatch(ctx, units); err != nil {
			t.Fatalf("the batch failed whole: %v", err)
		}
		requireError(t, ops["broken"].Err, ErrInternal)
		requireError(t, bulkUnit.Err, ErrInternal)
		var retried, made CommitResult
		if err := ops["retry"].Decode(&retried); err != nil || answerBytes(t, retried, nil) != answerBytes(t, first, nil) {
			t.Errorf("the retry batched with it: %+v, %v", retried, err)
		}
		if err := ops["fresh"].Decode(&made); err != nil || made.Commitment.Amount != 200 {
			t.Errorf("the award batched with it: %+v, %v", made, err)
		}
		if got := entryCount(t, l); got != entries+1 {
			t.Errorf("the batch posted %d entries, want the fresh award's only", got-entries)
		}
	})
}

// insertDeflatedRequestRow writes a request-log row as the code between migrations 18 and 29
// wrote an accepted hold's: the fingerprint's digest, the outcome's JSON deflated.
func insertDeflatedRequestRow(t *testing.T, l *Ledger, key string, fingerprint core.Fingerprint, result any) {
	t.Helper()
	raw, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	record := core.DeflateOutcome([]byte(`{"result":` + string(raw) + `}`))
	digest := core.FingerprintDigest(fingerprint.Current)
	if record == nil || digest == nil {
		t.Fatalf("record %x, digest %x", record, digest)
	}
	insertRequestRow(t, l, key, "result", "", "", digest, record)
}

// TestHoldRowsBeforeMigration29Replay protects invariant 5 across migration 29: a CreateHold's and
// a ConfirmHold's results recorded before it (their JSON deflated) keep replaying byte for byte
// after the hold ended and its commitment was released, refuse another payload under their id,
// and post nothing; the same requests recorded now are kept by reference.
func TestHoldRowsBeforeMigration29Replay(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		create := holdCmd("fund", "siren:1", 10_000)
		created, err := l.CreateHold(ctx, create)
		if err != nil {
			t.Fatal(err)
		}
		confirm := ConfirmHold{RequestID: newRequestID(), Caller: testCaller, HoldID: created.Hold.ID, Amount: 6_000}
		confirmed, err := l.ConfirmHold(ctx, confirm)
		if err != nil {
			t.Fatal(err)
		}
		// The same answers recorded under other request ids as before migration 29 (neither
		// fingerprint includes the request id).
		oldCreate, oldConfirm := create, confirm
		oldCreate.RequestID, oldConfirm.RequestID = newRequestID(), newRequestID()
		insertDeflatedRequestRow(t, l, core.RequestKey(oldCreate.Caller, oldCreate.RequestID), oldCreate.Fingerprint(), created)
		insertDeflatedRequestRow(t, l, core.RequestKey(oldConfirm.Caller, oldConfirm.RequestID), oldConfirm.Fingerprint(), confirmed)
		// The requests' own rows are kept by reference.
		for _, key := range []string{core.RequestKey(create.Caller, create.RequestID), core.RequestKey(confirm.Caller, confirm.RequestID)} {
			var record []byte
			if err := l.db.Reader().QueryRow(ctx, "SELECT packed FROM requests WHERE request_id = $1", key).Scan(&record); err != nil {
				t.Fatal(err)
			}
			if !core.IsPackedCreateHold(record) && !core.IsPackedConfirmHold(record) {
				t.Errorf("request %q recorded in format %d, not by reference", key, record[0])
			}
		}

		if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: confirmed.Commitment.ID,
			Amount: 500, Reason: "later"}); err != nil {
			t.Fatal(err)
		}
		entries := entryCount(t, l)
		for _, c := range []struct {
			name string
			got  func() (any, error)
			want any
		}{
			{"old CreateHold row", func() (any, error) { return l.CreateHold(ctx, oldCreate) }, created},
			{"old ConfirmHold row", func() (any, error) { return l.ConfirmHold(ctx, oldConfirm) }, confirmed},
			{"new CreateHold row", func() (any, error) { return l.CreateHold(ctx, create) }, created},
			{"new ConfirmHold row", func() (any, error) { return l.ConfirmHold(ctx, confirm) }, confirmed},
		} {
			res, err := c.got()
			if got, want := answerBytes(t, res, err), answerBytes(t, c.want, nil); got != want {
				t.Errorf("%s:\n got %s\nwant %s", c.name, got, want)
			}
		}
		changed := oldCreate
		changed.Amount++
		_, err = l.CreateHold(ctx, changed)
		requireError(t, err, ErrRequestIDReused)
		changedConfirm := oldConfirm
		changedConfirm.Amount++
		_, err = l.ConfirmHold(ctx, changedConfirm)
		requireError(t, err, ErrRequestIDReused)
		if got := entryCount(t, l); got != entries {
			t.Errorf("replays posted %d entries", got-entries)
		}
		requireVerifyOK(t, l)
	})
}
