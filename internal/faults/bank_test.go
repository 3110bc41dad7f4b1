//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestBank is Jepsen's bank test on a fund and its four child envelopes: concurrent
// MoveAllocation between siblings, awards and releases on the fund and the children, while readers
// check, at every read (ListEnvelopes of the fund's children, then GetEnvelope of the fund), that
// the fund's money is conserved across the tree and that no envelope is below zero. ledgerd is
// killed (SIGKILL) and restarted three times along the way. At the end every child's allocation
// is its first one plus the acknowledged moves, and the ledger holds exactly what was
// acknowledged.
func TestBank(t *testing.T) {
	const (
		movers, moves       = 4, 80 // moves per mover
		awarders, awards    = 3, 60 // awards per awarder; every second one half released
		readers             = 2
		kills               = 3
		fundAllocation      = 1_000_000
		childAllocation     = 200_000
		minAcknowledgedOps  = movers*moves/2 + awarders*awards/2
		acknowledgedPerKill = minAcknowledgedOps / (kills + 1)
	)
	testdb.Each(t, func(t *testing.T, database string) {
		started := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		d := startLedgerd(t, database)
		c, attempts := dial(t, d.addr, 30, 20*time.Millisecond)
		fund := "envelopes/bank-fund"
		if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "bank-fund", Allocation: fundAllocation,
			RequestID: "create-bank-fund"}); err != nil {
			t.Fatal(err)
		}
		initial := map[string]int64{fund: fundAllocation}
		var children []string
		for _, id := range []string{"bank-a", "bank-b", "bank-c", "bank-d"} {
			if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: id, Parent: fund,
				Allocation: childAllocation, RequestID: "create-" + id}); err != nil {
				t.Fatal(err)
			}
			children = append(children, "envelopes/"+id)
			initial["envelopes/"+id] = childAllocation
		}
		childrenTotal := int64(len(children)) * childAllocation

		tr := newTracker(t)
		prefix := "bank-" + engineOf(database)
		var writers, readersWG sync.WaitGroup
		for m := range movers {
			writers.Go(func() {
				for i := range moves {
					src := pick(children)
					dst := pick(children)
					for dst == src {
						dst = pick(children)
					}
					tr.do(ctx, c, moveOp(src, dst, fmt.Sprintf("%s-m%d-%d", prefix, m, i), 1+rand.Int64N(30_000)))
				}
			})
		}
		awardable := append([]string{fund}, children...)
		for a := range awarders {
			writers.Go(func() {
				for i := range awards {
					id := fmt.Sprintf("%s-a%d-%d", prefix, a, i)
					amount := 2 + rand.Int64N(8_000)
					resp, out := tr.do(ctx, c, commitOp(pick(awardable), id, amount))
					if out == acknowledged && i%2 == 0 {
						tr.do(ctx, c, releaseOp(resp.(*pb.CommitResponse).GetCommitment().GetName(), id+"-r", amount/2))
					}
				}
			})
		}

		// Readers, until the writers are done.
		var reads, readFailures, violations atomic.Int64
		writersDone := make(chan struct{})
		check := func(children []*pb.Envelope, f *pb.Envelope) {
			var sum int64
			bad := func(format string, args ...any) {
				if violations.Add(1) <= 10 {
					t.Errorf("read %d: "+format, append([]any{reads.Load()}, args...)...)
				}
			}
			for _, e := range children {
				sum += e.GetAllocation()
				if e.GetAvailable() < 0 || e.GetCommitted() < 0 || e.GetAllocatedToChildren() < 0 {
					bad("%s below zero: %v", e.GetName(), e)
				}
				if e.GetAllocation() != e.GetCommitted()+e.GetAvailable()+e.GetAllocatedToChildren() {
					bad("%s: allocation %d != committed %d + available %d + allocated to children %d", e.GetName(),
						e.GetAllocation(), e.GetCommitted(), e.GetAvailable(), e.GetAllocatedToChildren())
				}
			}
			if len(children) != 4 {
				bad("ListEnvelopes returned %d children of the fund, want 4", len(children))
			}
			if sum != childrenTotal {
				bad("the children's allocations sum to %d, want %d: money created or destroyed by moves", sum, childrenTotal)
			}
			if f.GetAllocation() != fundAllocation || f.GetAllocation() != f.GetAvailable()+f.GetCommitted()+sum {
				bad("fund: allocation %d != available %d + committed %d + children's allocations %d (want allocation %d)",
					f.GetAllocation(), f.GetAvailable(), f.GetCommitted(), sum, int64(fundAllocation))
			}
			if f.GetAllocatedToChildren() != sum {
				bad("fund: allocated to children %d, the children's allocations sum to %d", f.GetAllocatedToChildren(), sum)
			}
			if f.GetAvailable() < 0 || f.GetCommitted() < 0 {
				bad("fund below zero: %v", f)
			}
		}
		for range readers {
			readersWG.Go(func() {
				for n := 0; n < 20_000; n++ {
					select {
					case <-writersDone:
						return
					case <-ctx.Done():
						return
					default:
					}
					var kids []*pb.Envelope
					var err error
					for e, lerr := range c.ListEnvelopes(ctx, client.EnvelopeFilter{Parent: fund, PageSize: 100}) {
						if lerr != nil {
							err = lerr
							break
						}
						kids = append(kids, e)
					}
					var f *pb.Envelope
					if err == nil {
						f, err = c.GetEnvelope(ctx, fund)
					}
					if err != nil {
						readFailures.Add(1) // a read that could not be made during a kill checks nothing
						continue
					}
					reads.Add(1)
					check(kids, f)
				}
			})
		}

		var once sync.Once
		endLoad := func() {
			writers.Wait()
			once.Do(func() { close(writersDone) })
			readersWG.Wait()
		}
		defer func() { cancel(); endLoad() }() // on a failure: at once

		// The nemesis: SIGKILL and restart, spread over the load.
		for k := 1; k <= kills; k++ {
			if err := tr.acked.waitFor(ctx, k*acknowledgedPerKill, time.Minute); err != nil {
				t.Fatalf("before kill %d: %v", k, err)
			}
			d.kill()
			d.start()
		}
		endLoad()
		if reads.Load() < 50 {
			t.Errorf("only %d reads checked the tree", reads.Load())
		}

		f := figures{test: "bank: moves between siblings + awards + releases", engine: engineOf(database),
			faults: fmt.Sprintf("%d × SIGKILL + restart", kills)}
		f.resolved = tr.resolve(ctx, c)
		lost, dup, phantom, disc := checkExact(ctx, t, database, tr, initial)
		f.lost, f.duplicated, f.phantom, f.discrepancy = lost, dup, phantom, disc+verifyRPC(ctx, t, c, "at the end")
		tr.mu.Lock()
		nMoves := len(tr.moves)
		tr.mu.Unlock()
		f.acked, f.refused = tr.ackedCount(), tr.refusedCount()
		f.elapsed = time.Since(started)
		f.notes = fmt.Sprintf("%d reads checked the tree, %d conservation violations, %d reads failed during kills; %d moves acknowledged; %s",
			reads.Load(), violations.Load(), readFailures.Load(), nMoves, attempts.failed())
		f.report(t)
	})
}
