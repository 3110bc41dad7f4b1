package ledger

import (
	"strconv"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// TestRequestLogLookupOfTheLargestBulkCall protects bulk calls of MaxBulkItems items: with
// request ids scoped per caller, a call is looked up under two keys per item (its caller's key
// and the bare id of a row recorded before the scoping): 20,002 keys, looked up in chunks
// (store.LoadRequests) that every engine accepts, and that find what is recorded.
func TestRequestLogLookupOfTheLargestBulkCall(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		items := make([]BulkItem, MaxBulkItems)
		for i := range items {
			items[i] = BulkItem{Beneficiary: "b", Project: "p" + strconv.Itoa(i), Amount: 1}
		}
		u := (&BulkCommit{RequestID: "big", Caller: "svc", EnvelopeID: "fund", Items: items}).Unit()
		keys := core.RequestKeys([]*core.Unit{u})
		if len(keys) != 2*(MaxBulkItems+1) {
			t.Fatalf("%d keys", len(keys))
		}
		row := core.RequestRow{Key: keys[len(keys)-2], Fingerprint: "f", Outcome: core.Outcome{Result: []byte(`{}`)}}
		if err := l.db.ReadWrite(t.Context(), func(q store.Querier) error {
			return store.InsertRequests(t.Context(), q, stamp().At, []core.RequestRow{row})
		}); err != nil {
			t.Fatal(err)
		}
		priors, err := store.LoadRequests(t.Context(), l.db.Reader(), keys)
		if err != nil {
			t.Fatalf("looking up %d keys: %v", len(keys), err)
		}
		if len(priors) != 1 || priors[row.Key].Fingerprint != "f" {
			t.Errorf("found %v, want the one row recorded", priors)
		}
	})
}
