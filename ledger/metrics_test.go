package ledger

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestBatchPhasesMeasureEachCommittedBatch checks ledger_batch_phase_seconds, which tells an
// operator where a group-commit batch's time goes: every batch that committed is observed once in
// each of the four phases, and the phases, disjoint parts of the batches, add up to no more than
// the time their callers waited (the calls are made one after the other, so the batches do not
// overlap).
func TestBatchPhasesMeasureEachCommittedBatch(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		reg := prometheus.NewRegistry()
		l, err := Open(t.Context(), db.dsn, Config{TxTimeout: testdb.TxTimeout, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		mustCreateEnvelope(t, l, "axis-1", "", 1_000)
		began := time.Now()
		c := mustCommit(t, l, "axis-1", "commune-a", 600)
		if _, err := l.Commit(t.Context(), commitCmd("axis-1", "commune-b", 600)); err == nil {
			t.Fatal("an award beyond the envelope was accepted") // a refusal is a batch that committed too
		}
		if _, err := l.Release(t.Context(), releaseCmd(c.Commitment.ID, 100)); err != nil {
			t.Fatal(err)
		}
		waited := time.Since(began)
		batches := l.Stats().Batches
		if batches != 3 {
			t.Fatalf("%d batches for three calls made one after the other; want one each", batches)
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var total float64
		for _, f := range families {
			if f.GetName() != "ledger_batch_phase_seconds" {
				continue
			}
			for _, m := range f.GetMetric() {
				phase := m.GetLabel()[0].GetValue()
				seen[phase] = true
				if n := m.GetHistogram().GetSampleCount(); n != uint64(batches) {
					t.Errorf("phase %s observed %d times; want once per batch, %d", phase, n, batches)
				}
				total += m.GetHistogram().GetSampleSum()
			}
		}
		for _, phase := range []string{"lookup", "load", "decide", "write"} {
			if !seen[phase] {
				t.Errorf("phase %s is not measured", phase)
			}
		}
		if total > waited.Seconds() {
			t.Errorf("the phases add up to %v, more than the %v the calls took", time.Duration(total*float64(time.Second)), waited)
		}
		// Stats sums the same times (ledgerbench prints them).
		p := l.Stats().Phases
		if sum := p.Lookup + p.Load + p.Decide + p.Write; sum <= 0 || sum > waited {
			t.Errorf("Stats().Phases add up to %v; want more than 0 and no more than the %v the calls took", sum, waited)
		}
		if diff := time.Duration(total*float64(time.Second)) - (p.Lookup + p.Load + p.Decide + p.Write); diff > time.Microsecond || diff < -time.Microsecond {
			t.Errorf("Stats().Phases add up to %v, the histograms to %v: want the same times", p.Lookup+p.Load+p.Decide+p.Write, total)
		}
	})
}
