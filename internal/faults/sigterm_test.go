//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestSIGTERM stops ledgerd with SIGTERM while eight clients award and release: the stop is
// graceful (the calls in flight are answered, the process exits 0 well within its shutdown
// timeout) and nothing acknowledged is lost, before and after a restart that resolves the
// operations the stop left without an answer.
func TestSIGTERM(t *testing.T) {
	const (
		before  = 100 // acknowledged operations before the SIGTERM
		workers = 8
	)
	testdb.Each(t, func(t *testing.T, database string) {
		started := time.Now()
		f := figures{test: "SIGTERM ledgerd under load", engine: engineOf(database), faults: "1 × SIGTERM, then a restart"}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		d := startLedgerd(t, database, "--shutdown-timeout", "20s")
		// Few retries: once the server is gone the workers' calls fail soon, and are resent later.
		c, attempts := dial(t, d.addr, 4, 20*time.Millisecond)
		envelopes := createEnvelopes(ctx, t, c, 1_000_000_000_000, "term-a", "term-b", "term-c")
		tr := newTracker(t)
		g := &loadGen{tr: tr, c: c, prefix: "term-" + f.engine, envelopes: envelopes, amount: 1000}
		stop, cancelCalls := g.start(ctx, workers)
		defer func() { cancelCalls(); stop() }() // on a failure: at once

		if err := tr.acked.waitFor(ctx, before, time.Minute); err != nil {
			t.Fatal(err)
		}
		atSignal := tr.ackedCount()
		t0 := time.Now()
		if err := d.terminate(30 * time.Second); err != nil {
			t.Errorf("ledgerd did not exit 0 after SIGTERM: %v", err)
		}
		stopTime := time.Since(t0)
		drained := tr.ackedCount() - atSignal // answered during the graceful stop
		cancelCalls()
		stop()
		if log := d.tail(keptLogLines); strings.Contains(log, "graceful stop timed out") || !strings.Contains(log, "msg=stopped") {
			t.Errorf("the stop was not graceful:\n%s", d.tail(20))
		}

		// With ledgerd down: every acknowledged operation is in the database.
		lost, dup, disc := checkDurable(ctx, t, database, tr.snapshot(), "after SIGTERM")
		f.lost, f.duplicated, f.discrepancy = lost, dup, disc

		d.start()
		f.resolved = tr.resolve(ctx, c)
		lost, dup, phantom, disc := checkExact(ctx, t, database, tr, nil)
		f.lost, f.duplicated, f.phantom, f.discrepancy = f.lost+lost, f.duplicated+dup, phantom, f.discrepancy+disc
		f.discrepancy += verifyRPC(ctx, t, c, "after the restart")
		f.acked, f.refused = tr.ackedCount(), tr.refusedCount()
		f.elapsed = time.Since(started)
		f.notes = fmt.Sprintf("%d workers; exit 0 %.0f ms after SIGTERM; %d ops acknowledged after the signal (drained); %s",
			workers, float64(stopTime.Microseconds())/1000, drained, attempts.failed())
		f.report(t)
	})
}

// TestSIGTERMWithHealthWatch stops ledgerd with SIGTERM while a client holds a grpc.health.v1
// Watch stream open, as gRPC clients with client-side health checking do on every connection.
//
// grpc.Server.GracefulStop waits for every open stream, and a Watch never ends on its own: the
// server ends the Watch streams when it shuts down (server/health.go), so the stop stays
// graceful instead of waiting for --shutdown-timeout and then cutting the calls in flight.
func TestSIGTERMWithHealthWatch(t *testing.T) {
	const shutdownTimeout = 4 * time.Second
	d := startLedgerd(t, testdb.SQLite(t), "--shutdown-timeout", shutdownTimeout.String())
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v", resp.GetStatus(), err)
	}
	t0 := time.Now()
	if err := d.terminate(shutdownTimeout + 10*time.Second); err != nil {
		t.Errorf("ledgerd did not exit 0 after SIGTERM: %v", err)
	}
	took := time.Since(t0)
	resp, err := watch.Recv()
	t.Logf("SIGTERM to exit: %v; the watch then saw %v, %v", took.Round(time.Millisecond), resp.GetStatus(), err)
	if strings.Contains(d.tail(keptLogLines), "graceful stop timed out") {
		t.Errorf("an open health Watch stream held up the graceful stop (%v, --shutdown-timeout %v): ledgerd cut the calls in flight",
			took.Round(time.Millisecond), shutdownTimeout)
	}
}
