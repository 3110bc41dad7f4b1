package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// The transparency log (issue 14, docs/transparency.md): the journal as an RFC 6962 Merkle tree,
// extended by the transaction that positions entries (sequencer.go), and signed checkpoints of
// it, made every LogConfig.CheckpointEvery entries or CheckpointInterval.

// LogConfig configures the transparency log.
type LogConfig struct {
	// Enabled keeps the Merkle tree of the journal up to date (it is on whenever Signer is set).
	Enabled bool
	// Signer signs checkpoints; without it the ledger serves no checkpoint and no proof
	// (LOG_DISABLED).
	Signer *translog.Signer
	// CheckpointEvery makes a checkpoint once the tree has grown by this many entries since the
	// last one (default 1000).
	CheckpointEvery int64
	// CheckpointInterval makes a checkpoint this often when the tree has grown (default 10s).
	CheckpointInterval time.Duration
}

// Reasons of the transparency log.
const (
	ReasonLogDisabled      = core.ReasonLogDisabled
	ReasonTreeSizeTooLarge = core.ReasonTreeSizeTooLarge
)

type tlogState struct {
	grown atomic.Int64 // leaves appended since the last checkpoint (approximate)
	wake  chan struct{}
	stop  chan struct{}
	done  sync.WaitGroup

	// moved is closed (and replaced) whenever journal entries may have been positioned.
	mu    sync.Mutex
	moved chan struct{}
}

func (l *Ledger) logEnabled() bool { return l.cfg.Log.Enabled || l.cfg.Log.Signer != nil }

func (l *Ledger) startLog() {
	if l.cfg.Log.CheckpointEvery <= 0 {
		l.cfg.Log.CheckpointEvery = 1000
	}
	if l.cfg.Log.CheckpointInterval <= 0 {
		l.cfg.Log.CheckpointInterval = 10 * time.Second
	}
	t := &tlogState{wake: make(chan struct{}, 1), stop: make(chan struct{}), moved: make(chan struct{})}
	l.tlog = t
	if l.cfg.Log.Signer == nil {
		return
	}
	t.done.Go(func() {
		tick := time.NewTicker(l.cfg.Log.CheckpointInterval)
		defer tick.Stop()
		for {
			// A failure (the database away) is tried again at the next wake or tick.
			_ = l.checkpoint(context.Background())
			select {
			case <-t.stop:
				return
			case <-t.wake:
			case <-tick.C:
			}
		}
	})
}

func (l *Ledger) stopLog() {
	if l.tlog != nil {
		select {
		case <-l.tlog.stop:
		default:
			close(l.tlog.stop)
		}
		l.tlog.done.Wait()
		if l.cfg.Log.Signer != nil {
			// A last checkpoint covers everything this process wrote (errors: the database
			// is away, and the next start signs it).
			if l.catchUp(context.Background(), false) == nil {
				_ = l.checkpoint(context.Background())
			}
		}
	}
}

// journalMoved wakes the journal's watchers (WatchJournal): entries may have been positioned.
func (l *Ledger) journalMoved() {
	if l.tlog == nil {
		return
	}
	l.tlog.mu.Lock()
	close(l.tlog.moved)
	l.tlog.moved = make(chan struct{})
	l.tlog.mu.Unlock()
}

// journalMovedChan is closed at the next journalMoved.
func (l *Ledger) journalMovedChan() <-chan struct{} {
	l.tlog.mu.Lock()
	defer l.tlog.mu.Unlock()
	return l.tlog.moved
}

// extendLog appends the newly positioned entries to the tree, in the positioning transaction. It
// returns how many it appended (store.MaxSequenceBatch at most).
func (l *Ledger) extendLog(ctx context.Context, q store.Querier) (int, error) {
	if !l.logEnabled() {
		return 0, nil
	}
	n, err := store.ExtendLog(ctx, q, store.MaxSequenceBatch)
	if err != nil || n == 0 {
		return n, err
	}
	if l.cfg.Log.Signer != nil && l.tlog.grown.Add(int64(n)) >= l.cfg.Log.CheckpointEvery {
		select {
		case l.tlog.wake <- struct{}{}:
		default:
		}
	}
	return n, nil
}

// checkpoint signs and keeps a checkpoint of the tree as it is, unless the last one has its size.
// The tree first takes in every positioned entry: it is behind the journal in a ledger given its
// key after entries were written, or where a process without the key positioned them.
func (l *Ledger) checkpoint(ctx context.Context) error {
	if err := l.catchUp(ctx, false); err != nil { // PostgreSQL and CockroachDB: under the sequencer's lock
		return err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	l.tlog.grown.Store(0)
	err := l.db.ReadWrite(ctx, func(q store.Querier) error {
		if err := l.sequenceInline(ctx, q); err != nil { // SQLite: in this write transaction
			return err
		}
		size, err := store.LogSize(ctx, q)
		if err != nil {
			return err
		}
		last, err := store.LatestCheckpoint(ctx, q)
		if err == nil && last.Size >= size {
			return nil
		}
		if err != nil && !errors.Is(err, store.ErrNoCheckpoint) {
			return err
		}
		root, err := translog.Root(uint64(size), store.LogNodes(ctx, q))
		if err != nil {
			return err
		}
		note, err := l.cfg.Log.Signer.Sign(uint64(size), root)
		if err != nil {
			return err
		}
		return store.InsertCheckpoint(ctx, q, store.Checkpoint{Size: size, Root: root, Note: string(note), CreatedAt: time.Now()})
	})
	return l.classify(ctx, err)
}

func (l *Ledger) logDisabled() error {
	if l.cfg.Log.Signer == nil {
		return &Error{Reason: ReasonLogDisabled, Message: "this ledger runs without a log key (ledgerd --log-key): it signs no checkpoint and serves no proof"}
	}
	return nil
}

// Checkpoint returns the latest signed checkpoint (a C2SP tlog-checkpoint signed note), making
// one first if none exists yet.
func (l *Ledger) Checkpoint(ctx context.Context) (string, error) {
	if err := l.logDisabled(); err != nil {
		return "", err
	}
	for range 2 {
		if err := l.catchUp(ctx, true); err != nil {
			return "", err
		}
		rctx, cancel := l.txContext(ctx)
		c, err := store.LatestCheckpoint(rctx, l.db.Reader())
		cancel()
		if err == nil {
			return c.Note, nil
		}
		if !errors.Is(err, store.ErrNoCheckpoint) {
			return "", l.classify(ctx, err)
		}
		if err := l.checkpoint(ctx); err != nil {
			return "", err
		}
	}
	return "", core.Internal("no checkpoint after making one")
}

// InclusionProof proves that the entry at position sequence is in the tree of treeSize leaves.
type InclusionProof struct {
	LeafIndex uint64
	TreeSize  uint64
	// Leaf is the entry's canonical encoding (translog.EncodeLeaf).
	Leaf []byte
	// Hashes is the audit path, from the leaf up.
	Hashes [][]byte
}

// latestTreeSize is the size of the latest checkpoint (0 when there is none).
func latestTreeSize(ctx context.Context, q store.Querier) (int64, error) {
	c, err := store.LatestCheckpoint(ctx, q)
	if errors.Is(err, store.ErrNoCheckpoint) {
		return 0, nil
	}
	return c.Size, err
}

func treeTooLarge(field string, asked, size int64) error {
	return &Error{Reason: ReasonTreeSizeTooLarge, Field: field,
		Message:  fmt.Sprintf("%s: the log has %d entries, not %d; ask again later or for a smaller tree", field, size, asked),
		Metadata: map[string]string{"log_size": strconv.FormatInt(size, 10), "requested": strconv.FormatInt(asked, 10)}}
}

// GetInclusionProof returns the inclusion proof of the entry at position sequence in the tree of
// treeSize leaves (0: the latest checkpoint's).
func (l *Ledger) GetInclusionProof(ctx context.Context, sequence, treeSize int64) (InclusionProof, error) {
	if err := l.logDisabled(); err != nil {
		return InclusionProof{}, err
	}
	if sequence < 1 {
		return InclusionProof{}, core.InvalidArgument("sequence", "must be a position of the journal, 1 or more")
	}
	if treeSize < 0 {
		return InclusionProof{}, core.InvalidArgument("tree_size", "must not be negative")
	}
	if err := l.catchUp(ctx, true); err != nil {
		return InclusionProof{}, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	var p InclusionProof
	err := l.db.ReadOnly(ctx, func(q store.Querier) error {
		size, err := store.LogSize(ctx, q)
		if err != nil {
			return err
		}
		if treeSize == 0 {
			if treeSize, err = latestTreeSize(ctx, q); err != nil {
				return err
			}
		}
		if treeSize > size {
			return treeTooLarge("tree_size", treeSize, size)
		}
		if sequence > treeSize {
			return core.InvalidArgument("sequence", "position %d is not in the tree of %d entries", sequence, treeSize)
		}
		entries, err := store.EntriesBySequence(ctx, q, sequence-1, 1)
		if err != nil {
			return err
		}
		if len(entries) != 1 || entries[0].Sequence != sequence {
			return core.Internal("the journal has no entry at position %d of the log", sequence)
		}
		hashes, err := translog.InclusionProof(uint64(sequence-1), uint64(treeSize), store.LogNodes(ctx, q))
		if err != nil {
			return err
		}
		p = InclusionProof{LeafIndex: uint64(sequence - 1), TreeSize: uint64(treeSize), Leaf: translog.EncodeLeaf(entries[0]), Hashes: hashes}
		return nil
	})
	return p, l.classify(ctx, err)
}

// GetConsistencyProof proves that the tree of fromSize leaves is a prefix of the tree of toSize
// leaves (0: the latest checkpoint's).
func (l *Ledger) GetConsistencyProof(ctx context.Context, fromSize, toSize int64) ([][]byte, error) {
	if err := l.logDisabled(); err != nil {
		return nil, err
	}
	if fromSize < 1 {
		return nil, core.InvalidArgument("from_size", "must be 1 or more")
	}
	if toSize < 0 {
		return nil, core.InvalidArgument("to_size", "must not be negative")
	}
	if err := l.catchUp(ctx, true); err != nil {
		return nil, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	var hashes [][]byte
	err := l.db.ReadOnly(ctx, func(q store.Querier) error {
		size, err := store.LogSize(ctx, q)
		if err != nil {
			return err
		}
		if toSize == 0 {
			if toSize, err = latestTreeSize(ctx, q); err != nil {
				return err
			}
		}
		if toSize > size {
			return treeTooLarge("to_size", toSize, size)
		}
		if fromSize > toSize {
			return core.InvalidArgument("from_size", "the tree of %d entries is larger than the tree of %d", fromSize, toSize)
		}
		hashes, err = translog.ConsistencyProof(uint64(fromSize), uint64(toSize), store.LogNodes(ctx, q))
		return err
	})
	return hashes, l.classify(ctx, err)
}

// LogLegacyBound is the last journal position whose leaf the log holds without the entry's
// effective time, written by a release before migration 25 (0: none; docs/transparency.md).
func (l *Ledger) LogLegacyBound(ctx context.Context) (int64, error) {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	bound, err := store.LogLegacyBound(ctx, l.db.Reader())
	return bound, l.classify(ctx, err)
}

// LatestCheckpointNote is the latest kept checkpoint's signed note, signed or not by this process
// (for exports and tools that run without the key); ErrNoCheckpoint's reason is LOG_DISABLED.
func (l *Ledger) LatestCheckpointNote(ctx context.Context) (string, error) {
	if err := l.catchUp(ctx, true); err != nil {
		return "", err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	c, err := store.LatestCheckpoint(ctx, l.db.Reader())
	if errors.Is(err, store.ErrNoCheckpoint) {
		return "", &Error{Reason: ReasonLogDisabled, Message: "the ledger has no signed checkpoint: run ledgerd with --log-key"}
	}
	return c.Note, l.classify(ctx, err)
}
