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
	"github.com/budgetledger/budgetledger/ledger/core"
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

// blockWorker starts send, an operation on the one queue of l, and returns once the queue's worker
// has taken it (in a batch of its own) and the queue is empty: with the database's write lock
// held, what is queued from then on waits for the next batch. It first waits until the worker of
// any earlier request has gone: a worker that has just answered is still running, with an empty
// queue, until it finds the queue empty, and it would take send together with what comes next.
func blockWorker(t *testing.T, l *Ledger, send func() error) <-chan error {
	t.Helper()
	waitUntil(t, "the worker is idle", func() bool { ops, running := queueState(l); return !running && ops == 0 })
	done := make(chan error, 1)
	go func() { done <- send() }()
	waitUntil(t, "the worker took the first request", func() bool { ops, running := queueState(l); return running && ops == 0 })
	return done
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

	first := blockWorker(t, l, func() error { _, err := l.Commit(t.Context(), commitCmd("hot", "first", 10)); return err })

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

	first := blockWorker(t, l, func() error { _, err := l.Commit(t.Context(), commitCmd("hot", "first", 10)); return err })

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
	first := blockWorker(t, l, func() (err error) { results[0], err = l.Commit(t.Context(), commitCmd("hot", "a", 10)); return err })
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
	errs[0] = <-first
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

// TestGroupCommitDecidesHoldsAndPaymentsInOrder: holds, confirmations, cancellations, payments and
// closings queued behind a running transaction share the next batch with awards, and each is
// decided on what the ones before it left, as one transaction after another would: a second
// confirmation of a hold confirmed earlier in the batch is HOLD_NOT_HELD, a payment of more than
// an earlier one left is PAYMENT_EXCEEDS_REMAINING, a closing returns what the payment left. A
// refused request (a hold whose expire time has already passed: INVALID_ARGUMENT, recorded as in
// a transaction of its own) changes nothing for the others, and a retry is answered the same.
func TestGroupCommitDecidesHoldsAndPaymentsInOrder(t *testing.T) {
	t.Parallel()
	l, path := openBatched(t)
	ctx := t.Context()
	toConfirm := mustHold(t, l, holdCmd("hot", "a", 500)).Hold
	toCancel := mustHold(t, l, holdCmd("hot", "b", 700)).Hold
	toPay := mustCommit(t, l, "hot", "c", 1000).Commitment
	release := writeLock(t, path)
	before := l.Stats()

	first := blockWorker(t, l, func() error { _, err := l.Commit(ctx, commitCmd("hot", "first", 10)); return err })

	// Queue the requests one by one, so that the batch holds them in this order.
	type answer struct {
		res any
		err error
	}
	var answers []chan answer
	queue := func(send func() (any, error)) {
		ch := make(chan answer, 1)
		answers = append(answers, ch)
		go func() { res, err := send(); ch <- answer{res, err} }()
		waitUntil(t, fmt.Sprintf("request %d queued", len(answers)), func() bool {
			if len(ch) > 0 {
				a := <-ch
				t.Fatalf("request %d answered before its batch ran: %v, %v", len(answers)-1, a.res, a.err)
			}
			ops, _ := queueState(l)
			return ops == len(answers)
		})
	}
	confirm := func(amount int64) func() (any, error) {
		return func() (any, error) {
			return l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: toConfirm.ID, Amount: amount})
		}
	}
	pay := func(amount int64) func() (any, error) {
		return func() (any, error) {
			return l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: "service:test", CommitmentID: toPay.ID, Amount: amount})
		}
	}
	late := holdCmd("hot", "late", 50)
	late.ExpireTime = time.Now().Add(-time.Hour)
	queue(confirm(300)) // 0: accepted, 200 back to the envelope
	queue(confirm(0))   // 1: HOLD_NOT_HELD
	queue(func() (any, error) {
		return l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "service:test", HoldID: toCancel.ID, Reason: "withdrawn"})
	}) // 2: accepted
	queue(pay(400))                                                                    // 3: accepted
	queue(pay(1000))                                                                   // 4: PAYMENT_EXCEEDS_REMAINING (600 left)
	queue(func() (any, error) { return l.CreateHold(ctx, late) })                      // 5: INVALID_ARGUMENT, fails alone
	queue(func() (any, error) { return l.CreateHold(ctx, holdCmd("hot", "d", 2000)) }) // 6: accepted
	queue(func() (any, error) { return l.Commit(ctx, commitCmd("hot", "e", 20)) })     // 7: accepted
	queue(func() (any, error) {
		return l.CloseCommitment(ctx, CloseCommitment{RequestID: newRequestID(), Caller: "service:test", CommitmentID: toPay.ID, Reason: "done"})
	}) // 8: accepted, returns 600
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	got := make([]answer, len(answers))
	for i, ch := range answers {
		got[i] = <-ch
	}
	for i, a := range got {
		var want error
		switch i {
		case 1:
			want = ErrHoldNotHeld
		case 4:
			want = ErrPaymentExceedsRemaining
		case 5:
			if e, ok := core.AsError(a.err); !ok || e.Reason != ReasonInvalidArgument {
				t.Errorf("request %d: %v, want INVALID_ARGUMENT", i, a.err)
			}
			continue
		}
		if !errors.Is(a.err, want) && (want != nil || a.err != nil) {
			t.Errorf("request %d: %v, want %v", i, a.err, want)
		}
	}
	if c := got[0].res.(ConfirmHoldResult); c.Commitment.Amount != 300 || c.Hold.State != HoldConfirmed {
		t.Errorf("confirmation: %+v", c)
	}
	if c := got[8].res.(CloseCommitmentResult); c.Returned != 600 || c.Commitment.Paid != 400 {
		t.Errorf("closing after a payment of 400 out of 1000: %+v", c)
	}
	after := l.Stats()
	if n := after.Batches - before.Batches; n != 2 {
		t.Errorf("%d transactions, want 2 (the first award alone, then the 9 queued behind it)", n)
	}
	// allocation 1,000,000; committed: 1000 (c) + 10 + 300 (confirmed) + 20 - 600 (closed) = 730,
	// of which 400 paid; held: 2000 (d); hold b cancelled, hold a confirmed.
	env := mustGetEnvelope(t, l, "hot")
	if env.Committed != 730 || env.Paid != 400 || env.Held != 2000 || env.CommitmentCount != 4 {
		t.Errorf("envelope after the batch: %+v", env)
	}
	// Retries are answered as the first time.
	if _, err := l.CreateHold(ctx, late); !errors.Is(err, got[5].err) {
		t.Errorf("the refused hold sent again: %v, first %v", err, got[5].err)
	}
	if _, err := l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "service:test", HoldID: toCancel.ID, Reason: "again"}); !errors.Is(err, ErrHoldNotHeld) {
		t.Errorf("cancelling a cancelled hold: %v", err)
	}
	requireVerifyOK(t, l)
}

// TestGroupCommitOneRequestIDForASingleAndABulkCall protects invariant 5 and the rule that one
// request's failure stays its own, in a batch: a Commit and a BatchCommit sent under one request
// id, queued into the same batch beside an unrelated award, are two requests. The first decided is
// made, the other is refused REQUEST_ID_REUSED (as in a later batch, and again on a retry), and the
// unrelated award is made. Both recorded under one key failed the batch's write, and every request
// of the batch with it (TRANSACTION_CONFLICT): found by an outside probe.
func TestGroupCommitOneRequestIDForASingleAndABulkCall(t *testing.T) {
	t.Parallel()
	for _, bulkFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk first %v", bulkFirst), func(t *testing.T) {
			l, path := openBatched(t)
			ctx := t.Context()
			release := writeLock(t, path)
			before := l.Stats()
			first := blockWorker(t, l, func() error { _, err := l.Commit(ctx, commitCmd("hot", "first", 10)); return err })

			single := commitCmd("hot", "single", 100)
			bulk := BulkCommit{RequestID: single.RequestID, Caller: single.Caller, EnvelopeID: "hot",
				Items: []BulkItem{{Beneficiary: "a", Project: "p1", Amount: 200}, {Beneficiary: "b", Project: "p2", Amount: 300}}}
			other := commitCmd("hot", "other", 400)
			var singleErr, bulkErr, otherErr error
			var singleRes CommitResult
			var wg sync.WaitGroup
			queue := func(send func()) {
				ops, _ := queueState(l)
				wg.Go(send)
				waitUntil(t, "the request queued", func() bool { n, _ := queueState(l); return n > ops })
			}
			sendSingle := func() { singleRes, singleErr = l.Commit(ctx, single) }
			sendBulk := func() { _, bulkErr = l.BulkCommit(ctx, bulk) }
			if bulkFirst {
				queue(sendBulk)
				queue(sendSingle)
			} else {
				queue(sendSingle)
				queue(sendBulk)
			}
			queue(func() { _, otherErr = l.Commit(ctx, other) })
			release()
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if otherErr != nil {
				t.Errorf("the unrelated award: %v, want made", otherErr)
			}
			firstErr, secondErr := singleErr, bulkErr
			if bulkFirst {
				firstErr, secondErr = bulkErr, singleErr
			}
			if firstErr != nil || !errors.Is(secondErr, ErrRequestIDReused) {
				t.Fatalf("the first request: %v, want made; the second: %v, want REQUEST_ID_REUSED", firstErr, secondErr)
			}
			if got := l.Stats().Batches - before.Batches; got != 2 {
				t.Errorf("%d transactions, want 2 (the first alone, then the three queued behind it)", got)
			}
			// A retry of either is answered as the first time.
			if bulkFirst {
				if _, err := l.Commit(ctx, single); !errors.Is(err, ErrRequestIDReused) {
					t.Errorf("the single award again: %v, want REQUEST_ID_REUSED", err)
				}
			} else {
				again, err := l.Commit(ctx, single)
				if err != nil || again.Commitment.ID != singleRes.Commitment.ID {
					t.Errorf("the single award again: %v, %s; want its commitment %s", err, again.Commitment.ID, singleRes.Commitment.ID)
				}
				if _, err := l.BulkCommit(ctx, bulk); !errors.Is(err, ErrRequestIDReused) {
					t.Errorf("the bulk call again: %v, want REQUEST_ID_REUSED", err)
				}
			}
			want := int64(10 + 400 + 100)
			if bulkFirst {
				want = 10 + 400 + 500
			}
			if env := mustGetEnvelope(t, l, "hot"); env.Committed != want {
				t.Errorf("committed %d, want %d: only the first of the two requests, and the others", env.Committed, want)
			}
			requireVerifyOK(t, l)
		})
	}
}
