//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestHoldsSIGKILL kills ledgerd with SIGKILL again and again while holds expire and are confirmed
// and cancelled concurrently. Two ledgerd processes share the database (so two sweepers race for
// the same expired holds) and are killed in turn, each restarted at once. Clients retry through
// the Go client with their request ids. At the end, once every expire time has passed and the
// sweepers have caught up: every hold is in exactly one final state, the one its acknowledged
// operations say (an acknowledged confirmation: CONFIRMED with that commitment; an acknowledged
// cancellation: CANCELLED; a confirmation refused with HOLD_EXPIRED: EXPIRED), the envelope holds
// nothing and lost nothing (allocation = available + committed), and Verify — which checks that
// every hold returned or committed its amount exactly once (invariant 20) — finds nothing.
func TestHoldsSIGKILL(t *testing.T) {
	const (
		kills   = 8
		workers = 6
	)
	testdb.Each(t, func(t *testing.T, database string) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		procs := []*ledgerd{startLedgerd(t, database), startLedgerd(t, database)}
		clients := make([]*client.Client, len(procs))
		for i, d := range procs {
			clients[i], _ = dial(t, d.addr, 30, 20*time.Millisecond)
		}
		const allocation = 1_000_000_000
		if _, err := clients[0].CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "holds", Allocation: allocation}); err != nil {
			t.Fatal(err)
		}

		type fate struct {
			confirmed string // the commitment of an acknowledged confirmation
			cancelled bool
			expired   bool // a confirmation or cancellation refused with HOLD_EXPIRED
		}
		var (
			mu      sync.Mutex
			fates   = map[string]*fate{}
			latest  time.Time
			settled = newCounter()
		)
		work := func(ctx context.Context, w int) {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				c := clients[r.IntN(len(clients))]
				expire := time.Now().Add(time.Duration(50+r.IntN(600)) * time.Millisecond)
				// Noted before the call: a call cancelled when the run stops may still be
				// recorded by its batch (its answer is lost), but never after its expire time,
				// when a new hold is refused.
				mu.Lock()
				if expire.After(latest) {
					latest = expire
				}
				mu.Unlock()
				held, err := c.CreateHold(ctx, client.CreateHoldParams{Envelope: "envelopes/holds", Beneficiary: "b",
					Project: fmt.Sprintf("p%d", w), Amount: int64(1 + r.IntN(10_000)), ExpireTime: expire})
				if errors.Is(err, client.ErrInvalidArgument) {
					// A retry after a kill came after the expire time asked: refused, and
					// recorded so (nothing held).
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("CreateHold: %v", err)
					}
					return
				}
				name := held.GetHold().GetName()
				mu.Lock()
				fates[name] = &fate{}
				mu.Unlock()
				// Confirm (at a lower amount, sometimes) or cancel about when the hold expires, so
				// that decisions race the sweepers.
				time.Sleep(time.Duration(r.IntN(700)) * time.Millisecond)
				c = clients[r.IntN(len(clients))]
				var (
					commitment string
					cancelled  bool
				)
				if r.IntN(3) > 0 {
					var resp *pb.ConfirmHoldResponse
					resp, err = c.ConfirmHold(ctx, client.ConfirmHoldParams{Hold: name, Amount: held.GetHold().GetAmount() / int64(1+r.IntN(2))})
					commitment = resp.GetCommitment().GetName()
				} else {
					_, err = c.CancelHold(ctx, client.CancelHoldParams{Hold: name, Reason: "withdrawn"})
					cancelled = err == nil
				}
				mu.Lock()
				f := fates[name]
				switch {
				case err == nil:
					f.confirmed, f.cancelled = commitment, cancelled
					settled.add()
				case errors.Is(err, client.ErrHoldExpired):
					f.expired = true
					settled.add()
				case ctx.Err() == nil:
					t.Errorf("deciding %s: %v", name, err)
				}
				mu.Unlock()
			}
		}
		workCtx, stopWork := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { work(workCtx, w) })
		}
		for k := range kills {
			// Let some holds be decided between two kills.
			if err := settled.waitFor(ctx, settled.value()+15, time.Minute); err != nil {
				t.Fatalf("before kill %d: %v", k+1, err)
			}
			d := procs[k%len(procs)]
			d.kill()
			d.start()
		}
		stopWork()
		wg.Wait()

		// Every expire time has passed; the sweepers return what is left.
		mu.Lock()
		until := latest
		mu.Unlock()
		time.Sleep(time.Until(until))
		listAll := func() []*pb.Hold {
			var holds []*pb.Hold
			token := ""
			for {
				page, next, err := clients[0].ListHolds(ctx, "envelopes/holds", pb.HoldState_HOLD_STATE_UNSPECIFIED, 1000, token)
				if err != nil {
					t.Fatal(err)
				}
				holds = append(holds, page...)
				if token = next; token == "" {
					return holds
				}
			}
		}
		// The envelope is read between two listings of its holds that agree, none HELD: its
		// figures are then those of that set of holds (a hold a late batch recorded, or one the
		// sweeper ended, in between would show in the second listing).
		var (
			holds []*pb.Hold
			env   *pb.Envelope
		)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the holds were still HELD or changing a minute after their expire times: %d HELD", countHeld(holds))
			}
			if holds = listAll(); countHeld(holds) > 0 {
				continue
			}
			var err error
			if env, err = clients[0].GetEnvelope(ctx, "envelopes/holds"); err != nil {
				t.Fatal(err)
			}
			if sameHolds(holds, listAll()) {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		counts := map[pb.HoldState]int{}
		for _, h := range holds {
			counts[h.GetState()]++
			f := fates[h.GetName()]
			if f == nil {
				continue // created by a call whose answer a kill lost; its final state is checked by Verify
			}
			want := pb.HoldState_HOLD_STATE_UNSPECIFIED
			switch {
			case f.confirmed != "":
				want = pb.HoldState_HOLD_STATE_CONFIRMED
				if h.GetCommitment() != f.confirmed {
					t.Errorf("%s: confirmed as %s, but it names %s", h.GetName(), f.confirmed, h.GetCommitment())
				}
			case f.cancelled:
				want = pb.HoldState_HOLD_STATE_CANCELLED
			case f.expired:
				want = pb.HoldState_HOLD_STATE_EXPIRED
			}
			if want != pb.HoldState_HOLD_STATE_UNSPECIFIED && h.GetState() != want {
				t.Errorf("%s: %s, but its acknowledged outcome says %s", h.GetName(), h.GetState(), want)
			}
		}
		for name := range fates {
			found := false
			for _, h := range holds {
				found = found || h.GetName() == name
			}
			if !found {
				t.Errorf("acknowledged hold %s is missing", name)
			}
		}
		if env.GetHeld() != 0 || env.GetAllocation() != allocation || env.GetAvailable()+env.GetCommitted() != allocation {
			t.Errorf("envelope after the run: %v", env)
		}
		verifyRPC(ctx, t, clients[0], "at the end")
		t.Logf("%s: %d holds (%v), %d kills of two ledgerd processes", engineOf(database), len(holds), counts, kills)
	})
}

// countHeld counts the holds in state HELD.
func countHeld(holds []*pb.Hold) int {
	n := 0
	for _, h := range holds {
		if h.GetState() == pb.HoldState_HOLD_STATE_HELD {
			n++
		}
	}
	return n
}

// sameHolds reports whether two listings name the same holds in the same states.
func sameHolds(a, b []*pb.Hold) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetName() != b[i].GetName() || a[i].GetState() != b[i].GetState() {
			return false
		}
	}
	return true
}
