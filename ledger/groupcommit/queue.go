// Package groupcommit queues requests per key and hands each worker everything that has queued,
// so that many requests on one hot envelope are decided in one database transaction.
//
// A fund has a handful of envelopes, so every award contends on the same few rows, and one
// transaction per request cannot pass the database's one-row ceiling. Requests therefore queue
// up; a worker takes everything that has queued (no artificial wait: a lone request goes at
// once), hands the batch to the apply function (one serializable transaction), and answers every
// caller with its error.
//
// A batch may be prepared (Config.Prepare: the ledger looks up its request log there, which needs
// no lock) while the queue's previous batch is still applied: once that batch says it has reached
// its last step (Batch.Ready: its writes and COMMIT), the worker takes what has queued since and
// prepares it, so the two overlap. Apply itself runs one batch at a time per queue, in order.
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
	// Prepare, when set, does the part of a batch's work that needs no lock, before Apply, and
	// may run while the queue's previous batch is still in Apply (after its Batch.Ready). What it
	// returns is the batch's Prepared. A panic in Prepare fails the batch as one in Apply does.
	Prepare func(ctx context.Context, items []T) any
	// Apply decides a batch; its error is every item's error.
	Apply func(ctx context.Context, batch Batch[T]) error
	// Depth, when set, is told a queue's depth (the sum of its items' sizes) when it changes.
	Depth func(queue, depth int)
	// ErrClosed is returned to items submitted after Close began.
	ErrClosed error
}

// Batch is what Apply receives: the items, what Prepare returned for them, and the hook that lets
// the queue's next batch be prepared.
type Batch[T any] struct {
	Items    []T
	Prepared any // Prepare's result; nil without Prepare
	ready    func()
}

// Ready tells the worker that this batch has reached its last step (the ledger calls it when its
// writes and COMMIT begin): the worker then takes what has queued and prepares it while this
// batch finishes. Without a call, the next batch is taken once Apply returns. Calling it more
// than once, or on a Batch not made by a Batcher, does nothing.
func (b Batch[T]) Ready() {
	if b.ready != nil {
		b.ready()
	}
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
	queued  chan struct{} // has a value when items were queued since the worker last looked
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
		b.queues = append(b.queues, &queue[T]{index: i, queued: make(chan struct{}, 1)})
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
	} else {
		select {
		case q.queued <- struct{}{}:
		default:
		}
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

// run is the worker of one queue: it exits when it finds the queue empty with no batch of its
// own in Apply, and the next Submit starts a new one. Both happen under b.mu, so no item is ever
// left without a worker. A batch is applied in a goroutine of its own (flight), so that the
// worker can take and prepare the next one once it is Ready; the worker starts the next Apply
// only after the previous one has answered its callers.
func (b *Batcher[T]) run(q *queue[T]) {
	defer b.workers.Done()
	var prev *flight // the batch in Apply, nil when none
	for {
		batch, ok := b.take(q, prev == nil)
		if !ok {
			return
		}
		if batch == nil { // the queue is empty, a batch is still in Apply: wait for either
			select {
			case <-prev.done:
				prev = nil
			case <-q.queued:
			}
			continue
		}
		prepared, perr := b.prepare(batch)
		if prev != nil {
			<-prev.done
		}
		prev = b.start(batch, prepared, perr)
		<-prev.ready
		// Overlap only when a batch as large as this one has queued: taking fewer items early
		// would only cut the queue into smaller batches.
		for want := len(batch); ; {
			b.mu.Lock()
			enough := q.size >= want
			b.mu.Unlock()
			if enough {
				break
			}
			select {
			case <-prev.done:
			case <-q.queued:
				continue
			}
			break
		}
	}
}

// take takes whole queued items, at least one, up to MaxBatch, skipping the abandoned ones. On an
// empty queue it returns nil, and also false when mayExit, after marking the queue as having no
// worker.
func (b *Batcher[T]) take(q *queue[T], mayExit bool) ([]*item[T], bool) {
	for {
		b.mu.Lock()
		if len(q.items) == 0 {
			if mayExit {
				q.running = false
			}
			b.mu.Unlock()
			if mayExit {
				b.depth(q.index, 0)
			}
			return nil, !mayExit
		}
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
		if len(batch) > 0 {
			return batch, true
		}
	}
}

// flight is a batch in Apply: ready is closed when it calls Batch.Ready or when Apply returns,
// done once its callers have their outcome.
type flight struct{ ready, done chan struct{} }

func (b *Batcher[T]) start(batch []*item[T], prepared any, perr error) *flight {
	f := &flight{ready: make(chan struct{}), done: make(chan struct{})}
	ready := sync.OnceFunc(func() { close(f.ready) })
	go func() {
		defer close(f.done)
		err := perr
		if err == nil {
			err = b.apply(batch, prepared, ready)
		}
		ready()
		for _, it := range batch {
			it.err = err
			close(it.done)
		}
	}()
	return f
}

func values[T any](batch []*item[T]) []T {
	vs := make([]T, len(batch))
	for i, it := range batch {
		vs[i] = it.v
	}
	return vs
}

// prepare runs cfg.Prepare on a batch, if set; a panic becomes the batch's error.
func (b *Batcher[T]) prepare(batch []*item[T]) (prepared any, err error) {
	if b.cfg.Prepare == nil {
		return nil, nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return b.cfg.Prepare(context.Background(), values(batch)), nil
}

// apply runs cfg.Apply on a batch; a panic fails the batch instead of the process.
func (b *Batcher[T]) apply(batch []*item[T], prepared any, ready func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return b.cfg.Apply(context.Background(), Batch[T]{Items: values(batch), Prepared: prepared, ready: ready})
}

// ErrPanic wraps a panic recovered from Prepare or Apply.
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
