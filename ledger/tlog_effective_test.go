package ledger

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// backdate writes, on l, an envelope and awards with effective times before their recording (and
// one award without), so that the journal holds backdated entries.
func backdate(t *testing.T, l *Ledger, envelope string) {
	t.Helper()
	now := time.Now()
	if _, err := l.CreateEnvelope(t.Context(), CreateEnvelope{RequestID: newRequestID(), Caller: testCaller,
		EnvelopeID: envelope, DisplayName: envelope, Allocation: 1_000_000, Effective: now.Add(-72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i, effective := range []time.Time{now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), {}} {
		cmd := commitCmd(envelope, fmt.Sprintf("siren:%s-%d", envelope, i), 1_000)
		cmd.Effective = effective
		if _, err := l.Commit(t.Context(), cmd); err != nil {
			t.Fatal(err)
		}
	}
}

// requireLeavesOfTheAPI checks, for every entry the API lists, that the log's leaf at its position
// (the leaf of an inclusion proof) is the canonical encoding of the entry as listed — effective
// time included (docs/transparency.md) — except the entries up to legacy, logged before
// migration 25, whose leaf holds created_at in its place. It returns how many listed entries are
// backdated.
func requireLeavesOfTheAPI(t *testing.T, l *Ledger, legacy int64) int {
	t.Helper()
	backdated := 0
	entries := allEntries(t, l, EntryFilter{})
	last := entries[len(entries)-1].Sequence
	for _, e := range entries {
		if !e.EffectiveAt.IsZero() && !e.EffectiveAt.Equal(e.CreatedAt) {
			backdated++
		}
		p, err := l.GetInclusionProof(t.Context(), e.Sequence, last)
		if err != nil {
			t.Fatal(err)
		}
		want := e
		if e.Sequence <= legacy {
			want.EffectiveAt = time.Time{}
		}
		if got, ok := translog.DecodeLeaf(p.Leaf); !ok || string(p.Leaf) != string(translog.EncodeLeaf(want)) {
			t.Errorf("entry %d: the log's leaf holds effective time %v; the API lists %v (created %v)", e.Sequence, got.EffectiveAt, e.EffectiveAt, e.CreatedAt)
		}
	}
	return backdated
}

// TestLogLeavesHoldEffectiveTimes protects invariant 11 as an outsider checks it: the leaf of a
// backdated entry holds the entry's effective time, as the API lists it and docs/transparency.md
// documents the leaf. (The log built its leaves from entries read without it, so a leaf held
// created_at twice and an outsider's leaf, encoded from the listed entry, did not verify.)
func TestLogLeavesHoldEffectiveTimes(t *testing.T) {
	t.Parallel()
	skey, vkey, err := translog.GenerateKey("ledger.test/effective")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		l := openWithLog(t, db, skey)
		backdate(t, l, "fund")
		if n := requireLeavesOfTheAPI(t, l, 0); n < 3 {
			t.Fatalf("%d backdated entries listed, want the envelope's and two awards'", n)
		}
		if rep, err := l.VerifyLog(t.Context(), vkey); err != nil || !rep.OK() || rep.LegacyEffectiveUntil != 0 {
			t.Fatalf("VerifyLog = %+v, %v", rep, err)
		}
	})
}

// TestLogEffectiveTimesMigration protects migration 25 on a ledger whose tree was written by a
// release that left effective times out of the leaves: the leaves already signed stay as they
// are, VerifyLog checks them as they were written (and finds every entry in place), the bound is
// the last backdated entry of that tree, and every entry logged after the migration holds its
// effective time.
func TestLogEffectiveTimesMigration(t *testing.T) {
	t.Parallel()
	skey, vkey, err := translog.GenerateKey("ledger.test/effective-migration")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		if db.engine == "cockroachdb" {
			t.Skip("the return to migration 11's shape is written for SQLite and PostgreSQL")
		}
		ctx := t.Context()
		// No signer: no checkpoint is signed over the tree that is replaced below.
		l, err := Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout, HoldSweepInterval: -1, Log: LogConfig{Enabled: true}})
		if err != nil {
			t.Fatal(err)
		}
		backdate(t, l, "fund")
		mustCreateEnvelope(t, l, "later", "", 1_000)
		allEntries(t, l, EntryFilter{}) // every entry positioned (PostgreSQL's sequencer runs after commits) and logged
		// The tree as releases before migration 25 wrote it, in migration 11's table: every leaf
		// without its effective time.
		var (
			legacy int64 // the last backdated entry
			values []string
		)
		err = l.db.ReadOnly(ctx, func(q store.Querier) error {
			entries, err := store.EntriesBySequence(ctx, q, 0, 1000)
			if err != nil {
				return err
			}
			r := translog.Factory.NewEmptyRange(0)
			for _, e := range entries {
				if !e.EffectiveAt.IsZero() && !e.EffectiveAt.Equal(e.CreatedAt) {
					legacy = e.Sequence
				}
				e.EffectiveAt = time.Time{}
				if err := r.Append(translog.LeafHash(e), func(id translog.NodeID, hash []byte) {
					values = append(values, fmt.Sprintf("(%d, %d, '%s')", id.Level, id.Index, hex.EncodeToString(hash)))
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || legacy < 3 {
			t.Fatalf("the last backdated entry is at %d (%v), want the envelope's and two awards' before the last envelope", legacy, err)
		}
		dropBoundTrigger := "DROP TRIGGER tlog_head_legacy_fixed" // migration 26's
		if db.engine != "sqlite" {
			dropBoundTrigger += " ON tlog_head"
		}
		for _, stmt := range []string{
			tlogNodesTable,
			"INSERT INTO tlog_nodes (level, idx, hash) VALUES " + strings.Join(values, ", "),
			"DROP TABLE tlog_hashes",
			dropBoundTrigger,
			"ALTER TABLE tlog_head DROP COLUMN legacy_effective_until",
			"DELETE FROM goose_db_version WHERE version_id IN (23, 24, 25, 26)",
		} {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		l.Close()

		signer, err := translog.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		l, err = Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout, HoldSweepInterval: -1,
			Log: LogConfig{Signer: signer, CheckpointEvery: 1000}}) // runs migrations 23 to 26
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		rep, err := l.VerifyLog(ctx, vkey)
		if err != nil || !rep.OK() || rep.LegacyEffectiveUntil != legacy {
			t.Fatalf("after migration 25: VerifyLog = %+v, %v; want no discrepancy and the bound %d", rep, err, legacy)
		}
		if bound, err := l.LogLegacyBound(ctx); err != nil || bound != legacy {
			t.Fatalf("LogLegacyBound = %d, %v; want %d", bound, err, legacy)
		}
		backdate(t, l, "after")
		requireLeavesOfTheAPI(t, l, legacy)
		if err := l.checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if rep, err := l.VerifyLog(ctx, vkey); err != nil || !rep.OK() || rep.Checkpoints == 0 || rep.LegacyEffectiveUntil != legacy {
			t.Fatalf("after new backdated awards: VerifyLog = %+v, %v", rep, err)
		}
		// A copy to the other engine carries the bound, written on the target's empty tree
		// (migration 26 refuses to move it once the tree has a leaf), and the copy verifies by it.
		dst := newSQLiteDB(t)
		if db.engine == "sqlite" {
			dst = newPostgresDB(t)
		}
		moved, err := Copy(ctx, db.dsn, dst.dsn, CopyOptions{VerifierKey: vkey})
		if err != nil || moved.TargetLog.LegacyEffectiveUntil != legacy || len(moved.TargetDiscrepancies()) != 0 {
			t.Fatalf("copy to %s: %v; the target's bound %d (want %d), discrepancies %q", dst.engine, err,
				moved.TargetLog.LegacyEffectiveUntil, legacy, moved.TargetDiscrepancies())
		}
	})
}

// TestLogBuiltWhenKeyGivenLater protects docs/transparency.md's "started with a key later, it
// builds the tree of the whole journal first": the checkpoint signed then covers every entry
// written without the log, its proofs are served, and VerifyLog is clean. (On SQLite the tree
// waited for the next write: the checkpoint signed at start was of an empty tree, and a proof of
// an existing entry was refused.)
func TestLogBuiltWhenKeyGivenLater(t *testing.T) {
	t.Parallel()
	skey, vkey, err := translog.GenerateKey("ledger.test/later")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l, err := Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout, HoldSweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		backdate(t, l, "fund")
		entries := allEntries(t, l, EntryFilter{})
		l.Close()

		l = openWithLog(t, db, skey)
		if err := l.checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		note, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := translog.OpenCheckpoint([]byte(note), vkey)
		if err != nil || cp.Size != uint64(len(entries)) {
			t.Fatalf("the checkpoint after the key was given covers %d entries (%v), want the journal's %d", cp.Size, err, len(entries))
		}
		if _, err := l.GetInclusionProof(ctx, 1, 0); err != nil {
			t.Errorf("the first entry's inclusion proof: %v", err)
		}
		requireLeavesOfTheAPI(t, l, 0)
		if rep, err := l.VerifyLog(ctx, vkey); err != nil || !rep.OK() || rep.TreeSize != int64(len(entries)) {
			t.Fatalf("VerifyLog = %+v, %v", rep, err)
		}
	})
}
