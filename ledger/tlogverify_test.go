package ledger

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/translog"
)

// TestVerifyLogFindsTampering protects the log's promise against an operator with database
// access: an entry changed, deleted, inserted or reordered in the journal (the append-only
// triggers dropped first) is found by VerifyLog and named by its position, and the signed
// checkpoint no longer matches.
func TestVerifyLogFindsTampering(t *testing.T) {
	t.Parallel()
	skey, vkey, err := translog.GenerateKey("ledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stmts []string
		want  []string // substrings every one of which a discrepancy must hold
	}{
		{"changed", []string{"UPDATE journal_entries SET memo = 'edited' WHERE seq = 3"},
			[]string{"position 3 "}},
		{"deleted", []string{"DELETE FROM journal_entries WHERE seq = 3"},
			[]string{"positions 3 to 3 are missing"}},
		{"inserted", []string{
			"UPDATE journal_entries SET seq = seq + 1000 WHERE seq >= 3",
			"UPDATE journal_entries SET seq = seq - 999 WHERE seq >= 1003",
			"INSERT INTO journal_entries (id, kind, currency, caller, request_id, memo, created_at, seq) " +
				"SELECT '00000000-0000-7000-8000-000000000000', kind, currency, caller, 'forged', memo, created_at, 3 FROM journal_entries WHERE seq = 4"},
			[]string{"position 3 ", "position 4 "}},
		{"reordered", []string{
			"UPDATE journal_entries SET seq = 1000 WHERE seq = 3",
			"UPDATE journal_entries SET seq = 3 WHERE seq = 4",
			"UPDATE journal_entries SET seq = 4 WHERE seq = 1000"},
			[]string{"position 3 ", "position 4 "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachDatabase(t, func(t *testing.T, db testDB) {
				ctx := t.Context()
				l := openWithLog(t, db, skey)
				mustCreateEnvelope(t, l, "fund", "", 1_000_000)
				for i := range 6 {
					if _, err := l.Commit(ctx, commitCmd("fund", fmt.Sprintf("siren:%d", i), 1_000)); err != nil {
						t.Fatal(err)
					}
				}
				readJournal(t, l, 0)
				if err := l.checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
				rep, err := l.VerifyLog(ctx, vkey)
				if err != nil || !rep.OK() || rep.Entries != 7 || rep.Checkpoints == 0 {
					t.Fatalf("VerifyLog before tampering: %+v, %v", rep, err)
				}
				drops := []string{"DROP TRIGGER journal_entries_append_only", "DROP TRIGGER journal_entries_no_delete"}
				if l.Engine() != "sqlite" {
					drops = []string{"DROP TRIGGER journal_entries_append_only ON journal_entries"}
				}
				for _, stmt := range append(drops, tc.stmts...) {
					if err := rawExec(ctx, l, stmt); err != nil {
						t.Fatalf("tampering: %s: %v", stmt, err)
					}
				}
				rep, err = l.VerifyLog(ctx, vkey)
				if err != nil {
					t.Fatal(err)
				}
				all := strings.Join(rep.Discrepancies, "\n")
				for _, w := range append(tc.want, "checkpoint of tree size 7") {
					if !strings.Contains(all, w) {
						t.Errorf("VerifyLog after the entry was %s: no discrepancy says %q:\n%s", tc.name, w, all)
					}
				}
			})
		})
	}
}

// TestVerifyLogOfALargeJournal protects the auditor's check of a ledger of any size: VerifyLog
// reads the journal and the log's leaves 2,000 at a time, and on SQLite a statement naming that
// many nodes passed the 1,000-deep limit of its expressions ("Expression tree is too large"):
// VerifyLog failed on every SQLite ledger of more than about 1,000 entries with the log on. Here
// 4,501 entries, and a checkpoint past the first page.
func TestVerifyLogOfALargeJournal(t *testing.T) {
	t.Parallel()
	skey, vkey, err := translog.GenerateKey("ledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l := openWithLog(t, db, skey)
		mustCreateEnvelope(t, l, "fund", "", 1_000_000_000)
		for call := range 3 {
			items := make([]BulkItem, 1500)
			for i := range items {
				items[i] = BulkItem{Beneficiary: fmt.Sprintf("siren:%d-%d", call, i), Project: "p", Amount: 100}
			}
			if _, err := l.BulkCommit(ctx, BulkCommit{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "fund",
				Items: items}); err != nil {
				t.Fatal(err)
			}
		}
		readJournal(t, l, 0)
		if err := l.checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := l.VerifyLog(ctx, vkey)
		if err != nil {
			t.Fatalf("VerifyLog: %v (%v)", err, errors.Unwrap(err))
		}
		if !rep.OK() || rep.Entries != 4501 || rep.TreeSize != 4501 || rep.Checkpoints == 0 {
			t.Fatalf("VerifyLog of 4,501 entries: %+v", rep)
		}
	})
}

// TestVerifyLogReadsTheNoteWithoutTheKey protects the checkpoints GetCheckpoint and the public page
// hand out: a kept checkpoint's note whose size line was edited (the append-only trigger dropped
// first) is found by VerifyLog without the verifier key too. Without the key, the note was not
// read at all, and an outsider given the edited note was told nothing by verify.
func TestVerifyLogReadsTheNoteWithoutTheKey(t *testing.T) {
	t.Parallel()
	skey, _, err := translog.GenerateKey("ledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l := openWithLog(t, db, skey)
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		for i := range 3 {
			mustCommit(t, l, "fund", fmt.Sprintf("siren:%d", i), 1_000)
		}
		readJournal(t, l, 0)
		if err := l.checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if rep, err := l.VerifyLog(ctx, ""); err != nil || !rep.OK() || rep.Checkpoints == 0 {
			t.Fatalf("VerifyLog without the key, before tampering: %+v, %v", rep, err)
		}
		drop := "DROP TRIGGER tlog_checkpoints_append_only"
		if l.Engine() != "sqlite" {
			drop += " ON tlog_checkpoints"
		}
		for _, stmt := range []string{drop, "UPDATE tlog_checkpoints SET note = REPLACE(note, '\n4\n', '\n5\n') WHERE size = 4"} {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatalf("tampering: %s: %v", stmt, err)
			}
		}
		rep, err := l.VerifyLog(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if all := strings.Join(rep.Discrepancies, "\n"); !strings.Contains(all, "checkpoint of tree size 4: its note says size 5") {
			t.Errorf("VerifyLog without the key, after the note's size was edited: %q", all)
		}
	})
}
