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
// own writes. On PostgreSQL most write transactions position their own entries (those that find
// no other positioner at work): the sequencer then finds nothing to do, and with the
// transparency log off it does not even begin a transaction.

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
			_ = l.catchUp(context.Background())
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
	// Entries positioned by the transaction that wrote them (always on SQLite, mostly on
	// PostgreSQL) are there for the journal's watchers now; the others are once the sequencer
	// has positioned them, and it tells them again.
	l.journalMoved()
	if l.seq == nil {
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

// catchUp positions every entry committed so far and, with the transparency log on, appends to
// the log what has been positioned. It first looks whether anything waits (cheap reads): on
// PostgreSQL most entries are positioned by their own transactions, and readers of a quiet
// journal write nothing. When no entry waits, only the log is extended, without taking the
// positioners' lock (store.AssignSequences), so that write transactions go on positioning their
// own entries meanwhile.
func (l *Ledger) catchUp(ctx context.Context) error {
	if l.db.InlineSequence() {
		return nil
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	waiting, err := store.Unsequenced(ctx, l.db.Reader())
	lagging := false
	if err == nil && !waiting && l.logEnabled() {
		lagging, err = store.LogLags(ctx, l.db.Reader())
	}
	if err != nil || (!waiting && !lagging) {
		return l.classify(ctx, err)
	}
	for {
		var n, appended int
		err := l.db.Sequencing(ctx, func(q store.Querier) error {
			n, appended = 0, 0
			var err error
			if waiting {
				if n, _, err = store.AssignSequences(ctx, q, l.db.ForUpdate(), store.MaxSequenceBatch); err != nil {
					return err
				}
			}
			appended, err = l.extendLog(ctx, q, l.db.ForUpdate())
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
		waiting = n == store.MaxSequenceBatch
	}
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
		appended, err := l.extendLog(ctx, q, "")
		if err != nil {
			return err
		}
		if n < store.MaxSequenceBatch && appended < store.MaxSequenceBatch {
			return nil
		}
	}
}
