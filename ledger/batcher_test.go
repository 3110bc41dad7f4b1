package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// The group-commit tests hold SQLite's write lock from a second connection, so that the batcher's
// worker is stuck in its transaction while the test arranges the queue behind it; then they let
// go. Nothing sleeps: the test waits for states it can observe.

// writeLock takes SQLite's write lock on the ledger file at path, and returns its release.
func writeLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// waitUntil spins until cond holds, failing the test after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

// queueState reads the only queue of a one-queue batcher.
func queueState(l *Ledger) (ops int, running bool) {
	return l.batcher.QueueState(0)
}

func openBatched(t *testing.T) (*Ledger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(t.Context(), path, Config{TxTimeout: testdb.TxTimeout, BatchQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	mustCreateEnvelope(t, l, "hot", "", 1_000_000)
	return l, path
}

// TestGroupCommitBatchesQueuedRequests: requests that queue while a transaction runs are decided
// together in the next one (the point of group commit), each on its own, in order.
func TestGroupCommitBatchesQueuedRequests(t *testing.T) {
	t.Parallel()
	l, path := openBatched(t)
	release := writeLock(t, path)
	before := l.Stats()

	first := make(chan error, 1)
	go func() { _, err := l.Commit(t.Context(), commitCmd("hot", "first", 10)); first <- err }()
	waitUntil(t, "the worker took the first request", func() bool { ops, running := queueState(l); return running && ops == 0 })

	const queued = 63
	var wg sync.WaitGroup
	errs := make([]error, queued)
	for i := range queued {
		wg.Go(func() { _, errs[i] = l.Commit(t.Context(), commitCmd("hot", fmt.Sprint("b", i), 10)) })
	}
	waitUntil(t, "63 requests queued", func() bool { ops, _ := queueState(l); return ops == queued })
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	after := l.Stats()
	if got := after.Batches - before.Batches; got != 2 {
		t.Errorf("%d transactions decided 64 requests, want 2 (the first alone, then the 63 queued behind it)", got)
	}
	if got := after.Operations - before.Operations; got != 64 {
		t.Errorf("%d operations decided, want 64", got)
	}
	if env := mustGetEnvelope(t, l, "hot"); env.Committed != 640 || env.CommitmentCount != 64 {
		t.Errorf("envelope %+v after 64 awards of 10", env)
	}
	requireVerifyOK(t, l)
}

// TestGroupCommitDropsCancelledRequests: a request whose caller gives up before its batch starts
// is never decided (invariant 7: the failure the caller saw posted nothing), and its request id
// stays free.
func TestGroupCommitDropsCancelledRequests(t *testing.T) {
	t.Parallel()
	l, path := openBatched(t)
	release := writeLock(t, path)

	first := make(chan error, 1)
	go func() { _, err := l.Commit(t.Context(), commitCmd("hot", "first", 10)); first <- err }()
	waitUntil(t, "the worker took the first request", func() bool { ops, running := queueState(l); return running && ops == 0 })

	ctx, cancel := context.WithCancel(t.Context())
	abandoned := commitCmd("hot", "gives-up", 10)
	gaveUp := make(chan error, 1)
	go func() { _, err := l.Commit(ctx, abandoned); gaveUp <- err }()
	waitUntil(t, "the second request queued", func() bool { ops, _ := queueState(l); return ops == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request returned %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The queue is first in, first out: once a later request is decided, the abandoned one has
	// been passed over.
	mustCommit(t, l, "hot", "later", 10)
	priors, err := store.LoadRequests(t.Context(), l.db.Reader(), []string{abandoned.RequestID})
	if err != nil {
		t.Fatal(err)
	}
	if len(priors) != 0 {
		t.Errorf("the abandoned request was decided: %+v", priors)
	}
	if env := mustGetEnvelope(t, l, "hot"); env.CommitmentCount != 2 {
		t.Errorf("%d awards made, want 2 (the abandoned one dropped)", env.CommitmentCount)
	}
	// Its request id is still free: sent again, it is decided now.
	if _, err := l.Commit(t.Context(), abandoned); err != nil {
		t.Errorf("the abandoned request sent again: %v", err)
	}
	requireVerifyOK(t, l)
}

// TestGroupCommitShutdown: Close decides everything already queued, and refuses what comes
// after with a retryable STORE_UNAVAILABLE (nothing half-done, nothing acknowledged lost).
func TestGroupCommitShutdown(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(t.Context(), path, Config{TxTimeout: testdb.TxTimeout, BatchQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustCreateEnvelope(t, l, "hot", "", 1_000_000)
	release := writeLock(t, path)

	var wg sync.WaitGroup
	results := make([]CommitResult, 3)
	errs := make([]error, 3)
	wg.Go(func() { results[0], errs[0] = l.Commit(t.Context(), commitCmd("hot", "a", 10)) })
	waitUntil(t, "the worker took the first request", func() bool { ops, running := queueState(l); return running && ops == 0 })
	for i := 1; i < 3; i++ {
		wg.Go(func() { results[i], errs[i] = l.Commit(t.Context(), commitCmd("hot", fmt.Sprint("q", i), 10)) })
	}
	waitUntil(t, "two requests queued", func() bool { ops, _ := queueState(l); return ops == 2 })

	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	waitUntil(t, "Close began", l.batcher.Closed)
	if _, err := l.Commit(t.Context(), commitCmd("hot", "late", 10)); !errors.Is(err, ErrStoreUnavailable) {
		t.Errorf("a request during shutdown: %v, want STORE_UNAVAILABLE", err)
	}
	release()
	wg.Wait()
	<-closed
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued request %d: %v", i, err)
		}
	}

	reopened, err := Open(t.Context(), path, Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	for i, r := range results {
		if _, err := reopened.GetCommitment(t.Context(), r.Commitment.ID); err != nil {
			t.Errorf("acknowledged award %d lost in shutdown: %v", i, err)
		}
	}
	if env := mustGetEnvelope(t, reopened, "hot"); env.CommitmentCount != 3 {
		t.Errorf("%d awards after shutdown, want the 3 acknowledged", env.CommitmentCount)
	}
	requireVerifyOK(t, reopened)
}

// TestMovesBesideBatches: allocation moves between envelopes (one transaction locking two rows)
// run beside group-commit batches on the same envelopes and stay exact: no envelope below zero
// (invariant 2), balances equal the journal (4), the fund's total conserved.
func TestMovesBesideBatches(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		mustCreateEnvelope(t, l, "fund", "", 100_000)
		mustCreateEnvelope(t, l, "east", "fund", 30_000)
		mustCreateEnvelope(t, l, "west", "fund", 30_000)
		var (
			wg                  sync.WaitGroup
			mu                  sync.Mutex
			accepted, conflicts int
		)
		outcome := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrInsufficientFunds):
			case errors.Is(err, ErrTransactionConflict) && l.Engine() != "sqlite":
				conflicts++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		for c := range 16 {
			wg.Go(func() {
				for i := range 20 {
					_, err := l.Commit(t.Context(), commitCmd([]string{"east", "west"}[(c+i)%2], fmt.Sprint("b", c), 700))
					outcome(err)
				}
			})
		}
		moves := [][2]string{{"east", "west"}, {"west", "east"}, {"fund", "east"}, {"west", "fund"}}
		for m := range 4 {
			wg.Go(func() {
				for i := range 15 {
					mv := moves[(m+i)%len(moves)]
					_, err := l.MoveAllocation(t.Context(), MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
						SourceID: mv[0], DestinationID: mv[1], Amount: 1_500, Reason: "rebalancing"})
					outcome(err)
				}
			})
		}
		wg.Wait()
		rep := requireVerifyOK(t, l)
		fund := mustGetEnvelope(t, l, "fund")
		east, west := mustGetEnvelope(t, l, "east"), mustGetEnvelope(t, l, "west")
		if fund.Allocation != 100_000 || fund.ChildrenAllocated != east.Allocation+west.Allocation {
			t.Errorf("fund %+v; children hold %d", fund, east.Allocation+west.Allocation)
		}
		t.Logf("%s: %d accepted, %d told to retry, %d entries", l.Engine(), accepted, conflicts, rep.Entries)
	})
}
