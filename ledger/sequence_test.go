package ledger

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// readJournal lists every journal entry after position after, following page tokens.
func readJournal(t *testing.T, l *Ledger, after int64) []Entry {
	t.Helper()
	var out []Entry
	token := ""
	for {
		page, next, err := l.ListEntries(t.Context(), EntryFilter{AfterSequence: after}, Page{Size: 1000, Token: token})
		if err != nil {
			t.Fatalf("ListEntries after %d: %v", after, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		token = next
	}
}

// requireJournalOrder checks that entries are the journal from position 1 on, each once, with
// no gap.
func requireJournalOrder(t *testing.T, entries []Entry) {
	t.Helper()
	seen := map[string]bool{}
	for i, e := range entries {
		if e.Sequence != int64(i+1) {
			t.Fatalf("entry %d of the journal has sequence %d, want %d (no gap, no repeat)", i, e.Sequence, i+1)
		}
		if seen[e.ID] {
			t.Fatalf("entry %s listed twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// TestLateCommitIsNotBehindAReader protects invariant 9 deterministically: a transaction that
// decided its entry first but commits last must not appear behind a reader that has already
// moved past the entries committed meanwhile. With the journal listed by entry id (a UUIDv7 made
// when the transaction decides), the late entry sorted before the ones the reader had seen and
// was never read.
func TestLateCommitIsNotBehindAReader(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		if db.engine == "sqlite" {
			t.Skip("SQLite runs one write transaction at a time: a commit cannot be overtaken")
		}
		l := db.open(t)
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)

		// The late transaction: it makes its entry (id and time) now, and commits when released.
		late := Entry{ID: newID(), Kind: core.KindRulesChanged, Currency: "EUR", Caller: testCaller,
			RequestID: newRequestID(), Memo: "held open", CreatedAt: stamp().At}
		decided, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			first := true
			done <- l.db.ReadWrite(context.Background(), func(q store.Querier) error {
				if err := store.InsertEntries(ctx, q, []Entry{late}); err != nil {
					return err
				}
				if first {
					first = false
					close(decided)
					<-release
				}
				return nil
			})
		}()
		<-decided

		mustCommit(t, l, "fund", "siren:1", 100)
		mustCommit(t, l, "fund", "siren:2", 100)
		before := readJournal(t, l, 0)
		requireJournalOrder(t, before)
		last := before[len(before)-1].Sequence
		for _, e := range before {
			if e.ID == late.ID {
				t.Fatal("the uncommitted entry was listed")
			}
		}

		close(release)
		if err := <-done; err != nil {
			t.Fatalf("the late transaction: %v", err)
		}
		after := readJournal(t, l, last)
		if len(after) != 1 || after[0].ID != late.ID || after[0].Sequence != last+1 {
			t.Fatalf("after position %d: %+v; want only the late entry, at %d", last, after, last+1)
		}
		if !late.CreatedAt.Before(before[len(before)-1].CreatedAt) || late.ID > before[len(before)-1].ID {
			t.Fatalf("the late entry was not decided first: the test proves nothing")
		}
		requireJournalOrder(t, readJournal(t, l, 0))
	})
}

// TestFollowerReadsEveryEntryOnce protects invariant 9 under load: a reader following the journal
// (each time asking for the entries after the last position it saw) while 64 callers award on 30
// envelopes through two ledgers on one database (as two processes would) ends with exactly the
// final journal, each entry once, in order.
func TestFollowerReadsEveryEntryOnce(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ledgers := []*Ledger{db.open(t), db.open(t)}
		mustCreateEnvelope(t, ledgers[0], "fund", "", 30*1_000_000)
		for i := range 30 {
			mustCreateEnvelope(t, ledgers[0], fmt.Sprintf("line-%02d", i), "fund", 1_000_000)
		}
		const callers, awards = 64, 8
		committed := make(chan struct{}, callers*awards)
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				l := ledgers[c%2]
				for a := range awards {
					cmd := commitCmd(fmt.Sprintf("line-%02d", (c+a)%30), fmt.Sprintf("siren:%d-%d", c, a), 1_000)
					if _, err := untilDecided(func() (CommitResult, error) { return l.Commit(context.Background(), cmd) }); err != nil {
						t.Errorf("award: %v", err)
					}
					committed <- struct{}{}
				}
			})
		}
		writersDone := make(chan struct{})
		go func() { wg.Wait(); close(writersDone) }()

		var followed []Entry
		var last int64
		follow := func(l *Ledger) {
			for _, e := range readJournal(t, l, last) {
				if e.Sequence <= last {
					t.Fatalf("entry %s at position %d, at or before %d already read", e.ID, e.Sequence, last)
				}
				followed = append(followed, e)
				last = e.Sequence
			}
		}
		for reads := 0; ; reads++ {
			select {
			case <-committed:
				follow(ledgers[reads%2])
				continue
			case <-writersDone:
			}
			break
		}
		follow(ledgers[0])
		final := readJournal(t, ledgers[1], 0)
		requireJournalOrder(t, final)
		if len(followed) != len(final) {
			t.Fatalf("the follower read %d entries, the journal has %d", len(followed), len(final))
		}
		for i := range final {
			if followed[i].ID != final[i].ID {
				t.Fatalf("position %d: the follower read %s, the journal holds %s", i+1, followed[i].ID, final[i].ID)
			}
		}
		if want := 1 + 30 + callers*awards; len(final) != want {
			t.Fatalf("journal holds %d entries, want %d", len(final), want)
		}
		requireVerifyOK(t, ledgers[0])
	})
}

// TestVerifyFindsAGapInTheJournalOrder protects invariant 9 against an operator with database
// access: an entry moved to another position (the append-only trigger dropped first) leaves a
// gap that Verify reports, naming the entry.
func TestVerifyFindsAGapInTheJournalOrder(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		mustCommit(t, l, "axis-1", "commune", 1_000)
		entries := readJournal(t, l, 0) // every entry has its position once read
		requireVerifyOK(t, l)
		drop := "DROP TRIGGER journal_entries_append_only"
		if l.Engine() != "sqlite" {
			drop += " ON journal_entries"
		}
		moved := entries[1]
		for _, stmt := range []string{drop, "UPDATE journal_entries SET seq = 1000 WHERE id = $1"} {
			if err := rawExec(ctx, l, stmt, []any{moved.ID}[:min(1, strings.Count(stmt, "$"))]...); err != nil {
				t.Fatalf("tampering: %s: %v", stmt, err)
			}
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range rep.Discrepancies {
			if d.Invariant == 9 {
				found = true
			}
		}
		if !found {
			t.Fatalf("Verify after moving %s to position 1000: %v, want an invariant 9 discrepancy", moved.ID, rep.Discrepancies)
		}
	})
}

// TestEntriesWaitingForPositionsAtOpen protects docs/journal.md's "entries of a ledger created
// before positions existed get theirs" and "readers list only entries that have a position" on
// every engine: a ledger whose entries wait for their positions (as one made before migration 4
// left them) lists every entry as soon as it is opened again, with no write to position them, in
// their order, and verifies. On SQLite, where the transactions that write entries position them,
// nothing else would until the next write.
func TestEntriesWaitingForPositionsAtOpen(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l := db.open(t)
		buildFund(t, l)
		mustCommit(t, l, "axis-1", "commune", 1_000)
		before := readJournal(t, l, 0)
		drop := "DROP TRIGGER journal_entries_append_only"
		if l.Engine() != "sqlite" {
			drop += " ON journal_entries"
		}
		if err := rawExec(ctx, l, drop); err != nil {
			t.Fatalf("%s: %v", drop, err)
		}
		// In one transaction: the sequencer of PostgreSQL, which runs on its own, must not see the
		// entries without positions while the head still says 5.
		err := l.db.ReadWrite(ctx, func(q store.Querier) error {
			for _, stmt := range []string{"UPDATE journal_entries SET seq = NULL", "UPDATE journal_head SET last_seq = 0"} {
				if _, err := q.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", stmt, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		reopened := db.open(t)
		after := readJournal(t, reopened, 0)
		if len(after) != len(before) {
			t.Fatalf("after reopening, %d entries listed, want the %d written", len(after), len(before))
		}
		for i := range after {
			if after[i].ID != before[i].ID || after[i].Sequence != before[i].Sequence {
				t.Errorf("entry %d: %s at %d, want %s at %d", i, after[i].ID, after[i].Sequence, before[i].ID, before[i].Sequence)
			}
		}
		requireVerifyOK(t, reopened)
	})
}
