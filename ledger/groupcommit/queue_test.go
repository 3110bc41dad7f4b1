package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// TestPanicFailsOnlyItsBatch protects "one request's failure stays its own": a panic while a
// batch is applied fails that batch's callers with ErrPanic, and the worker goes on serving the
// next batch.
func TestPanicFailsOnlyItsBatch(t *testing.T) {
	b := New(Config[string]{Queues: 1, MaxBatch: 1, Apply: func(_ context.Context, batch Batch[string]) error {
		if batch.Items[0] == "boom" {
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
	b := New(Config[int]{Queues: 1, MaxBatch: 100, Apply: func(_ context.Context, batch Batch[int]) error {
		mu.Lock()
		batches = append(batches, batch.Items)
		mu.Unlock()
		if batch.Items[0] == 0 {
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
	b := New(Config[string]{Queues: 1, MaxBatch: 100, Apply: func(_ context.Context, batch Batch[string]) error {
		mu.Lock()
		applied = append(applied, batch.Items...)
		mu.Unlock()
		if batch.Items[0] == "first" {
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

// TestNextBatchPreparedWhileTheLastOneFinishes protects item 3 of issue 17 and the order it must
// keep: once a batch in Apply is Ready, what queued since is taken and prepared at once (the two
// overlap), its Prepared reaches its Apply, and Apply still runs one batch at a time, in order.
func TestNextBatchPreparedWhileTheLastOneFinishes(t *testing.T) {
	prepared, release := make(chan int, 2), make(chan struct{})
	var (
		mu       sync.Mutex
		applying int
		order    []string
	)
	b := New(Config[int]{Queues: 1, MaxBatch: 100,
		Prepare: func(_ context.Context, items []int) any {
			prepared <- items[0]
			return items[0] * 10
		},
		Apply: func(_ context.Context, batch Batch[int]) error {
			mu.Lock()
			applying++
			overlap := applying > 1
			order = append(order, fmt.Sprintf("apply %v prepared %v", batch.Items, batch.Prepared))
			mu.Unlock()
			if overlap {
				t.Errorf("two Apply calls of one queue at once")
			}
			if batch.Items[0] == 0 {
				batch.Ready()
				batch.Ready() // a second call does nothing
				<-release
			}
			mu.Lock()
			applying--
			mu.Unlock()
			return nil
		}})
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Submit(context.Background(), "k", 0) })
	if got := <-prepared; got != 0 {
		t.Fatalf("prepared %d first, want 0", got)
	}
	wg.Go(func() { _ = b.Submit(context.Background(), "k", 1) })
	// Batch 0 is held in Apply until release: batch 1 can only be prepared by overlapping it.
	if got := <-prepared; got != 1 {
		t.Fatalf("prepared %d second, want 1", got)
	}
	close(release)
	wg.Wait()
	b.Close()
	want := []string{"apply [0] prepared 0", "apply [1] prepared 10"}
	if !slices.Equal(order, want) {
		t.Fatalf("Apply saw %q, want %q", order, want)
	}
}

// TestPanicInPrepareFailsOnlyItsBatch: a panic while a batch is prepared fails that batch's
// callers with ErrPanic, without Apply, and the next batch is served.
func TestPanicInPrepareFailsOnlyItsBatch(t *testing.T) {
	var applied []string
	b := New(Config[string]{Queues: 1, MaxBatch: 1,
		Prepare: func(_ context.Context, items []string) any {
			if items[0] == "boom" {
				panic("a lookup panicked")
			}
			return nil
		},
		Apply: func(_ context.Context, batch Batch[string]) error {
			applied = append(applied, batch.Items...)
			return nil
		}})
	if err := b.Submit(t.Context(), "k", "boom"); !errors.Is(err, ErrPanic) {
		t.Fatalf("the item whose preparation panicked: %v, want ErrPanic", err)
	}
	if err := b.Submit(t.Context(), "k", "fine"); err != nil {
		t.Fatalf("the next item: %v, want served", err)
	}
	b.Close()
	if !slices.Equal(applied, []string{"fine"}) {
		t.Fatalf("applied %q, want only the next item", applied)
	}
}
