package model_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// The transparency log under the model's randomized runs (issue 14): every ledger the model
// tests opens keeps the log and signs a checkpoint every few entries, and verify also rebuilds
// the tree from the journal and checks it against every checkpoint signed during the run
// (invariant 11: each checkpoint's tree is a prefix of every later one, and of the journal).

var modelLogSigner, modelLogVerifier = func() (*translog.Signer, string) {
	skey, vkey, err := translog.GenerateKey("model.test/log")
	if err != nil {
		panic(err)
	}
	s, err := translog.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	return s, vkey
}()

func modelLogConfig() ledger.LogConfig {
	return ledger.LogConfig{Signer: modelLogSigner, CheckpointEvery: 25}
}

func verifyLog(t *testing.T, l *ledger.Ledger, context string) {
	t.Helper()
	rep, err := l.VerifyLog(t.Context(), modelLogVerifier)
	if err != nil {
		t.Fatalf("VerifyLog: %v (%v)", err, errors.Unwrap(err))
	}
	if !rep.OK() {
		var b strings.Builder
		for _, d := range rep.Discrepancies {
			fmt.Fprintf(&b, "\n  %s", d)
		}
		t.Fatalf("VerifyLog found %d discrepancies%s:%s", len(rep.Discrepancies), context, b.String())
	}
	verifyLeavesAsListed(t, l, rep.TreeSize, context)
}

// verifyLeavesAsListed checks the log as an outsider does, from the API alone: the leaf of every
// entry in the tree (an inclusion proof's) is the canonical encoding of the entry as ListEntries
// gives it, effective time included (docs/transparency.md). VerifyLog could not see a leaf built
// from an entry read without its effective time: it rebuilt the tree from the same reading (a
// bug of the log until migration 25, found by TestLogLeavesHoldEffectiveTimes; the generator
// backdates requests).
func verifyLeavesAsListed(t *testing.T, l *ledger.Ledger, size int64, context string) {
	t.Helper()
	page := ledger.Page{Size: 500}
	for {
		entries, next, err := l.ListEntries(t.Context(), ledger.EntryFilter{}, page)
		if err != nil {
			t.Fatalf("ListEntries: %v", err)
		}
		for _, e := range entries {
			if e.Sequence > size {
				return
			}
			p, err := l.GetInclusionProof(t.Context(), e.Sequence, size)
			if err != nil {
				t.Fatalf("GetInclusionProof(%d, %d): %v", e.Sequence, size, err)
			}
			if string(p.Leaf) != string(translog.EncodeLeaf(e)) {
				got, _ := translog.DecodeLeaf(p.Leaf)
				t.Fatalf("the log's leaf %d is not the entry ListEntries gives%s:\n log %+v\n API %+v", e.Sequence-1, context, got, e)
			}
		}
		if next == "" {
			return
		}
		page.Token = next
	}
}
