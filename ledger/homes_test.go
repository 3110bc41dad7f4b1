package ledger

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestHomesBounded protects the bound of the commitments' envelopes a ledger remembers (homes):
// never more than two generations, the most recent always remembered, and the oldest forgotten
// once two generations followed it.
func TestHomesBounded(t *testing.T) {
	var h homes[string]
	id := func(i int) string { return fmt.Sprintf("c-%d", i) }
	for i := range 2*homesPerGeneration + 1 {
		h.learn(id(i), fmt.Sprintf("env-%d", i%7))
		if n := len(h.cur) + len(h.old); n > 2*homesPerGeneration {
			t.Fatalf("after %d learnt, %d remembered; want at most %d", i+1, n, 2*homesPerGeneration)
		}
	}
	for _, i := range []int{2 * homesPerGeneration, 2*homesPerGeneration - 1, homesPerGeneration} {
		if got, ok := h.get(id(i)); !ok || got != fmt.Sprintf("env-%d", i%7) {
			t.Errorf("commitment %d of the last two generations: %q, %t; want env-%d", i, got, ok, i%7)
		}
	}
	if got, ok := h.get(id(0)); ok {
		t.Errorf("the first commitment, two generations ago, is still remembered (%q)", got)
	}
}

// TestReleaseRoutedByTheRememberedEnvelope: a release, payment or closing is routed to its
// commitment's envelope by what the ledger remembers (homes) when a batch of its own committed
// the commitment, and by a read otherwise (a ledger reopened on the same database), which it
// then remembers; either way the decisions are those of the commitment's own figures, and an
// unknown commitment is refused as before.
func TestReleaseRoutedByTheRememberedEnvelope(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l := db.open(t)
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "other", "", 1_000_000)
		c := mustCommit(t, l, "fund", "siren:217500016", 100_000).Commitment
		mustCommit(t, l, "other", "siren:217500017", 50_000)
		if got, ok := l.commitmentHomes.get(c.ID); !ok || got != "fund" {
			t.Fatalf("after its award, commitment %s remembered in %q (%t); want fund", c.ID, got, ok)
		}
		r, err := l.Release(ctx, releaseCmd(c.ID, 10_000))
		if err != nil {
			t.Fatal(err)
		}
		if r.Commitment.Released != 10_000 || r.Envelope.ID != "fund" || r.Envelope.Committed != 90_000 {
			t.Fatalf("release routed by the remembered envelope: commitment released %d, envelope %s committed %d; "+
				"want 10000, fund, 90000", r.Commitment.Released, r.Envelope.ID, r.Envelope.Committed)
		}
		if got, want := l.Stats().Routes, (Routes{CommitmentsRemembered: 1}); got != want {
			t.Errorf("routes after a release of a commitment awarded here: %+v; want %+v", got, want)
		}

		// Reopened with a Prometheus registry: ledger_routes_total counts what Stats counts.
		reg := prometheus.NewRegistry()
		reopened, err := Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(reopened.Close)
		if _, ok := reopened.commitmentHomes.get(c.ID); ok {
			t.Fatal("a ledger just opened remembers a commitment")
		}
		p, err := reopened.CreatePayment(ctx, payCmd(c.ID, 20_000))
		if err != nil {
			t.Fatal(err)
		}
		if p.Commitment.Paid != 20_000 || p.Envelope.ID != "fund" {
			t.Fatalf("payment routed by a read: paid %d on %s; want 20000 on fund", p.Commitment.Paid, p.Envelope.ID)
		}
		if got, ok := reopened.commitmentHomes.get(c.ID); !ok || got != "fund" {
			t.Fatalf("after it was read to route a payment, commitment %s remembered in %q (%t); want fund", c.ID, got, ok)
		}
		r, err = reopened.Release(ctx, releaseCmd(c.ID, 5_000))
		if err != nil || r.Commitment.Released != 15_000 || r.Envelope.Committed != 85_000 {
			t.Fatalf("second release: %+v, %v; want 15000 released, 85000 committed", r.Commitment, err)
		}
		_, err = reopened.Release(ctx, releaseCmd("01a23713-ffc9-7a82-aeb0-285ee14f0067", 1))
		requireError(t, err, ErrCommitmentNotFound)
		// Read: the payment's commitment, then the unknown one; remembered: the second release.
		want := Routes{CommitmentsRemembered: 1, CommitmentsRead: 2}
		if got := reopened.Stats().Routes; got != want {
			t.Errorf("routes of the reopened ledger: %+v; want %+v", got, want)
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		counted := map[string]float64{}
		for _, f := range families {
			if f.GetName() == "ledger_routes_total" {
				for _, m := range f.GetMetric() {
					labels := map[string]string{}
					for _, l := range m.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					counted[labels["of"]+" "+labels["by"]] = m.GetCounter().GetValue()
				}
			}
		}
		if counted["commitment remembered"] != 1 || counted["commitment read"] != 2 || len(counted) != 2 {
			t.Errorf("ledger_routes_total: %v; want commitment remembered 1, commitment read 2", counted)
		}
	})
}

// TestHoldRoutedByTheRememberedHold is TestReleaseRoutedByTheRememberedEnvelope for holds: a
// confirmation or cancellation is routed by what the ledger remembers of the hold (its envelope,
// project and policy, which never change) when a batch of its own created it, by a read
// otherwise, then remembered; the decision is made on the hold as stored (a hold already
// confirmed is not confirmed again), and the commitment a confirmation makes is remembered too.
func TestHoldRoutedByTheRememberedHold(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		l := db.open(t)
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "other", "", 1_000_000)
		h1 := mustHold(t, l, holdCmd("fund", "siren:217500016", 300_000)).Hold
		h2 := mustHold(t, l, holdCmd("fund", "siren:217500017", 100_000)).Hold
		mustHold(t, l, holdCmd("other", "siren:217500018", 50_000))
		if got, ok := l.holdHomes.get(h1.ID); !ok || got.EnvelopeID != "fund" || got.Project != h1.Project {
			t.Fatalf("after its creation, hold %s remembered as %+v (%t); want on fund, project %q", h1.ID, got, ok, h1.Project)
		}
		confirm := ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h1.ID, Amount: 200_000}
		c, err := l.ConfirmHold(ctx, confirm)
		if err != nil {
			t.Fatal(err)
		}
		if c.Commitment.Amount != 200_000 || c.Envelope.ID != "fund" || c.Envelope.Committed != 200_000 || c.Envelope.Held != 100_000 {
			t.Fatalf("confirmation routed by the remembered hold: %+v", c)
		}
		if got, ok := l.commitmentHomes.get(c.Commitment.ID); !ok || got != "fund" {
			t.Fatalf("the commitment of a confirmation remembered in %q (%t); want fund", got, ok)
		}
		confirm.RequestID = newRequestID()
		_, err = l.ConfirmHold(ctx, confirm)
		requireError(t, err, ErrHoldNotHeld)
		if got, want := l.Stats().Routes, (Routes{HoldsRemembered: 2}); got != want {
			t.Errorf("routes after two confirmations of a hold created here: %+v; want %+v", got, want)
		}

		reopened := db.open(t)
		cancelled, err := reopened.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h2.ID,
			Reason: "withdrawn"})
		if err != nil {
			t.Fatal(err)
		}
		if cancelled.Hold.State != HoldCancelled || cancelled.Envelope.ID != "fund" || cancelled.Envelope.Held != 0 {
			t.Fatalf("cancellation routed by a read: %+v", cancelled)
		}
		if got, ok := reopened.holdHomes.get(h2.ID); !ok || got.EnvelopeID != "fund" {
			t.Fatalf("after it was read to route a cancellation, hold %s remembered as %+v (%t); want on fund", h2.ID, got, ok)
		}
		if got, want := reopened.Stats().Routes, (Routes{HoldsRead: 1}); got != want {
			t.Errorf("routes of the reopened ledger after a cancellation: %+v; want %+v", got, want)
		}
	})
}
