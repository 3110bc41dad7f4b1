package ledger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// The hold sweeper returns expired holds to their envelopes. Each process runs one goroutine
// (like the sequencer's): it looks for holds past their expire time with an indexed read outside
// any transaction, then expires them envelope by envelope, at most MaxSweepBatch holds per
// transaction, so that awards on the same envelope wait at most one short transaction between
// two of the sweeper's.
//
// Exactly once, through crashes, restarts and several processes: an expiry is one serializable
// transaction that locks the envelope, reads each hold again under the lock and expires only those
// still HELD and past their expire time, updates them guarded by their state (a trigger refuses
// any change of a hold in a final state), and records the expiry in the request log under a key of
// its own per hold (core.ExpiryRequestID), whose primary key refuses a second expiry. A crash
// before COMMIT leaves the hold HELD, to be expired by the next sweep of any process; a crash after
// leaves it EXPIRED, and no later sweep or confirmation touches it. A confirmation racing the
// expiry takes the same envelope lock: whichever comes second sees the first's outcome (the hold
// not HELD, or past its expire time).

// MaxSweepBatch is the most holds one expiry transaction returns.
const MaxSweepBatch = 500

// defaultSweepInterval is how often the sweeper looks for expired holds when nothing wakes it.
const defaultSweepInterval = 200 * time.Millisecond

type sweeper struct {
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
	// next is the earliest expire time of a hold created by this process and not yet swept
	// (zero: none known); the sweeper wakes for it.
	mu   sync.Mutex
	next time.Time
}

func (l *Ledger) startSweeper() {
	interval := l.cfg.HoldSweepInterval
	if interval < 0 || l.cfg.MustExist {
		// MustExist is for tools that only read (the verifier): they expire nothing.
		return
	}
	if interval == 0 {
		interval = defaultSweepInterval
	}
	s := &sweeper{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	l.sweep = s
	s.done.Go(func() {
		t := time.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-s.wake:
			case <-t.C:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			// A failure (the database away) is tried again at the next tick.
			_, _ = l.SweepExpiredHolds(ctx)
			cancel()
			wait := interval
			s.mu.Lock()
			if !s.next.IsZero() {
				if d := time.Until(s.next); d < wait {
					wait = max(d, time.Millisecond)
				}
				if !s.next.After(time.Now()) {
					s.next = time.Time{}
				}
			}
			s.mu.Unlock()
			t.Reset(wait)
		}
	})
}

// wakeSweeper tells the sweeper of a hold that expires at (zero: never).
func (l *Ledger) wakeSweeper(at time.Time) {
	if l.sweep == nil || at.IsZero() {
		return
	}
	s := l.sweep
	s.mu.Lock()
	sooner := s.next.IsZero() || at.Before(s.next)
	if sooner {
		s.next = at
	}
	s.mu.Unlock()
	if sooner {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (l *Ledger) stopSweeper() {
	if l.sweep != nil {
		l.sweep.stopOnce.Do(func() { close(l.sweep.stop) })
		l.sweep.done.Wait()
	}
}

// SweepExpiredHolds returns to their envelopes every hold past its expire time, in transactions
// of at most MaxSweepBatch holds on one envelope, and says how many it expired. Holds another
// process expires meanwhile are skipped. The sweeper calls it; tests and tools may too.
func (l *Ledger) SweepExpiredHolds(ctx context.Context) (int, error) {
	total := 0
	for {
		lookup, cancel := l.txContext(ctx)
		due, err := store.ExpiringHolds(lookup, l.db.Reader(), l.now(), MaxSweepBatch*4)
		err = l.classify(lookup, err)
		cancel()
		if err != nil {
			return total, err
		}
		if len(due) == 0 {
			return total, nil
		}
		byEnvelope := map[string][]string{}
		var order []string
		for _, h := range due {
			if _, ok := byEnvelope[h.EnvelopeID]; !ok {
				order = append(order, h.EnvelopeID)
			}
			byEnvelope[h.EnvelopeID] = append(byEnvelope[h.EnvelopeID], h.ID)
		}
		progress := 0
		for _, envID := range order {
			ids := byEnvelope[envID]
			for start := 0; start < len(ids); start += MaxSweepBatch {
				began := time.Now()
				n, err := l.expireOn(ctx, envID, ids[start:min(start+MaxSweepBatch, len(ids))])
				if err != nil {
					return total, err
				}
				total += n
				progress += n
				// Leave the envelope free as long as the expiry held it, so that awards are not
				// starved while thousands of holds expire: on SQLite a waiting writer only polls
				// for the lock, and on PostgreSQL an award that waited on the envelope's row is
				// aborted (40001) when the expiry commits, and retried after a backoff.
				select {
				case <-ctx.Done():
					return total, ctx.Err()
				case <-time.After(time.Since(began)):
				}
			}
		}
		if progress == 0 || len(due) < MaxSweepBatch*4 {
			// Nothing more is due, or another process expired what was found between the
			// lookup and the lock: its sweeper goes on, and this one looks again at its next tick.
			return total, nil
		}
	}
}

// expireOn expires, in one transaction under envelope envID's lock, those of holds ids still HELD
// and past their expire time.
func (l *Ledger) expireOn(ctx context.Context, envID string, ids []string) (n int, err error) {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	ctx, span := l.tracer.Start(ctx, "ledger.expire_holds")
	attempts := 0
	defer func() { endSpan(span, attempts, err) }()
	var changed []core.Envelope
	defer l.holdLocks.lock(envID)()
	for try := 0; ; try++ {
		err = l.db.ReadWrite(ctx, func(q store.Querier) error {
			attempts++
			n, changed = 0, nil
			locked, err := store.LockEnvelopes(ctx, q, l.db.ForUpdate(), []string{envID})
			if err != nil {
				return err
			}
			env, ok := locked[envID]
			if !ok {
				return core.Internal("holds %v name envelope %s, which does not exist", ids, envID)
			}
			holds, err := store.LoadHolds(ctx, q, ids)
			if err != nil {
				return err
			}
			list := make([]*core.Hold, 0, len(ids))
			for _, id := range ids {
				list = append(list, holds[id])
			}
			st := l.stampAfter(locked)
			expired, eff, err := core.DecideExpireHolds(st, env, list)
			if err != nil || expired == 0 {
				return err
			}
			if err := store.WriteEffects(ctx, q, eff, st.At); err != nil {
				return err
			}
			if err := l.sequenceInline(ctx, q); err != nil {
				return err
			}
			n, changed = expired, eff.Envelopes()
			return nil
		})
		// Another process recorded one of these expiries first: decide again, without it.
		if errors.Is(err, store.ErrRequestRecorded) && try < 3 {
			continue
		}
		break
	}
	if err != nil {
		return 0, l.classify(ctx, err)
	}
	if n > 0 {
		l.metrics.envelopes(changed)
		l.poke()
	}
	return n, nil
}
