// Package groupcommit queues requests per key and hands each worker everything that has queued,
// so that many requests on one hot envelope are decided in one database transaction.
//
// A fund has a handful of envelopes, so every award contends on the same few rows, and one
// transaction per request cannot pass the database's one-row ceiling. Requests therefore queue
// up; a worker takes everything that has queued (no artificial wait: a lone request goes at
// once), hands the batch to the apply function (one serializable transaction), and answers every
// caller with its error.
//
// Keys are spread over a few queues by a hash, one worker each. One hot key is served by one
// worker, its requests batched together; many keys share a queue's batches, so spreading awards
// over envelopes does not shrink the batches into many small transactions. Workers of different
// queues touch disjoint keys and run in parallel.
//
// The package promises: every submitted item is either dropped before a worker took it (its
// caller's context ended first: it was never applied) or applied exactly once, in one batch; a
// panic in apply fails that batch's callers and the worker keeps serving; after Close begins,
// new items are refused with the shutdown error and every queued item is still applied. It
// knows nothing of ledgers: correctness of what apply decides is the database transaction's.
package groupcommit

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
)

// Item states: a queued item may be abandoned by its caller until a worker takes it.
const (
	queued int32 = iota
	taken
	abandoned
)

// Config tunes a Batcher.
type Config[T any] struct {
	// Queues is how many queues (and so concurrent batches) keys are spread over.
	Queues int
	// MaxBatch caps the total Size of the items one batch takes (at least one item always).
	MaxBatch int
	// Size is the weight of an item in MaxBatch (1 when nil).
	Size func(T) int
	// Apply decides a batch; its error is every item's error.
	Apply func(ctx context.Context, batch []T) error
	// Depth, when set, is told a queue's depth (the sum of its items' sizes) when it changes.
	Depth func(queue, depth int)
	// ErrClosed is returned to items submitted after Close began.
	ErrClosed error
}

// Batcher is a set of group-commit queues.
type Batcher[T any] struct {
	cfg    Config[T]
	queues []*queue[T]

	mu      sync.Mutex // guards every queue's items and running, and closed
	closed  bool
	workers sync.WaitGroup
}

type queue[T any] struct {
	index   int
	items   []*item[T]
	size    int // the sum of the items' sizes
	running bool
}

type item[T any] struct {
	v     T
	size  int
	state atomic.Int32
	done  chan struct{}
	err   error
}

// New returns a Batcher.
func New[T any](cfg Config[T]) *Batcher[T] {
	cfg.Queues = max(1, cfg.Queues)
	cfg.MaxBatch = max(1, cfg.MaxBatch)
	b := &Batcher[T]{cfg: cfg}
	for i := range cfg.Queues {
		b.queues = append(b.queues, &queue[T]{index: i})
	}
	return b
}

func (b *Batcher[T]) queueOf(key string) *queue[T] {
	h := fnv.New32a()
	h.Write([]byte(key))
	return b.queues[h.Sum32()%uint32(len(b.queues))]
}

// Submit queues v under key and waits for its batch's outcome. If ctx ends before a worker takes
// v, v is dropped and never applied; once taken it is applied even if the caller has gone (a
// retry with the same request id learns the outcome), and the caller's deadline still wins.
func (b *Batcher[T]) Submit(ctx context.Context, key string, v T) error {
	it := &item[T]{v: v, size: 1, done: make(chan struct{})}
	if b.cfg.Size != nil {
		it.size = b.cfg.Size(v)
	}
	q := b.queueOf(key)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return b.cfg.ErrClosed
	}
	q.items = append(q.items, it)
	q.size += it.size
	depth := q.size
	if !q.running {
		q.running = true
		b.workers.Add(1)
		go b.run(q)
	}
	b.mu.Unlock()
	b.depth(q.index, depth)

	select {
	case <-it.done:
		return it.err
	case <-ctx.Done():
		it.state.CompareAndSwap(queued, abandoned)
		return ctx.Err()
	}
}

func (b *Batcher[T]) depth(queue, depth int) {
	if b.cfg.Depth != nil {
		b.cfg.Depth(queue, depth)
	}
}

// run is the worker of one queue: it exits when it finds the queue empty, and the next Submit
// starts a new one. Both happen under b.mu, so no item is ever left without a worker.
func (b *Batcher[T]) run(q *queue[T]) {
	defer b.workers.Done()
	for {
		b.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			b.mu.Unlock()
			b.depth(q.index, 0)
			return
		}
		// Take whole items, at least one, up to MaxBatch.
		var batch []*item[T]
		n, size := 0, 0
		for n < len(q.items) && (n == 0 || size+q.items[n].size <= b.cfg.MaxBatch) {
			it := q.items[n]
			size += it.size
			n++
			if it.state.CompareAndSwap(queued, taken) {
				batch = append(batch, it)
			}
		}
		q.items = append(q.items[:0:0], q.items[n:]...)
		q.size -= size
		depth := q.size
		b.mu.Unlock()
		b.depth(q.index, depth)
		if len(batch) == 0 {
			continue
		}
		err := b.apply(batch)
		for _, it := range batch {
			it.err = err
			close(it.done)
		}
	}
}

// apply runs cfg.Apply on a batch; a panic fails the batch instead of the process.
func (b *Batcher[T]) apply(batch []*item[T]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	vs := make([]T, len(batch))
	for i, it := range batch {
		vs[i] = it.v
	}
	return b.cfg.Apply(context.Background(), vs)
}

// ErrPanic wraps a panic recovered from Apply.
var ErrPanic = fmt.Errorf("group commit: the batch panicked")

// Close refuses new items and waits until every queued item has been applied.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.workers.Wait()
}

// Closed reports whether Close has begun.
func (b *Batcher[T]) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// QueueState reports one queue's queued size and whether its worker runs (for tests and
// diagnosis).
func (b *Batcher[T]) QueueState(index int) (size int, running bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[index]
	return q.size, q.running
}
