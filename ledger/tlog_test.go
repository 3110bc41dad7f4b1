package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// openWithLog opens a ledger on db that keeps the transparency log and signs with skey.
func openWithLog(t *testing.T, db testDB, skey string) *Ledger {
	t.Helper()
	signer, err := translog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(t.Context(), db.dsn, Config{TxTimeout: testdb.TxTimeout, Log: LogConfig{Signer: signer, CheckpointEvery: 50}})
	if err != nil {
		t.Fatalf("Open(%s): %v", db.engine, err)
	}
	t.Cleanup(l.Close)
	return l
}

// TestLogProvesTheJournalToAnOutsider protects invariant 11 and the log's promise: an outside
// program holding only the verifier key verifies a checkpoint's signature, the inclusion of
// random entries (recomputing their leaves from the entries the API lists) and the consistency
// between two checkpoints taken while two processes award concurrently.
func TestLogProvesTheJournalToAnOutsider(t *testing.T) {
	t.Parallel()
	skey, vkey, err := translog.GenerateKey("ledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ledgers := []*Ledger{openWithLog(t, db, skey), openWithLog(t, db, skey)}
		mustCreateEnvelope(t, ledgers[0], "fund", "", 30*1_000_000)
		for i := range 10 {
			mustCreateEnvelope(t, ledgers[0], fmt.Sprintf("line-%02d", i), "fund", 1_000_000)
		}
		const callers, awards = 16, 8
		var wg sync.WaitGroup
		var first string
		var once sync.Once
		for c := range callers {
			wg.Go(func() {
				l := ledgers[c%2]
				for a := range awards {
					cmd := commitCmd(fmt.Sprintf("line-%02d", (c+a)%10), fmt.Sprintf("siren:%d-%d", c, a), 1_000)
					if _, err := untilDecided(func() (CommitResult, error) { return l.Commit(context.Background(), cmd) }); err != nil {
						t.Errorf("award: %v", err)
					}
					if a == awards/2 {
						once.Do(func() {
							// A checkpoint taken under load, of every entry committed so far:
							// positioned first, since on PostgreSQL the sequencer may not have
							// reached them yet (the checkpoint would then be the empty one
							// signed at start, and this test would fail by timing alone).
							if err := l.catchUp(t.Context(), false); err != nil {
								t.Errorf("catchUp: %v", err)
							}
							if err := l.checkpoint(t.Context()); err != nil {
								t.Errorf("checkpoint: %v", err)
							}
							cp, err := l.Checkpoint(t.Context())
							if err != nil {
								t.Errorf("Checkpoint: %v", err)
							}
							first = cp
						})
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		journal := readJournal(t, ledgers[1], 0)
		if err := ledgers[1].checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		second, err := ledgers[0].Checkpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}

		// The outsider: the verifier key, the two notes, and what the API answers.
		c1, err := translog.OpenCheckpoint([]byte(first), vkey)
		if err != nil {
			t.Fatalf("first checkpoint: %v", err)
		}
		c2, err := translog.OpenCheckpoint([]byte(second), vkey)
		if err != nil {
			t.Fatalf("second checkpoint: %v", err)
		}
		if c2.Size != uint64(len(journal)) {
			t.Fatalf("the last checkpoint has %d entries, the journal %d", c2.Size, len(journal))
		}
		if c1.Size == 0 || c1.Size > c2.Size {
			t.Fatalf("checkpoint sizes %d then %d", c1.Size, c2.Size)
		}
		// The whole journal rebuilds the signed root.
		b := translog.NewBuilder()
		for _, e := range journal {
			b.Add(translog.EncodeLeaf(e))
		}
		if !bytes.Equal(b.Root(), c2.Root) {
			t.Fatalf("the journal's tree root differs from the signed checkpoint's")
		}
		consistency, err := ledgers[1].GetConsistencyProof(t.Context(), int64(c1.Size), int64(c2.Size))
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.VerifyConsistency(c1.Size, c2.Size, consistency, c1.Root, c2.Root); err != nil {
			t.Fatalf("consistency %d → %d: %v", c1.Size, c2.Size, err)
		}
		for _, size := range []uint64{c1.Size, c2.Size} {
			root := c1.Root
			if size == c2.Size {
				root = c2.Root
			}
			for range 20 {
				e := journal[rand.IntN(int(size))]
				p, err := ledgers[rand.IntN(2)].GetInclusionProof(t.Context(), e.Sequence, int64(size))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p.Leaf, translog.EncodeLeaf(e)) {
					t.Fatalf("entry %d: the proof's leaf is not the entry's canonical encoding", e.Sequence)
				}
				if err := translog.VerifyInclusion(p.Leaf, p.LeafIndex, p.TreeSize, p.Hashes, root); err != nil {
					t.Fatalf("inclusion of entry %d in the tree of %d: %v", e.Sequence, size, err)
				}
			}
		}
	})
}

// TestLogRefusals: without a key the log answers LOG_DISABLED; a tree larger than the log is
// TREE_SIZE_TOO_LARGE; nothing is written by either.
func TestLogRefusals(t *testing.T) {
	t.Parallel()
	skey, _, err := translog.GenerateKey("ledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	db := newSQLiteDB(t)
	plain := db.open(t)
	if _, err := plain.Checkpoint(t.Context()); !errors.Is(err, &Error{Reason: ReasonLogDisabled}) {
		t.Fatalf("Checkpoint without a key: %v, want LOG_DISABLED", err)
	}
	if _, err := plain.GetInclusionProof(t.Context(), 1, 1); !errors.Is(err, &Error{Reason: ReasonLogDisabled}) {
		t.Fatalf("GetInclusionProof without a key: %v, want LOG_DISABLED", err)
	}
	mustCreateEnvelope(t, plain, "fund", "", 1_000_000)
	plain.Close()
	// The log catches up with a journal written without it.
	l := openWithLog(t, db, skey)
	mustCreateEnvelope(t, l, "fund-2", "", 1_000_000)
	if _, err := l.GetInclusionProof(t.Context(), 1, 3); !errors.Is(err, &Error{Reason: ReasonTreeSizeTooLarge}) {
		t.Fatalf("a tree of 3 entries in a log of 2: %v, want TREE_SIZE_TOO_LARGE", err)
	}
	p, err := l.GetInclusionProof(t.Context(), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.LeafIndex != 0 || len(p.Hashes) != 1 {
		t.Fatalf("proof of entry 1 in a tree of 2: %+v", p)
	}
}

// TestLogTablesAppendOnly protects invariant 6 for the log: its node hashes and checkpoints cannot
// be changed or deleted, nor its size moved back, nor the bound of its legacy leaves moved (once
// the tree has leaves: migration 26), by any session of the database.
func TestLogTablesAppendOnly(t *testing.T) {
	t.Parallel()
	skey, _, err := translog.GenerateKey("ledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, db testDB) {
		l := openWithLog(t, db, skey)
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		if _, err := l.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := l.checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{
			"UPDATE tlog_hashes SET hash = hash",
			"DELETE FROM tlog_hashes",
			"UPDATE tlog_checkpoints SET note = 'forged'",
			"DELETE FROM tlog_checkpoints",
			"UPDATE tlog_head SET size = 0",
			"UPDATE tlog_head SET legacy_effective_until = legacy_effective_until + 1",
			"UPDATE tlog_head SET size = size + 1, legacy_effective_until = 1",
		} {
			if err := rawExec(t.Context(), l, stmt); err == nil {
				t.Errorf("%s: allowed, want refused by the database", stmt)
			}
		}
	})
}
