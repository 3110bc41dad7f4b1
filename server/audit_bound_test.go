package server

import (
	"fmt"
	"testing"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestVerifyLedgerBoundsDiscrepancies: AIP-158's concern for lists that grow without bound. A
// ledger broken everywhere answers VerifyLedger with the first 1000 discrepancies, as the proto
// documents, and says how many there are in all; each names its invariant both ways (the
// deprecated number and the enum of the same number).
func TestVerifyLedgerBoundsDiscrepancies(t *testing.T) {
	rep := ledger.VerifyReport{Envelopes: 3}
	for i := range 2500 {
		rep.Discrepancies = append(rep.Discrepancies, ledger.Discrepancy{Invariant: 1 + i%7,
			Subject: fmt.Sprintf("envelopes/e-%d", i), Detail: "broken"})
	}
	out := verifyReportPB(rep)
	if len(out.GetDiscrepancies()) != 1000 || out.GetDiscrepancyCount() != 2500 {
		t.Fatalf("%d discrepancies returned of %d; want 1000 of 2500", len(out.GetDiscrepancies()), out.GetDiscrepancyCount())
	}
	for i, d := range out.GetDiscrepancies() {
		want := rep.Discrepancies[i]
		if d.GetSubject() != want.Subject || int(d.GetInvariant()) != want.Invariant || //nolint:staticcheck // the deprecated field is still sent
			d.GetBrokenInvariant() != pb.Invariant(want.Invariant) || d.GetBrokenInvariant() == pb.Invariant_INVARIANT_UNSPECIFIED {
			t.Fatalf("discrepancy %d = %v, want %+v", i, d, want)
		}
	}
	for inv := 1; inv <= 7; inv++ {
		if _, ok := pb.Invariant_name[int32(inv)]; !ok {
			t.Errorf("the ledger's invariant %d has no Invariant value", inv)
		}
	}
}
