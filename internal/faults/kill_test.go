//go:build faults

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestSIGKILL kills ledgerd with SIGKILL ten times while eight clients award and release through
// the Go client with retries, and restarts it at once on the same port and database. After each
// restart every operation acknowledged before the kill is in the ledger (awards exactly once,
// releases applied) and Verify finds nothing; at the end, once the operations left without an
// answer by a kill are sent again with their request ids, the ledger holds exactly what was
// acknowledged (invariants 4, 5, 7).
func TestSIGKILL(t *testing.T) {
	const (
		kills   = 10
		perKill = 40 // acknowledged operations between two kills
		workers = 8
	)
	testdb.Each(t, func(t *testing.T, database string) {
		started := time.Now()
		f := figures{test: "SIGKILL ledgerd", engine: engineOf(database), faults: fmt.Sprintf("%d × SIGKILL + restart", kills)}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		d := startLedgerd(t, database)
		// 30 attempts from 20 ms, doubling up to 10 s: minutes of retries, far more than a restart.
		c, attempts := dial(t, d.addr, 30, 20*time.Millisecond)
		envelopes := createEnvelopes(ctx, t, c, 1_000_000_000_000, "kill-a", "kill-b", "kill-c")
		tr := newTracker(t)
		g := &loadGen{tr: tr, c: c, prefix: "kill-" + f.engine, envelopes: envelopes, amount: 1000}
		stop, cancelCalls := g.start(ctx, workers)
		defer func() { cancelCalls(); stop() }() // on a failure: at once

		var restartTotal time.Duration
		for k := 1; k <= kills; k++ {
			if err := tr.acked.waitFor(ctx, tr.ackedCount()+perKill, time.Minute); err != nil {
				t.Fatalf("before kill %d: %v", k, err)
			}
			snap := tr.snapshot()
			d.kill()
			t0 := time.Now()
			d.start()
			restartTotal += time.Since(t0)
			lost, dup, disc := checkDurable(ctx, t, database, snap, fmt.Sprintf("after kill %d", k))
			f.lost, f.duplicated, f.discrepancy = f.lost+lost, f.duplicated+dup, f.discrepancy+disc
			f.discrepancy += verifyRPC(ctx, t, c, fmt.Sprintf("after kill %d", k))
		}
		if err := tr.acked.waitFor(ctx, tr.ackedCount()+perKill, time.Minute); err != nil {
			t.Fatalf("after the last kill: %v", err)
		}
		stop()
		f.resolved = tr.resolve(ctx, c)
		lost, dup, phantom, disc := checkExact(ctx, t, database, tr, nil)
		f.lost, f.duplicated, f.phantom, f.discrepancy = f.lost+lost, f.duplicated+dup, phantom, f.discrepancy+disc
		f.discrepancy += verifyRPC(ctx, t, c, "at the end")
		if err := d.terminate(30 * time.Second); err != nil {
			t.Errorf("ledgerd after SIGTERM: %v", err)
		}
		f.acked, f.refused = tr.ackedCount(), tr.refusedCount()
		f.elapsed = time.Since(started)
		f.notes = fmt.Sprintf("%d workers; restart to listening %.0f ms on average; %s", workers,
			float64(restartTotal.Milliseconds())/kills, attempts.failed())
		f.report(t)
	})
}
