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

type opQueue struct{ ops []*envelopeOp }

func newBatcher(l *Ledger, maxBatch int) *batcher {
	return &batcher{l: l, maxBatch: maxBatch, queues: map[string]*opQueue{}}
}

// errShuttingDown refuses work submitted after Close began; the caller may retry elsewhere.
var errShuttingDown = &Error{Reason: ReasonStoreUnavailable, Message: "the ledger is shutting down; nothing was recorded; retry"}

// submit queues ops for envelopeID and waits for their outcomes. If ctx ends before a worker takes
// an op, the op is dropped and never decided; once taken it is decided even if the caller has
// gone, and a retry with the same request id learns the outcome.
func (b *batcher) submit(ctx context.Context, envelopeID string, ops []*envelopeOp) error {
	for _, op := range ops {
		op.done = make(chan struct{})
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
	q.ops = append(q.ops, ops...)
	depth := len(q.ops)
	b.mu.Unlock()
	b.l.metrics.queueDepth(envelopeID, depth)

	for _, op := range ops {
		select {
		case <-op.done:
			if op.err != nil {
				return op.err
			}
		case <-ctx.Done():
			for _, o := range ops {
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
		if len(q.ops) == 0 {
			delete(b.queues, envelopeID)
			b.mu.Unlock()
			b.l.metrics.queueDepth(envelopeID, 0)
			return
		}
		n := min(len(q.ops), b.maxBatch)
		taken := make([]*envelopeOp, 0, n)
		for _, op := range q.ops[:n] {
			if op.state.CompareAndSwap(opQueued, opTaken) {
				taken = append(taken, op)
			}
		}
		q.ops = append(q.ops[:0:0], q.ops[n:]...)
		depth := len(q.ops)
		b.mu.Unlock()
		b.l.metrics.queueDepth(envelopeID, depth)
		if len(taken) == 0 {
			continue
		}
		err := b.l.applyToEnvelope(context.Background(), envelopeID, taken)
		for _, op := range taken {
			op.err = err
			close(op.done)
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

// opState is embedded in envelopeOp for the batcher.
type opState struct {
	state atomic.Int32
	done  chan struct{}
	err   error // a failure of the whole batch: nothing of it was recorded
}
