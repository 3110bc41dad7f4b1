package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// TestPanicFailsOnlyItsBatch protects "one request's failure stays its own": a panic while a
// batch is applied fails that batch's callers with ErrPanic, and the worker goes on serving the
// next batch.
func TestPanicFailsOnlyItsBatch(t *testing.T) {
	b := New(Config[string]{Queues: 1, MaxBatch: 1, Apply: func(_ context.Context, batch []string) error {
		if batch[0] == "boom" {
			panic("a decision panicked")
		}
		return nil
	}})
	defer b.Close()
	if err := b.Submit(t.Context(), "k", "boom"); !errors.Is(err, ErrPanic) {
		t.Fatalf("the panicking item: %v, want ErrPanic", err)
	}
	if err := b.Submit(t.Context(), "k", "fine"); err != nil {
		t.Fatalf("the next item: %v, want served", err)
	}
}

// TestBatchesTakeWhatQueued protects group commit's point: items queued while a batch is applied
// go together into the next batch, whole and in order, within MaxBatch.
func TestBatchesTakeWhatQueued(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var (
		mu      sync.Mutex
		batches [][]int
	)
	b := New(Config[int]{Queues: 1, MaxBatch: 100, Apply: func(_ context.Context, batch []int) error {
		mu.Lock()
		batches = append(batches, batch)
		mu.Unlock()
		if batch[0] == 0 {
			close(started)
			<-release
		}
		return nil
	}})
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Submit(context.Background(), "k", 0) })
	<-started
	for i := 1; i <= 10; i++ {
		wg.Go(func() { _ = b.Submit(context.Background(), "k", i) })
	}
	for {
		if size, _ := b.QueueState(0); size == 10 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	b.Close()
	if len(batches) != 2 || len(batches[1]) != 10 {
		t.Fatalf("batches %v, want [0] then the 10 queued together", batches)
	}
}

// TestAbandonedItemIsNeverApplied protects the promise that an item whose caller gave up before
// a worker took it is dropped, never applied.
func TestAbandonedItemIsNeverApplied(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var (
		mu      sync.Mutex
		applied []string
	)
	b := New(Config[string]{Queues: 1, MaxBatch: 100, Apply: func(_ context.Context, batch []string) error {
		mu.Lock()
		applied = append(applied, batch...)
		mu.Unlock()
		if batch[0] == "first" {
			close(started)
			<-release
		}
		return nil
	}})
	go func() { _ = b.Submit(context.Background(), "k", "first") }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Submit(ctx, "k", "abandoned") }()
	for {
		if size, _ := b.QueueState(0); size == 1 {
			break
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Submit: %v", err)
	}
	close(release)
	if err := b.Submit(context.Background(), "k", "later"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, v := range applied {
		if v == "abandoned" {
			t.Fatalf("applied %v: the abandoned item was applied", applied)
		}
	}
}
