//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestClientTimeouts sends awards and releases with per-call deadlines too short for the server
// to answer, and sends each again with the same request id and a longer deadline until it is
// answered. Some attempts time out after the server has applied them; the retry must then return
// the first outcome: each request id has exactly one commitment and one journal entry, and each
// release is applied once (invariant 5).
func TestClientTimeouts(t *testing.T) {
	const (
		callers   = 8
		perCaller = 12
		amount    = 1000
		release   = 400
	)
	testdb.Each(t, func(t *testing.T, database string) {
		started := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		d := startLedgerd(t, database)
		c, attempts := dial(t, d.addr, 5, 10*time.Millisecond)
		envelope := createEnvelopes(ctx, t, c, 1_000_000_000, "timeout-hot")[0]
		tr := newTracker(t)
		var timedOut, appliedUnanswered atomic.Int64

		// untilAnswered sends o with a deadline that starts at 200 µs and grows by half at each
		// timeout, until the call is answered; it reports whether a timed-out attempt had already
		// been applied (the answer's update time is before the answered attempt was sent).
		untilAnswered := func(o op) any {
			deadline := 200 * time.Microsecond
			for attempt := 1; ; attempt++ {
				sent := time.Now()
				actx, acancel := context.WithTimeout(ctx, deadline)
				resp, err := o.send(actx, c)
				acancel()
				if errors.Is(err, client.ErrDeadlineExceeded) && attempt < 60 && ctx.Err() == nil {
					timedOut.Add(1)
					deadline = min(deadline*3/2, time.Second)
					continue
				}
				if tr.settle(o, resp, err, true) == acknowledged && attempt > 1 {
					var updated time.Time
					switch r := resp.(type) {
					case *pb.CommitResponse:
						updated = r.GetCommitment().GetUpdateTime().AsTime()
					case *pb.ReleaseResponse:
						updated = r.GetCommitment().GetUpdateTime().AsTime()
					}
					if updated.Before(sent) {
						appliedUnanswered.Add(1)
					}
				}
				return resp
			}
		}

		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				for i := range perCaller {
					id := fmt.Sprintf("timeout-%s-%d-%d", engineOf(database), g, i)
					resp, ok := untilAnswered(commitOp(envelope, id, amount)).(*pb.CommitResponse)
					if ok && resp != nil {
						untilAnswered(releaseOp(resp.GetCommitment().GetName(), id+"-r", release))
					}
				}
			})
		}
		wg.Wait()
		if timedOut.Load() == 0 {
			t.Error("no call timed out: the deadlines were not short enough to test anything")
		}

		f := figures{test: "client-side timeouts, retried with the same request id", engine: engineOf(database),
			faults: fmt.Sprintf("%d × DEADLINE_EXCEEDED", timedOut.Load())}
		f.resolved = tr.resolve(ctx, c)
		lost, dup, phantom, disc := checkExact(ctx, t, database, tr, nil)
		f.lost, f.duplicated, f.phantom, f.discrepancy = lost, dup, phantom, disc+verifyRPC(ctx, t, c, "at the end")
		if n := len(tr.commits); n != callers*perCaller {
			t.Errorf("%d awards acknowledged, want %d", n, callers*perCaller)
		}

		// One journal entry per request id, and none for anything else.
		l := openLedger(ctx, t, database)
		defer l.Close()
		perRequest := map[string]int{}
		page := ledger.Page{Size: 1000}
		for {
			entries, next, err := l.ListEntries(ctx, ledger.EntryFilter{EnvelopeID: "timeout-hot"}, page)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				perRequest[e.RequestID]++
			}
			if next == "" {
				break
			}
			page.Token = next
		}
		tr.mu.Lock()
		for id := range tr.commits {
			if n := perRequest[id]; n != 1 {
				t.Errorf("request %s has %d journal entries, want 1", id, n)
				f.duplicated += max(0, n-1)
			}
			if n := perRequest[id+"-r"]; tr.releases[id+"-r"] && n != 1 {
				t.Errorf("release %s-r has %d journal entries, want 1", id, n)
				f.duplicated += max(0, n-1)
			}
		}
		if want := 1 + len(tr.commits) + len(tr.releases); len(perRequest) != want {
			t.Errorf("the envelope's journal names %d request ids, want %d (its funding, the acknowledged awards and releases)",
				len(perRequest), want)
		}
		tr.mu.Unlock()

		f.acked, f.refused = tr.ackedCount(), tr.refusedCount()
		f.elapsed = time.Since(started)
		f.notes = fmt.Sprintf("%d callers × %d awards + releases on one envelope; %d answers were of an attempt that had timed out after the server applied it; %s",
			callers, perCaller, appliedUnanswered.Load(), attempts.failed())
		f.report(t)
	})
}
