package ledger

import (
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTransactionsAreTraced protects the observability a platform team relies on: with a tracer
// provider, every group-commit batch is a span carrying its size and its attempts, and every
// other mutation a span of its own.
func TestTransactionsAreTraced(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		rec := tracetest.NewSpanRecorder()
		l, err := Open(t.Context(), db.dsn, Config{TxTimeout: testdb.TxTimeout, TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCommit(t, l, "fund", "siren:1", 100)
		batches, mutations := 0, 0
		for _, s := range rec.Ended() {
			attrs := map[string]int64{}
			for _, a := range s.Attributes() {
				attrs[string(a.Key)] = a.Value.AsInt64()
			}
			switch s.Name() {
			case "ledger.batch":
				batches++
				if attrs["ledger.batch.operations"] != 1 || attrs["ledger.transaction.attempts"] < 1 {
					t.Errorf("batch span attributes %v, want 1 operation and its attempts", attrs)
				}
			case "ledger.mutation":
				mutations++
			}
		}
		if batches != 1 || mutations != 1 {
			t.Errorf("spans: %d batches, %d mutations; want 1 and 1", batches, mutations)
		}
	})
}
