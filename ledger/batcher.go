package ledger

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
)

// Group commit. A fund has a handful of envelopes, so every award contends on the same few rows,
// and one transaction per request cannot pass the database's one-row ceiling. Requests therefore
// queue up; a worker takes everything that has queued (no artificial wait: a lone request goes at
// once), decides the whole batch in one serializable transaction (decideBatch), and answers every
// caller.
//
// Envelopes are spread over a few queues by a hash of their id, one worker each. One hot envelope
// is served by one worker, its requests batched together; many envelopes share a queue's batches,
// so spreading awards over envelopes does not shrink the batches into many small transactions.
// Workers of different queues touch disjoint envelopes and run in parallel. The database
// transaction still enforces every invariant: several processes, each with its own batcher, stay
// exact.

// Unit states: a queued unit may be abandoned by its caller until a worker takes it.
const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

type batcher struct {
	l        *Ledger
	maxBatch int
	queues   []*opQueue

	mu      sync.Mutex // guards every queue's units and running, and closed
	closed  bool
	workers sync.WaitGroup
}

type opQueue struct {
	index   int
	units   []*unit
	ops     int // operations in units
	running bool
}

func newBatcher(l *Ledger, queues, maxBatch int) *batcher {
	b := &batcher{l: l, maxBatch: maxBatch}
	for i := range queues {
		b.queues = append(b.queues, &opQueue{index: i})
	}
	return b
}

// errShuttingDown refuses work submitted after Close began; the caller may retry elsewhere.
var errShuttingDown = &Error{Reason: ReasonStoreUnavailable, Message: "the ledger is shutting down; nothing was recorded; retry"}

func (b *batcher) queueOf(envelopeID string) *opQueue {
	h := fnv.New32a()
	h.Write([]byte(envelopeID))
	return b.queues[h.Sum32()%uint32(len(b.queues))]
}

// submit queues u and waits for its outcome. If ctx ends before a worker takes u, u is dropped and
// never decided; once taken it is decided even if the caller has gone, and a retry with the same
// request id learns the outcome.
func (b *batcher) submit(ctx context.Context, u *unit) error {
	u.done = make(chan struct{})
	q := b.queueOf(u.envelopeID)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errShuttingDown
	}
	q.units = append(q.units, u)
	q.ops += len(u.ops)
	depth := q.ops
	if !q.running {
		q.running = true
		b.workers.Add(1)
		go b.run(q)
	}
	b.mu.Unlock()
	b.l.metrics.queueDepth(q.index, depth)

	select {
	case <-u.done:
		return u.err
	case <-ctx.Done():
		if u.state.CompareAndSwap(opQueued, opAbandoned) {
			return ctx.Err()
		}
		// Taken already: it will be decided; the caller's deadline still wins.
		return ctx.Err()
	}
}

// run is the worker of one queue: it exits when it finds the queue empty, and the next submit
// starts a new one. Both happen under b.mu, so no unit is ever left without a worker.
func (b *batcher) run(q *opQueue) {
	defer b.workers.Done()
	for {
		b.mu.Lock()
		if len(q.units) == 0 {
			q.running = false
			b.mu.Unlock()
			b.l.metrics.queueDepth(q.index, 0)
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
		b.l.metrics.queueDepth(q.index, depth)
		if len(taken) == 0 {
			continue
		}
		err := b.l.applyBatch(context.Background(), taken)
		for _, u := range taken {
			u.err = err
			close(u.done)
		}
	}
}

// close refuses new work and waits until every queued unit has been decided.
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
