//go:build faults

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestPostgresRestart stops the PostgreSQL server under ledgerd in immediate mode three times
// while eight clients award and release. Each time ledgerd turns NOT_SERVING (seen on the
// grpc.health.v1 Watch stream), refuses an award and a read with UNAVAILABLE and posts nothing,
// then turns SERVING again once PostgreSQL is back, without a restart: the same process serves
// throughout. After every outage each acknowledged operation is in the ledger and Verify finds
// nothing; at the end the ledger holds exactly what was acknowledged.
func TestPostgresRestart(t *testing.T) {
	const (
		outages  = 3
		perRound = 40 // acknowledged operations between two outages
		workers  = 8
	)
	started := time.Now()
	f := figures{test: "PostgreSQL stop -m immediate / start", engine: "postgres (private)",
		faults: fmt.Sprintf("%d × immediate stop + start", outages)}
	pg := startPrivatePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := startLedgerd(t, pg.url, "--tx-timeout", "2s")
	// While PostgreSQL is down ledgerd answers STORE_UNAVAILABLE with a RetryInfo of 500 ms, which
	// the client waits each time: 60 attempts ride through half a minute of outage.
	c, attempts := dial(t, d.addr, 60, 20*time.Millisecond)
	envelopes := createEnvelopes(ctx, t, c, 1_000_000_000_000, "pg-a", "pg-b", "pg-c")
	createEnvelopes(ctx, t, c, 1_000_000, "probe")

	// A connection without retries, for the health watch and the probes.
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	// The watch ends before ledgerd is stopped: an open Watch stream holds up its graceful stop
	// until --shutdown-timeout (see TestSIGTERM).
	watchCtx, endWatch := context.WithCancel(ctx)
	defer endWatch()
	watch, err := health.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	go func() {
		defer close(statuses)
		for {
			resp, err := watch.Recv()
			if err != nil {
				return
			}
			statuses <- resp.GetStatus()
		}
	}()
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus, when string) time.Time {
		t.Helper()
		timeout := time.After(45 * time.Second)
		for {
			select {
			case s, ok := <-statuses:
				if !ok {
					t.Fatalf("%s: the health watch ended", when)
				}
				if s == want {
					return time.Now()
				}
			case <-timeout:
				t.Fatalf("%s: ledgerd did not turn %v within 45 s", when, want)
			}
		}
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING, "at start")

	tr := newTracker(t)
	g := &loadGen{tr: tr, c: c, prefix: "pg", envelopes: envelopes, amount: 1000}
	stop, cancelCalls := g.start(ctx, workers)
	defer func() { cancelCalls(); stop() }() // on a failure: at once

	commits, envelopesAPI := pb.NewCommitmentServiceClient(conn), pb.NewEnvelopeServiceClient(conn)
	var probes []string
	var notServing, outage time.Duration
	for k := 1; k <= outages; k++ {
		if err := tr.acked.waitFor(ctx, tr.ackedCount()+perRound, time.Minute); err != nil {
			t.Fatalf("before outage %d: %v", k, err)
		}
		snap := tr.snapshot()
		t0 := time.Now()
		pg.stopImmediate()
		notServing += waitHealth(healthpb.HealthCheckResponse_NOT_SERVING, fmt.Sprintf("outage %d", k)).Sub(t0)

		// Meanwhile: UNAVAILABLE, for a write and a read, within the transaction timeout.
		probe := fmt.Sprintf("probe-%d", k)
		probes = append(probes, probe)
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := commits.Commit(pctx, &pb.CommitRequest{Envelope: "envelopes/probe", Beneficiary: "b", Project: probe,
			Amount: 1, RequestId: probe})
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("outage %d: Commit answered %v (%v), want UNAVAILABLE", k, code, err)
		}
		_, err = envelopesAPI.GetEnvelope(pctx, &pb.GetEnvelopeRequest{Name: "envelopes/probe"})
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("outage %d: GetEnvelope answered %v (%v), want UNAVAILABLE", k, code, err)
		}
		if resp, err := health.Check(pctx, &healthpb.HealthCheckRequest{}); err != nil ||
			resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("outage %d: health Check = %v, %v; want NOT_SERVING", k, resp.GetStatus(), err)
		}
		pcancel()

		pg.start()
		outage += waitHealth(healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("after outage %d", k)).Sub(t0)
		lost, dup, disc := checkDurable(ctx, t, pg.url, snap, fmt.Sprintf("after outage %d", k))
		f.lost, f.duplicated, f.discrepancy = f.lost+lost, f.duplicated+dup, f.discrepancy+disc
		f.discrepancy += verifyRPC(ctx, t, c, fmt.Sprintf("after outage %d", k))
	}
	if err := tr.acked.waitFor(ctx, tr.ackedCount()+perRound, time.Minute); err != nil {
		t.Fatalf("after the last outage: %v", err)
	}
	stop()
	if d.starts != 1 || !d.running() {
		t.Errorf("ledgerd was restarted (%d starts) or stopped: it must recover by itself", d.starts)
	}
	f.resolved = tr.resolve(ctx, c)
	lost, dup, phantom, disc := checkExact(ctx, t, pg.url, tr, nil)
	f.lost, f.duplicated, f.phantom, f.discrepancy = f.lost+lost, f.duplicated+dup, phantom, f.discrepancy+disc
	f.discrepancy += verifyRPC(ctx, t, c, "at the end")

	// The refused probes posted nothing (invariant 7).
	l := openLedger(ctx, t, pg.url)
	defer l.Close()
	env, err := l.GetEnvelope(ctx, "probe")
	if err != nil {
		t.Fatal(err)
	}
	if env.Committed != 0 || env.CommitmentCount != 0 {
		t.Errorf("probes refused with UNAVAILABLE left %d committed in %d commitments", env.Committed, env.CommitmentCount)
	}
	entries, _, err := l.ListEntries(ctx, ledger.EntryFilter{EnvelopeID: "probe"}, ledger.Page{Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("envelope probe has %d journal entries, want 1 (its funding): %+v", len(entries), entries)
	}

	endWatch()
	if err := d.terminate(30 * time.Second); err != nil {
		t.Errorf("ledgerd after SIGTERM: %v", err)
	}
	f.acked, f.refused = tr.ackedCount(), tr.refusedCount()
	f.elapsed = time.Since(started)
	f.notes = fmt.Sprintf("%d workers; same ledgerd process throughout; NOT_SERVING %.1f s after the stop, SERVING again %.1f s after it, on average; %d probes refused with UNAVAILABLE, posted nothing; %s",
		workers, notServing.Seconds()/outages, outage.Seconds()/outages, len(probes), attempts.failed())
	f.report(t)
}
