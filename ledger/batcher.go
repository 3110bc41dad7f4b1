package ledger

import (
	"context"
	"sync"
	"sync/atomic"
)

// Group commit. A fund has a handful of envelopes, so every award contends on the same few rows,
// and one transaction per request cannot pass the database's one-row ceiling. Requests for one
// envelope therefore queue up; one worker per busy envelope takes everything that has queued (no
// artificial wait: a lone request goes at once), decides the whole batch in one serializable
// transaction (decideBatch), and answers every caller. The database transaction still enforces
// every invariant: several processes, each with its own batcher, stay exact.

// Op states: a queued op may be abandoned by its caller until a worker takes it.
const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

type batcher struct {
	l        *Ledger
	maxBatch int

	mu      sync.Mutex
	queues  map[string]*opQueue
	closed  bool
	workers sync.WaitGroup
}

type opQueue struct {
	units []*unit
	ops   int // operations in units
}

func newBatcher(l *Ledger, maxBatch int) *batcher {
	return &batcher{l: l, maxBatch: maxBatch, queues: map[string]*opQueue{}}
}

// errShuttingDown refuses work submitted after Close began; the caller may retry elsewhere.
var errShuttingDown = &Error{Reason: ReasonStoreUnavailable, Message: "the ledger is shutting down; nothing was recorded; retry"}

// submit queues units for envelopeID and waits for their outcomes. If ctx ends before a worker
// takes a unit, the unit is dropped and never decided; once taken it is decided even if the
// caller has gone, and a retry with the same request id learns the outcome.
func (b *batcher) submit(ctx context.Context, envelopeID string, units []*unit) error {
	for _, u := range units {
		u.done = make(chan struct{})
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errShuttingDown
	}
	q, ok := b.queues[envelopeID]
	if !ok {
		q = &opQueue{}
		b.queues[envelopeID] = q
		b.workers.Add(1)
		go b.run(envelopeID, q)
	}
	q.units = append(q.units, units...)
	for _, u := range units {
		q.ops += len(u.ops)
	}
	depth := q.ops
	b.mu.Unlock()
	b.l.metrics.queueDepth(envelopeID, depth)

	for _, u := range units {
		select {
		case <-u.done:
			if u.err != nil {
				return u.err
			}
		case <-ctx.Done():
			for _, o := range units {
				o.state.CompareAndSwap(opQueued, opAbandoned)
			}
			return ctx.Err()
		}
	}
	return nil
}

// run is the worker of one envelope: it exits when it finds the queue empty, and the next submit
// starts a new one. Both happen under b.mu, so no op is ever left without a worker.
func (b *batcher) run(envelopeID string, q *opQueue) {
	defer b.workers.Done()
	for {
		b.mu.Lock()
		if len(q.units) == 0 {
			delete(b.queues, envelopeID)
			b.mu.Unlock()
			b.l.metrics.queueDepth(envelopeID, 0)
			return
		}
		// Take whole units, at least one, up to maxBatch operations.
		var taken []*unit
		n, ops := 0, 0
		for n < len(q.units) && (n == 0 || ops+len(q.units[n].ops) <= b.maxBatch) {
			u := q.units[n]
			ops += len(u.ops)
			n++
			if u.state.CompareAndSwap(opQueued, opTaken) {
				taken = append(taken, u)
			}
		}
		q.units = append(q.units[:0:0], q.units[n:]...)
		q.ops -= ops
		depth := q.ops
		b.mu.Unlock()
		b.l.metrics.queueDepth(envelopeID, depth)
		if len(taken) == 0 {
			continue
		}
		err := b.l.applyToEnvelope(context.Background(), envelopeID, taken)
		for _, u := range taken {
			u.err = err
			close(u.done)
		}
	}
}

// close refuses new work and waits until every queued op has been decided.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.workers.Wait()
}

// opState is a unit's place in the batcher.
type opState struct {
	state atomic.Int32
	done  chan struct{}
	err   error // a failure of the whole batch: nothing of it was recorded
}
