package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/jackc/pgx/v5"
)

// TestRowsPeekedAfterABatchRetried protects when a batch reads its commitments' and holds' row
// addresses before its transaction (peeking). The peek costs a statement per batch and pays off
// only where batches are written beside one another, so: with more than one group-commit queue,
// always; with one, not until a batch's transaction had to be retried (how another process
// writing the same database shows), then for peekAfterRetry.
//
// The retry is a real one, on PostgreSQL: a transaction of the test updates the envelope's row
// and keeps it locked while an award's batch waits for the lock; when the test commits,
// PostgreSQL fails the batch with 40001 (its snapshot predates that commit), and the ledger
// retries it.
func TestRowsPeekedAfterABatchRetried(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := newPostgresDB(t)
	open := func(queues int) *Ledger {
		l, err := Open(ctx, db.dsn, Config{TxTimeout: testdb.TxTimeout, BatchQueues: queues})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return l
	}
	l := open(1)
	mustCreateEnvelope(t, l, "fund", "", 1_000_000)
	mustCommit(t, l, "fund", "siren:217500016", 1_000)
	if l.peeking(time.Now()) {
		t.Fatal("one queue, no batch retried: the batches peek")
	}

	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE envelopes SET updated_at = updated_at WHERE id = 'fund'"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Commit(ctx, commitCmd("fund", "siren:217500017", 2_000))
		done <- err
	}()
	waitForLockWaiter(t, db, done)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the award whose batch was retried: %v", err)
	}
	if !l.peeking(time.Now()) {
		t.Fatal("one queue, a batch just retried: the batches do not peek")
	}
	if l.peeking(time.Now().Add(peekAfterRetry)) {
		t.Fatalf("one queue, the last retry %v ago: the batches still peek", peekAfterRetry)
	}
	if !open(4).peeking(time.Now()) {
		t.Fatal("four queues: the batches do not peek")
	}
}
