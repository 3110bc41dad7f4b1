package ledger

import (
	"context"
	"sync"
	"time"

	"github.com/budgetledger/budgetledger/ledger/store"
)

// The sequencer gives committed journal entries their positions (see store/sequence.go). On
// SQLite it runs inside every write transaction. On PostgreSQL and CockroachDB it runs after
// commits: a goroutine of each process is woken by its own commits and polls for other
// processes' (sequencePoll), and every journal read catches up first, so that a caller reads its
// own writes.

// sequencePoll is how often the sequencer looks for entries committed by other processes.
const sequencePoll = 200 * time.Millisecond

// sequenceSpacing is the least time between two runs of the sequencer woken by commits: each run
// is a transaction with a COMMIT of its own, so under load it positions many batches' entries at
// once instead of one batch's each time. Readers never wait for it: a journal read positions what
// has committed first.
const sequenceSpacing = 20 * time.Millisecond

type sequencer struct {
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

func (l *Ledger) startSequencer() {
	if l.db.InlineSequence() {
		return
	}
	s := &sequencer{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	l.seq = s
	s.done.Go(func() {
		t := time.NewTicker(sequencePoll)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-s.wake:
			case <-t.C:
			}
			// A failure (the database away) is tried again at the next wake or tick.
			_ = l.catchUp(context.Background(), false)
			select {
			case <-s.stop:
				return
			case <-time.After(sequenceSpacing):
			}
		}
	})
}

// poke tells the sequencer that entries were committed.
func (l *Ledger) poke() {
	if l.seq == nil {
		// Entries are positioned by the transactions that wrote them: they are there for
		// the journal's watchers.
		l.journalMoved()
		return
	}
	select {
	case l.seq.wake <- struct{}{}:
	default:
	}
}

func (l *Ledger) stopSequencer() {
	if l.seq != nil {
		l.seq.stopOnce.Do(func() { close(l.seq.stop) })
		l.seq.done.Wait()
	}
}

// catchUp positions every entry committed so far. With check set, it first looks whether any
// entry waits (a cheap indexed read), so that readers of a quiet journal write nothing.
func (l *Ledger) catchUp(ctx context.Context, check bool) error {
	if l.db.InlineSequence() {
		return nil
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	if check {
		waiting, err := store.Unsequenced(ctx, l.db.Reader())
		if err != nil || !waiting {
			return l.classify(ctx, err)
		}
	}
	for {
		var n, appended int
		err := l.db.Sequencing(ctx, func(q store.Querier) error {
			var err error
			if n, _, err = store.AssignSequences(ctx, q, l.db.ForUpdate(), store.MaxSequenceBatch); err != nil {
				return err
			}
			appended, err = l.extendLog(ctx, q)
			return err
		})
		if err != nil {
			return l.classify(ctx, err)
		}
		if n > 0 {
			l.journalMoved()
		}
		if n < store.MaxSequenceBatch && appended < store.MaxSequenceBatch {
			return nil
		}
	}
}

// positionWaiting positions, where the transactions that write entries position them (SQLite),
// the entries that wait for a position when the ledger opens: those of a ledger made before
// positions existed, or copied with entries the source had not positioned yet. Readers list only
// positioned entries, and no write may come to position them (docs/journal.md). Elsewhere the
// sequencer does it, and every journal read first.
func (l *Ledger) positionWaiting(ctx context.Context) error {
	if !l.db.InlineSequence() {
		return nil
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	waiting, err := store.Unsequenced(ctx, l.db.Reader())
	if err != nil || !waiting {
		return l.classify(ctx, err)
	}
	return l.classify(ctx, l.db.ReadWrite(ctx, func(q store.Querier) error { return l.sequenceInline(ctx, q) }))
}

// sequenceInline positions, inside a write transaction of an engine whose writers run one at a
// time, the entries the transaction wrote (and any left from before the journal had positions).
func (l *Ledger) sequenceInline(ctx context.Context, q store.Querier) error {
	if !l.db.InlineSequence() {
		return nil
	}
	for {
		n, _, err := store.AssignSequences(ctx, q, "", store.MaxSequenceBatch)
		if err != nil {
			return err
		}
		appended, err := l.extendLog(ctx, q)
		if err != nil {
			return err
		}
		if n < store.MaxSequenceBatch && appended < store.MaxSequenceBatch {
			return nil
		}
	}
}
