package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// The transparency log's storage (see ledger/translog and docs/transparency.md): tlog_hashes holds
// the hash of every complete perfect subtree (a row per leaf: NodeRow), tlog_head the tree's size, tlog_checkpoints the
// signed checkpoints. ExtendLog runs in the transaction that positions entries, so the tree
// follows the journal's order exactly.

// EntriesBySequence returns up to limit positioned journal entries after position after, in
// order, with their postings, as the transparency log holds them: with their effective time
// (EffectiveAt, the leaf's effective_at), except the entries at positions up to the log's
// legacy_effective_until (migration 25), logged by releases that left it out (their leaves hold
// created_at there): those come with EffectiveAt zero, as they were logged.
func EntriesBySequence(ctx context.Context, q Querier, after int64, limit int) ([]core.Entry, error) {
	rs, err := q.Query(ctx, "SELECT e.id, e.seq, e.kind, e.currency, e.caller, e.request_id, e.memo, e.created_at, "+
		"CASE WHEN e.seq <= h.legacy_effective_until THEN NULL ELSE e.effective_at END, "+SelectEntryLegs+
		" FROM journal_entries e CROSS JOIN tlog_head h WHERE h.id = 1 AND e.seq > $1 ORDER BY e.seq LIMIT $2", after, limit)
	if err != nil {
		return nil, err
	}
	var (
		entries []core.Entry
		legged  []bool
	)
	for rs.Next() {
		var (
			e         core.Entry
			kind      string
			created   int64
			effective *int64
			legs      entryLegs
		)
		if err := rs.Scan(append([]any{&e.ID, &e.Sequence, &kind, &e.Currency, &e.Caller, &e.RequestID, &e.Memo, &created, &effective}, legs.targets()...)...); err != nil {
			rs.Close()
			return nil, err
		}
		e.Kind, e.CreatedAt = core.EntryKind(kind), fromMicros(created)
		if effective != nil {
			e.EffectiveAt = fromMicros(*effective)
		}
		legged = append(legged, legs.add(&e))
		entries = append(entries, e)
	}
	rs.Close()
	if err := rs.Err(); err != nil || len(entries) == 0 {
		return entries, err
	}
	return entries, readPostingRows(ctx, q, entries, legged)
}

// LogLegacyBound is the last position whose entry the log holds without its effective time
// (migration 25: 0 when there is none; see EntriesBySequence).
func LogLegacyBound(ctx context.Context, q Querier) (int64, error) {
	var bound int64
	err := q.QueryRow(ctx, "SELECT legacy_effective_until FROM tlog_head WHERE id = 1").Scan(&bound)
	return bound, err
}

// LogSize is the number of leaves of the transparency log.
func LogSize(ctx context.Context, q Querier) (int64, error) {
	var size int64
	err := q.QueryRow(ctx, "SELECT size FROM tlog_head WHERE id = 1").Scan(&size)
	return size, err
}

// LogNodes reads stored node hashes (a translog.ReadNodes over q).
func LogNodes(ctx context.Context, q Querier) translog.ReadNodes {
	return func(ids []translog.NodeID) ([][]byte, error) {
		out := make([][]byte, len(ids))
		rows := make(map[int64][]int, len(ids)) // the ids kept in each row
		var leaves []int64
		for i, id := range ids {
			leaf, err := NodeRow(id)
			if err != nil {
				return nil, err
			}
			if _, seen := rows[leaf]; !seen {
				leaves = append(leaves, leaf)
			}
			rows[leaf] = append(rows[leaf], i)
		}
		for len(leaves) > 0 {
			chunk := leaves[:min(len(leaves), logNodesChunk)]
			leaves = leaves[len(chunk):]
			if err := readLogRows(ctx, q, chunk, func(leaf int64, hashes []byte) {
				for _, i := range rows[leaf] {
					level := int(ids[i].Level)
					out[i] = hashes[level*translog.HashSize : (level+1)*translog.HashSize]
				}
			}); err != nil {
				return nil, err
			}
		}
		for i, h := range out {
			if h == nil {
				return nil, core.Internal("transparency log node (%d, %d) is missing", ids[i].Level, ids[i].Index)
			}
		}
		return out, nil
	}
}

// logNodesChunk is how many rows of tlog_hashes one statement of LogNodes reads (VerifyLog reads
// 2,000 leaves at a time).
const logNodesChunk = 500

// NodeRow is the row of tlog_hashes (migration 23) that keeps node id's hash: one row per leaf m,
// holding the hashes of the nodes that leaf completes, level 0 (the leaf's own) first. Node
// (level l, index i) covers leaves [i·2^l, (i+1)·2^l), so it is complete once its last leaf
// m = (i+1)·2^l − 1 is appended; leaf m completes the nodes of levels 0 to t, t the number of
// trailing ones of m, and its row holds 32·(t+1) bytes, the hash of level l at byte 32·l. An
// award is one row, written at the table's end, where tlog_nodes (by level and index, as text)
// took two rows written at as many places in its index as the tree has levels. The tree may hold
// up to 2^57 leaves.
func NodeRow(id translog.NodeID) (int64, error) {
	if id.Level >= 57 || id.Index >= 1<<(57-id.Level) {
		return 0, core.Internal("transparency log node (%d, %d) is beyond the 2^57 leaves the store keeps", id.Level, id.Index)
	}
	return int64((id.Index+1)<<id.Level - 1), nil
}

// rowHashes is how many hashes the row of leaf holds: one per level up to its trailing ones.
func rowHashes(leaf int64) int { return 1 + bits.TrailingZeros64(uint64(leaf)+1) }

// readLogRows reads the rows of tlog_hashes of leaves (each once) in one statement, and gives
// each found, checked to hold as many hashes as its leaf completes.
func readLogRows(ctx context.Context, q Querier, leaves []int64, found func(int64, []byte)) error {
	cond, args := keysIn(q, "leaf", 0, leaves)
	rs, err := q.Query(ctx, "SELECT leaf, hashes FROM tlog_hashes WHERE "+cond, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var (
			leaf   int64
			hashes []byte
		)
		if err := rs.Scan(&leaf, &hashes); err != nil {
			return err
		}
		if leaf < 0 || len(hashes) != rowHashes(leaf)*translog.HashSize {
			return core.Internal("transparency log row of leaf %d holds %d bytes, not the hashes of the nodes it completes", leaf, len(hashes))
		}
		found(leaf, hashes)
	}
	return rs.Err()
}

// ExtendLog appends to the transparency log, in q's transaction, up to limit journal entries
// positioned after its last leaf (entry n is leaf n−1), and stores the nodes this completes. It
// must run where positions are assigned (it relies on the journal_head lock, or on SQLite's one
// writer, to be the only one extending). It returns how many leaves it appended.
func ExtendLog(ctx context.Context, q Querier, limit int) (int, error) {
	size, err := LogSize(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("reading the transparency log's size: %w", err)
	}
	entries, err := EntriesBySequence(ctx, q, size, limit)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	r, err := translog.LoadRange(uint64(size), LogNodes(ctx, q))
	if err != nil {
		return 0, err
	}
	// Each leaf, then the nodes it completes, level by level: the row of that leaf.
	var (
		rows      = make([][]any, 0, len(entries))
		leaf      int64
		hashes    []byte
		misplaced error
	)
	visit := func(id translog.NodeID, hash []byte) {
		if row, err := NodeRow(id); (err != nil || row != leaf || int(id.Level) != len(hashes)/translog.HashSize) && misplaced == nil {
			misplaced = core.Internal("appending leaf %d completed node (%d, %d), not of its row", leaf, id.Level, id.Index)
		}
		hashes = append(hashes, hash...)
	}
	for i, e := range entries {
		if e.Sequence != size+int64(i)+1 {
			return 0, core.Internal("the journal has position %d where the log expects %d", e.Sequence, size+int64(i)+1)
		}
		leaf = size + int64(i)
		hashes = make([]byte, 0, rowHashes(leaf)*translog.HashSize)
		if err := r.Append(translog.LeafHash(e), visit); err != nil {
			return 0, err
		}
		if misplaced == nil && len(hashes) != rowHashes(leaf)*translog.HashSize {
			misplaced = core.Internal("appending leaf %d completed %d bytes of nodes, not its row's %d", leaf, len(hashes), rowHashes(leaf)*translog.HashSize)
		}
		if misplaced != nil {
			return 0, misplaced
		}
		rows = append(rows, []any{leaf, hashes})
	}
	if err := bulkInsert(ctx, q, "tlog_hashes", []string{"leaf", "hashes"}, rows, "",
		core.Internal("a transparency log node was not inserted")); err != nil {
		return 0, err
	}
	newSize := size + int64(len(entries))
	grown := Expect(1, func(int64) error { return core.Internal("the transparency log grew under its writer") })
	if err := q.Write(ctx, "UPDATE tlog_head SET size = $1 WHERE id = 1 AND size = $2", []any{newSize, size}, grown); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// Checkpoint is a signed checkpoint as kept.
type Checkpoint struct {
	Size      int64
	Root      []byte
	Note      string
	CreatedAt time.Time
}

// InsertCheckpoint keeps a signed checkpoint (a second one of the same size is ignored).
func InsertCheckpoint(ctx context.Context, q Querier, c Checkpoint) error {
	_, err := q.Exec(ctx, "INSERT INTO tlog_checkpoints (size, root_hash, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
		c.Size, hex.EncodeToString(c.Root), c.Note, micros(c.CreatedAt))
	return err
}

// ErrNoCheckpoint says that no checkpoint has been signed.
var ErrNoCheckpoint = errors.New("no checkpoint has been signed")

// LatestCheckpoint is the checkpoint of the largest tree (ErrNoCheckpoint when there is none).
func LatestCheckpoint(ctx context.Context, q Querier) (Checkpoint, error) {
	cs, err := scanCheckpoints(ctx, q, "SELECT size, root_hash, note, created_at FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
	if err != nil {
		return Checkpoint{}, err
	}
	if len(cs) == 0 {
		return Checkpoint{}, ErrNoCheckpoint
	}
	return cs[0], nil
}

// Checkpoints lists every kept checkpoint, smallest tree first.
func Checkpoints(ctx context.Context, q Querier) ([]Checkpoint, error) {
	return scanCheckpoints(ctx, q, "SELECT size, root_hash, note, created_at FROM tlog_checkpoints ORDER BY size")
}

func scanCheckpoints(ctx context.Context, q Querier, query string) ([]Checkpoint, error) {
	rs, err := q.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []Checkpoint
	for rs.Next() {
		var (
			c       Checkpoint
			root    string
			created int64
		)
		if err := rs.Scan(&c.Size, &root, &c.Note, &created); err != nil {
			return nil, err
		}
		if c.Root, err = hex.DecodeString(root); err != nil {
			return nil, core.Internal("checkpoint of size %d has root %q, not hex", c.Size, root)
		}
		c.CreatedAt = fromMicros(created)
		out = append(out, c)
	}
	return out, rs.Err()
}
