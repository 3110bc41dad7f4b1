package ledger

import (
	"bytes"
	"context"
	"fmt"

	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// LogReport is what VerifyLog found.
type LogReport struct {
	// Entries is how many positioned journal entries were read; TreeSize the log's size.
	Entries, TreeSize int64
	// Checkpoints is how many kept checkpoints were checked.
	Checkpoints int
	// LegacyEffectiveUntil is the last position whose entry the log holds without its effective
	// time (logged by a release before migration 25; 0: none): the leaves of entries up to it were
	// checked against their created_at in that field.
	LegacyEffectiveUntil int64
	// Discrepancies name what does not match, by journal position.
	Discrepancies []string
}

// OK reports whether the journal and the log agree.
func (r LogReport) OK() bool { return len(r.Discrepancies) == 0 }

// VerifyLog rebuilds the transparency log's tree from the journal, in one snapshot, and checks
// it against the log: every entry's leaf against the stored leaf hash (an entry changed, deleted,
// inserted or moved is named by its position), the positions 1…N with no gap, and the root of
// every kept checkpoint (invariant 11: each checkpoint's tree is a prefix of the journal's). With
// vkey set, every checkpoint's signature is checked too.
func (l *Ledger) VerifyLog(ctx context.Context, vkey string) (LogReport, error) {
	var rep LogReport
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := l.db.ReadOnly(ctx, func(q store.Querier) error {
		rep = LogReport{}
		size, err := store.LogSize(ctx, q)
		if err != nil {
			return err
		}
		rep.TreeSize = size
		if rep.LegacyEffectiveUntil, err = store.LogLegacyBound(ctx, q); err != nil {
			return err
		}
		cps, err := store.Checkpoints(ctx, q)
		if err != nil {
			return err
		}
		rep.Checkpoints = len(cps)
		bad := func(format string, args ...any) {
			if len(rep.Discrepancies) < 1000 {
				rep.Discrepancies = append(rep.Discrepancies, fmt.Sprintf(format, args...))
			}
		}
		for _, c := range cps {
			// The note is what GetCheckpoint and the public page hand out: without the key, its
			// signature cannot be checked, but its size and root can still be held to the row's
			// (which the tree is checked against below).
			var body translog.Checkpoint
			if vkey != "" {
				body, err = translog.OpenCheckpoint([]byte(c.Note), vkey)
			} else {
				body, err = translog.UnverifiedCheckpoint([]byte(c.Note))
			}
			if err != nil {
				bad("checkpoint of tree size %d: %v", c.Size, err)
			} else if int64(body.Size) != c.Size || !bytes.Equal(body.Root, c.Root) {
				bad("checkpoint of tree size %d: its note says size %d and another root", c.Size, body.Size)
			}
		}
		b := translog.NewBuilder()
		next := 0 // the next checkpoint to check
		checkRoots := func() {
			for next < len(cps) && uint64(cps[next].Size) == b.Size() {
				if !bytes.Equal(b.Root(), cps[next].Root) {
					bad("checkpoint of tree size %d: the journal's first %d entries have another root: the journal was changed at or before position %d", cps[next].Size, cps[next].Size, cps[next].Size)
				}
				next++
			}
		}
		checkRoots()
		var after int64
		for {
			entries, err := store.EntriesBySequence(ctx, q, after, 2000)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				break
			}
			var ids []translog.NodeID
			for _, e := range entries {
				if e.Sequence <= size {
					ids = append(ids, translog.NodeID{Level: 0, Index: uint64(e.Sequence - 1)})
				}
			}
			stored, err := store.LogNodes(ctx, q)(ids)
			if err != nil {
				return err
			}
			for i, e := range entries {
				rep.Entries++
				if e.Sequence != after+1 {
					bad("journal positions %d to %d are missing (deleted or moved): the log's leaves %d to %d have no entry", after+1, e.Sequence-1, after, e.Sequence-2)
				}
				leaf := translog.EncodeLeaf(e)
				if i < len(stored) && !bytes.Equal(translog.Hasher.HashLeaf(leaf), stored[i]) {
					bad("journal entry at position %d (journalEntries/%s) does not match the log's leaf %d: it was changed, inserted or moved", e.Sequence, e.ID, e.Sequence-1)
				}
				after = e.Sequence
				for b.Size() < uint64(e.Sequence-1) { // a gap: keep the positions aligned
					b.Add(nil)
				}
				b.Add(leaf)
				checkRoots()
			}
		}
		if after < size {
			bad("the log has %d leaves but the journal's last position is %d: entries %d to %d were deleted", size, after, after+1, size)
		}
		for ; next < len(cps); next++ {
			bad("checkpoint of tree size %d is larger than the journal (%d entries)", cps[next].Size, after)
		}
		return nil
	})
	return rep, l.classify(ctx, err)
}
