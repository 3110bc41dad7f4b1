package clienttest_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// TestTypedLogMethods protects the Go client's side of issue 14: GetCheckpoint,
// GetInclusionProof, GetConsistencyProof and WatchJournalEntries answer what an outsider holding
// only the verifier key can check, and a ledgerd without a log key answers ErrLogDisabled.
func TestTypedLogMethods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := testdb.SQLite(t)
	plain := startLedgerd(t, database, "127.0.0.1:0")
	if _, err := dial(t, plain.addr).GetCheckpoint(ctx); !errors.Is(err, client.ErrLogDisabled) {
		t.Fatalf("GetCheckpoint without a log key: %v, want ErrLogDisabled", err)
	}
	plain.stop()

	skey, vkey, err := translog.GenerateKey("clienttest.example/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ledger.Config{TxTimeout: testdb.TxTimeout, Log: ledger.LogConfig{Signer: signer}}
	d := startLedgerdWith(t, database, "127.0.0.1:0", cfg)
	c := dial(t, d.addr)
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: 88 * million}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"siren:200054781", "siren:217500016", "siren:213105554"} {
		if _, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/fund", Beneficiary: b, Project: "p", Amount: million}); err != nil {
			t.Fatal(err)
		}
	}
	d.stop() // signs a last checkpoint
	d = startLedgerdWith(t, database, "127.0.0.1:0", cfg)
	c = dial(t, d.addr)

	note, err := c.GetCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := translog.OpenCheckpoint([]byte(note), vkey)
	if err != nil || cp.Size != 4 {
		t.Fatalf("checkpoint %+v, %v; want 4 entries, signature verified", cp, err)
	}
	if bound, err := c.LogLegacyBound(ctx); err != nil || bound != 0 {
		t.Fatalf("LogLegacyBound = %d, %v; want 0 on a ledger made since migration 25", bound, err)
	}
	var first []byte
	n := 0
	for e, err := range c.WatchJournalEntries(ctx, client.WatchFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.GetInclusionProof(ctx, e.GetSequence(), 0)
		if err != nil {
			t.Fatal(err)
		}
		leaf, ok := translog.DecodeLeaf(p.GetLeaf())
		if !ok || "journalEntries/"+leaf.ID != e.GetName() || leaf.Sequence != e.GetSequence() || len(leaf.Postings) != len(e.GetPostings()) {
			t.Fatalf("the proof's leaf %+v is not entry %v", leaf, e)
		}
		if err := translog.VerifyInclusion(p.GetLeaf(), uint64(p.GetLeafIndex()), uint64(p.GetTreeSize()), p.GetHashes(), cp.Root); err != nil {
			t.Fatalf("inclusion of entry %d: %v", e.GetSequence(), err)
		}
		if e.GetSequence() == 1 {
			first = p.GetLeaf()
		}
		if n++; n == int(cp.Size) {
			break
		}
	}
	hashes, err := c.GetConsistencyProof(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := translog.NewBuilder()
	b.Add(first)
	if err := translog.VerifyConsistency(1, cp.Size, hashes, b.Root(), cp.Root); err != nil {
		t.Fatalf("consistency 1 → %d: %v", cp.Size, err)
	}
	if _, err := c.GetInclusionProof(ctx, 1, 99); !errors.Is(err, client.ErrTreeSizeTooLarge) {
		t.Fatalf("a tree of 99 entries: %v, want ErrTreeSizeTooLarge", err)
	}
	if bytes.Equal(first, nil) {
		t.Fatal("no leaf for entry 1")
	}
}
