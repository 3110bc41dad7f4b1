package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// copySource is a ledger filled with every kind of operation, and what a test checks on a copy.
type copySource struct {
	dsn        string
	skey, vkey string
	now        time.Time
	// success and refusal are requests the source answered; a retry must get the same answer.
	success       Commit
	successResult CommitResult
	refusal       Commit
	refusalErr    error
	checkpoint    string // a checkpoint the source signed
	// legacy is a request recorded under its bare request id, as before request ids were scoped
	// per caller (its row written as the code of then wrote it); legacyResult its answer.
	legacy       Commit
	legacyResult CommitResult
}

// fillForCopy fills a new ledger at db with every kind of operation through the ledger's API:
// envelopes (a child whose id sorts before its parent's), a move, rules, holds confirmed,
// cancelled and expired, commitments, payments, a release, a closing, refusals recorded under
// their request ids, backdated entries, and the transparency log with a signed checkpoint.
func fillForCopy(t *testing.T, db testDB) copySource {
	t.Helper()
	ctx := t.Context()
	skey, vkey, err := translog.GenerateKey("ledger.test/copy")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	l, err := Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout, Clock: clock.Now, HoldSweepInterval: -1,
		Log: LogConfig{Signer: signer, CheckpointEvery: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	src := copySource{dsn: db.dsn, skey: skey, vkey: vkey}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	start := clock.Now().Add(-60 * 24 * time.Hour)
	for _, e := range []struct {
		id, parent string
		alloc      int64
	}{{"z-programme", "", 10_000_000}, {"a-axis-1", "z-programme", 4_000_000}, {"m-axis-2", "z-programme", 3_000_000}, {"b-other", "", 500_000}} {
		_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: e.id,
			ParentID: e.parent, DisplayName: "envelope " + e.id, Allocation: e.alloc, Effective: start})
		must("CreateEnvelope "+e.id, err)
	}
	_, err = l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller, SourceID: "m-axis-2",
		DestinationID: "a-axis-1", Amount: 500_000, Reason: "rebalance", Effective: start})
	must("MoveAllocation", err)
	share := int64(8000)
	_, err = l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "a-axis-1", Call: "appel-1",
		EffectiveTime: start, Rules: Rules{MaxFundingShareBPS: &share}})
	must("SetRules", err)
	var commitments []CommitResult
	for i := range 12 {
		cmd := commitCmd("a-axis-1", fmt.Sprintf("siren:%d", i), int64(10_000+i))
		cmd.Policy = Policy{EligibleCost: 100_000}
		if i < 4 { // backdated, in date order (what reduces available is not backdated before the latest)
			cmd.Effective = clock.Now().Add(-time.Duration(20-i) * 24 * time.Hour)
		}
		res, err := l.Commit(ctx, cmd)
		must("Commit", err)
		commitments = append(commitments, res)
		if i == 0 {
			src.success, src.successResult = cmd, res
		}
		clock.Advance(time.Minute)
	}
	for i := range 8 {
		_, err := l.Commit(ctx, commitCmd("m-axis-2", fmt.Sprintf("siren:m%d", i), int64(20_000+i)))
		must("Commit", err)
	}
	// A request recorded under its bare request id, before the scoping: its award, and its row.
	src.legacy = commitCmd("m-axis-2", "siren:legacy", 3_000)
	first := src.legacy
	first.RequestID = newRequestID()
	src.legacyResult, err = l.Commit(ctx, first)
	must("Commit", err)
	outcome, err := core.Settle(&src.legacyResult, nil)
	must("Settle", err)
	must("the legacy row", l.db.ReadWrite(ctx, func(q store.Querier) error {
		return store.InsertRequests(ctx, q, clock.Now(), []core.RequestRow{{Key: src.legacy.RequestID,
			Fingerprint: src.legacy.Fingerprint().Legacy, Outcome: outcome}})
	}))
	// A refusal, recorded under its request id.
	src.refusal = commitCmd("b-other", "siren:big", 600_000)
	_, src.refusalErr = l.Commit(ctx, src.refusal)
	if !errors.Is(src.refusalErr, ErrInsufficientFunds) {
		t.Fatalf("the refused award: %v", src.refusalErr)
	}
	// A refusal by the rules, too.
	over := commitCmd("a-axis-1", "siren:share", 90_000)
	over.Policy = Policy{EligibleCost: 100_000}
	if _, err := l.Commit(ctx, over); err == nil {
		t.Fatal("an award over the funding share was accepted")
	}
	_, err = l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: commitments[1].Commitment.ID, Amount: 1_000, Reason: "lower cost"})
	must("Release", err)
	_, err = l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: commitments[2].Commitment.ID, Amount: 5_000})
	must("CreatePayment", err)
	_, err = l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: commitments[3].Commitment.ID, Amount: 2_000})
	must("CreatePayment", err)
	_, err = l.CloseCommitment(ctx, CloseCommitment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: commitments[3].Commitment.ID, Reason: "done"})
	must("CloseCommitment", err)
	confirmed := mustHold(t, l, holdCmd("m-axis-2", "siren:h1", 30_000))
	_, err = l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: testCaller, HoldID: confirmed.Hold.ID, Amount: 25_000})
	must("ConfirmHold", err)
	cancelled := mustHold(t, l, holdCmd("m-axis-2", "siren:h2", 40_000))
	_, err = l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: testCaller, HoldID: cancelled.Hold.ID, Reason: "withdrawn"})
	must("CancelHold", err)
	expiring := holdCmd("m-axis-2", "siren:h3", 50_000)
	expiring.ExpireTime = clock.Now().Add(time.Hour)
	mustHold(t, l, expiring)
	mustHold(t, l, holdCmd("m-axis-2", "siren:h4", 1_000)) // still held
	clock.Advance(2 * time.Hour)
	if n, err := l.SweepExpiredHolds(ctx); err != nil || n != 1 {
		t.Fatalf("SweepExpiredHolds = %d, %v; want 1 hold expired", n, err)
	}
	must("checkpoint", l.checkpoint(ctx))
	src.checkpoint, err = l.Checkpoint(ctx)
	must("Checkpoint", err)
	// Entries after the checkpoint, so that the log is larger than the checkpoint.
	for i := range 3 {
		_, err := l.Commit(ctx, commitCmd("b-other", fmt.Sprintf("siren:o%d", i), 1_000))
		must("Commit", err)
	}
	src.now = clock.Now()
	return src
}

// sortedTables returns every table of the ledger at dsn, its rows rendered and sorted (engines
// order text differently).
func sortedTables(t *testing.T, dsn string) map[string][]string {
	t.Helper()
	tables, err := store.Tables(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, name := range tables {
		rows, err := store.TableRows(t.Context(), dsn, name)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(rows)
		out[name] = rows
	}
	return out
}

func requireSameTables(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: tables %d, want %d", what, len(got), len(want))
	}
	for name, rows := range want {
		if !slices.Equal(got[name], rows) {
			t.Errorf("%s: table %s differs: %d rows, want %d\n got  %.600q\n want %.600q", what, name, len(got[name]), len(rows), got[name], rows)
		}
	}
}

// checkCopy checks the copy of src at dst: every table holds the source's rows, Verify is clean,
// the funding report is equal at several dates, old request ids replay their answers, and the
// source's checkpoint verifies against a newer checkpoint of the target by a consistency proof.
func checkCopy(t *testing.T, src copySource, dst testDB) {
	t.Helper()
	ctx := t.Context()
	requireSameTables(t, "target", sortedTables(t, dst.dsn), sortedTables(t, src.dsn))
	signer, err := translog.NewSigner(src.skey)
	if err != nil {
		t.Fatal(err)
	}
	openAt := func(dsn string) *Ledger {
		l, err := Open(ctx, dsn, Config{TxTimeout: testdb.TxTimeout, HoldSweepInterval: -1, Log: LogConfig{Signer: signer, CheckpointEvery: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return l
	}
	from, to := openAt(src.dsn), openAt(dst.dsn)
	rep, err := to.Verify(ctx)
	if err != nil || len(rep.Discrepancies) > 0 {
		t.Fatalf("Verify on the target = %+v, %v", rep.Discrepancies, err)
	}
	for _, asOf := range []time.Time{src.now.Add(-50 * 24 * time.Hour), src.now.Add(-15 * 24 * time.Hour), src.now.Add(-10 * 24 * time.Hour), src.now.Add(time.Hour)} {
		want, err := from.ReportAt(ctx, "", asOf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := to.ReportAt(ctx, "", asOf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("report as of %s differs:\n got  %+v\n want %+v", asOf, got, want)
		}
	}
	// Invariant 5 across the move: a retry answers as the source did.
	again, err := to.Commit(ctx, src.success)
	if err != nil || !reflect.DeepEqual(again, src.successResult) {
		t.Errorf("retried award on the target = %+v, %v; the source answered %+v", again, err, src.successResult)
	}
	// Rows under a bare request id are still looked up on the target (requests_bare_keys is
	// carried with them).
	if again, err := to.Commit(ctx, src.legacy); err != nil || !reflect.DeepEqual(again, src.legacyResult) {
		t.Errorf("retried legacy award on the target = %+v, %v; the source answered %+v", again, err, src.legacyResult)
	}
	_, err = to.Commit(ctx, src.refusal)
	if err == nil || err.Error() != src.refusalErr.Error() || !errors.Is(err, ErrInsufficientFunds) {
		t.Errorf("retried refusal on the target = %v; the source answered %v", err, src.refusalErr)
	}
	// The source's checkpoint and a newer one of the target: a consistency proof joins them.
	for i := range 4 {
		if _, err := to.Commit(ctx, commitCmd("b-other", fmt.Sprintf("siren:after%d", i), 1_000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkpointExtends(t, to, src.checkpoint, src.vkey); err != nil {
		t.Errorf("the source's checkpoint does not verify against the target's: %v", err)
	}
}

// TestCopySQLiteToPostgres protects issue 20's promise: a ledger moved from SQLite to PostgreSQL
// keeps its whole history (rows, request ids and their answers, reports at every date, the
// transparency log, whose old checkpoints still verify), and the target verifies.
func TestCopySQLiteToPostgres(t *testing.T) {
	t.Parallel()
	src := fillForCopy(t, newSQLiteDB(t))
	dst := newPostgresDB(t)
	rep, err := Copy(t.Context(), src.dsn, dst.dsn, CopyOptions{VerifierKey: src.vkey, BatchRows: 7})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if rep.Copy.Resumed || rep.LastSequence == 0 || rep.LogSize != rep.LastSequence || len(rep.LogRoot) != translog.HashSize {
		t.Fatalf("report: %+v", rep)
	}
	checkCopy(t, src, dst)
}

// TestCopyPostgresToSQLite: the move back, PostgreSQL to SQLite, keeps everything too.
func TestCopyPostgresToSQLite(t *testing.T) {
	t.Parallel()
	src := fillForCopy(t, newPostgresDB(t))
	dst := newSQLiteDB(t)
	if _, err := Copy(t.Context(), src.dsn, dst.dsn, CopyOptions{VerifierKey: src.vkey}); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	checkCopy(t, src, dst)
}

// TestCopyToCockroachDB: SQLite to CockroachDB (skipped without a `cockroach` binary).
func TestCopyToCockroachDB(t *testing.T) {
	t.Parallel()
	dst := newCockroachDB(t)
	src := fillForCopy(t, newSQLiteDB(t))
	if _, err := Copy(t.Context(), src.dsn, dst.dsn, CopyOptions{VerifierKey: src.vkey}); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	checkCopy(t, src, dst)
}

// TestCopyInterruptedResumes protects the restart promise: a copy cancelled half-way leaves a
// target that ledgerd refuses to serve and that a second copy refuses to overwrite with another
// source; the same copy run again finishes it, and it ends identical, table by table, to an
// uninterrupted copy (no row twice, none missing).
func TestCopyInterruptedResumes(t *testing.T) {
	t.Parallel()
	src := fillForCopy(t, newSQLiteDB(t))
	whole := newPostgresDB(t)
	if _, err := Copy(t.Context(), src.dsn, whole.dsn, CopyOptions{BatchRows: 7}); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, rows := range sortedTables(t, src.dsn) {
		total += int64(len(rows))
	}
	target := newPostgresDB(t)
	ctx, cancel := context.WithCancel(t.Context())
	batches := 0
	half := int(total / 7 / 2)
	_, err := Copy(ctx, src.dsn, target.dsn, CopyOptions{BatchRows: 7, AfterBatch: func() {
		if batches++; batches == half {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted copy: %v", err)
	}
	if _, err := Open(t.Context(), target.dsn, Config{TxTimeout: testdb.TxTimeout}); !errors.Is(err, store.ErrUnfinishedCopy) {
		t.Fatalf("Open on a half-copied target = %v, want ErrUnfinishedCopy", err)
	}
	// Another ledger may not be copied into it.
	other := fillForCopy(t, newSQLiteDB(t))
	if _, err := Copy(t.Context(), other.dsn, target.dsn, CopyOptions{}); !errors.Is(err, store.ErrCopyRefused) {
		t.Fatalf("copying another ledger into a half-copied target = %v, want a refusal", err)
	}
	rep, err := Copy(t.Context(), src.dsn, target.dsn, CopyOptions{BatchRows: 7})
	if err != nil {
		t.Fatalf("the resumed copy: %v", err)
	}
	if !rep.Copy.Resumed || rep.Copy.Rows >= total || rep.Copy.Rows == 0 {
		t.Fatalf("the resumed copy wrote %d rows of %d (resumed %v): it should write only the rest", rep.Copy.Rows, total, rep.Copy.Resumed)
	}
	requireSameTables(t, "resumed copy", sortedTables(t, target.dsn), sortedTables(t, whole.dsn))
	checkCopy(t, src, target)
	// A finished copy is a ledger: copying into it again is refused.
	if _, err := Copy(t.Context(), src.dsn, target.dsn, CopyOptions{}); !errors.Is(err, store.ErrCopyRefused) {
		t.Fatalf("copying into a finished copy = %v, want a refusal", err)
	}
}

// TestCopyRefusesANonEmptyTarget: a target holding a ledger of its own is never written to.
func TestCopyRefusesANonEmptyTarget(t *testing.T) {
	t.Parallel()
	src := fillForCopy(t, newSQLiteDB(t))
	dst := newSQLiteDB(t)
	mustCreateEnvelope(t, dst.open(t), "mine", "", 1_000)
	before := sortedTables(t, dst.dsn)
	if _, err := Copy(t.Context(), src.dsn, dst.dsn, CopyOptions{}); !errors.Is(err, store.ErrCopyRefused) {
		t.Fatalf("Copy into a ledger = %v, want a refusal", err)
	}
	requireSameTables(t, "refused target", sortedTables(t, dst.dsn), before)
}

// checkpointExtends signs a new checkpoint of l and returns whether the older signed checkpoint

// opener opens the ledger of src, again and again, as the ledger that wrote it (its log signed by
// the same key; no hold sweeper, so that nothing changes between two reads).
func (src copySource) opener(t *testing.T) func() *Ledger {
	t.Helper()
	signer, err := translog.NewSigner(src.skey)
	if err != nil {
		t.Fatal(err)
	}
	return func() *Ledger {
		t.Helper()
		l, err := Open(t.Context(), src.dsn, Config{TxTimeout: testdb.TxTimeout, HoldSweepInterval: -1,
			Log: LogConfig{Signer: signer, CheckpointEvery: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
}

// old (of vkey) verifies against it by a consistency proof from l: the log only grew.
func checkpointExtends(t *testing.T, l *Ledger, old, vkey string) error {
	t.Helper()
	ctx := t.Context()
	if err := l.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	newer, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := translog.OpenCheckpoint([]byte(old), vkey)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := translog.OpenCheckpoint([]byte(newer), vkey)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Size <= c1.Size {
		t.Fatalf("the newer checkpoint has size %d, the old one %d", c2.Size, c1.Size)
	}
	proof, err := l.GetConsistencyProof(ctx, int64(c1.Size), int64(c2.Size))
	if err != nil {
		t.Fatal(err)
	}
	return translog.VerifyConsistency(c1.Size, c2.Size, proof, c1.Root, c2.Root)
}

// TestForcedCopyKeepsTheSourceDiscrepancies protects docs/operations.md's "with --force, it is
// copied as it is ... (the target will show the same ones)": a source that fails verification,
// copied with Force, must give a target with exactly its discrepancies; one more on the target
// (here a balance changed while the copy ran) fails the copy with ErrTargetUnsound.
func TestForcedCopyKeepsTheSourceDiscrepancies(t *testing.T) {
	t.Parallel()
	src := fillForCopy(t, newSQLiteDB(t))
	l, err := Open(t.Context(), src.dsn, Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := rawExec(t.Context(), l, "UPDATE envelopes SET committed = committed + 7 WHERE id = (SELECT MIN(id) FROM envelopes)"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	honest := newPostgresDB(t)
	rep, err := Copy(t.Context(), src.dsn, honest.dsn, CopyOptions{Force: true, VerifierKey: src.vkey})
	if err != nil || len(rep.SourceDiscrepancies()) == 0 {
		t.Fatalf("a forced copy of an unsound source: %v (source discrepancies %v), want it copied as it is", err, rep.SourceDiscrepancies())
	}
	target := newPostgresDB(t)
	conn, err := pgx.Connect(t.Context(), target.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tampered := false
	_, err = Copy(t.Context(), src.dsn, target.dsn, CopyOptions{Force: true, VerifierKey: src.vkey, BatchRows: 7, AfterBatch: func() {
		if tampered {
			return
		}
		// The target's rows come table by table: once an envelope is there, one balance moves.
		tag, err := conn.Exec(t.Context(), "UPDATE envelopes SET committed = committed + 1 WHERE id = (SELECT MAX(id) FROM envelopes)")
		tampered = err == nil && tag.RowsAffected() == 1
	}})
	if !tampered {
		t.Fatal("the target was never tampered with: this test proves nothing")
	}
	if !errors.Is(err, ErrTargetUnsound) {
		t.Fatalf("a forced copy whose target has a discrepancy the source has not: %v, want ErrTargetUnsound", err)
	}
}
