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
}
