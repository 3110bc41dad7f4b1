package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// The transparency log's storage (see ledger/translog and docs/transparency.md): tlog_nodes holds
// the hash of every complete perfect subtree, tlog_head the tree's size, tlog_checkpoints the
// signed checkpoints. ExtendLog runs in the transaction that positions entries, so the tree
// follows the journal's order exactly.

// EntriesBySequence returns up to limit positioned journal entries after position after, in
// order, with their postings.
func EntriesBySequence(ctx context.Context, q Querier, after int64, limit int) ([]core.Entry, error) {
	rs, err := q.Query(ctx, "SELECT e.id, e.seq, e.kind, e.currency, e.caller, e.request_id, e.memo, e.created_at, "+SelectEntryLegs+
		" FROM journal_entries e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2", after, limit)
	if err != nil {
		return nil, err
	}
	var (
		entries []core.Entry
		legged  []bool
	)
	for rs.Next() {
		var (
			e       core.Entry
			kind    string
			created int64
			legs    entryLegs
		)
		if err := rs.Scan(append([]any{&e.ID, &e.Sequence, &kind, &e.Currency, &e.Caller, &e.RequestID, &e.Memo, &created}, legs.targets()...)...); err != nil {
			rs.Close()
			return nil, err
		}
		e.Kind, e.CreatedAt = core.EntryKind(kind), fromMicros(created)
		legged = append(legged, legs.add(&e))
		entries = append(entries, e)
	}
	rs.Close()
	if err := rs.Err(); err != nil || len(entries) == 0 {
		return entries, err
	}
	return entries, readPostingRows(ctx, q, entries, legged)
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
		pos := make(map[translog.NodeID][]int, len(ids))
		var distinct []translog.NodeID
		for i, id := range ids {
			if _, seen := pos[id]; !seen {
				distinct = append(distinct, id)
			}
			pos[id] = append(pos[id], i)
		}
		for len(distinct) > 0 {
			chunk := distinct[:min(len(distinct), logNodesChunk)]
			distinct = distinct[len(chunk):]
			if err := readLogNodes(ctx, q, chunk, func(id translog.NodeID, hash []byte) {
				for _, i := range pos[id] {
					out[i] = hash
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

// logNodesChunk is how many nodes one statement of LogNodes names. Its condition is a chain of
// ORs, one level deeper each on SQLite, whose expressions may be at most 1,000 deep: VerifyLog
// reads 2,000 leaves at a time, and failed with "Expression tree is too large" on any SQLite
// ledger of more than about 1,000 entries with the log on.
const logNodesChunk = 250

// readLogNodes reads the hashes of nodes ids (each once) in one statement, and gives each found.
func readLogNodes(ctx context.Context, q Querier, ids []translog.NodeID, found func(translog.NodeID, []byte)) error {
	var b strings.Builder
	args := make([]any, 0, 2*len(ids))
	b.WriteString("SELECT level, idx, hash FROM tlog_nodes WHERE ")
	for _, id := range ids {
		if len(args) > 0 {
			b.WriteString(" OR ")
		}
		args = append(args, int64(id.Level), int64(id.Index))
		fmt.Fprintf(&b, "(level = $%d AND idx = $%d)", len(args)-1, len(args))
	}
	rs, err := q.Query(ctx, b.String(), args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var (
			level, idx int64
			h          string
		)
		if err := rs.Scan(&level, &idx, &h); err != nil {
			return err
		}
		hash, err := hex.DecodeString(h)
		if err != nil || len(hash) != translog.HashSize {
			return core.Internal("transparency log node (%d, %d) holds %q, not a hash", level, idx, h)
		}
		found(translog.NodeID{Level: uint(level), Index: uint64(idx)}, hash)
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
	var rows [][]any
	visit := func(id translog.NodeID, hash []byte) {
		rows = append(rows, []any{int64(id.Level), int64(id.Index), hex.EncodeToString(hash)})
	}
	for i, e := range entries {
		if e.Sequence != size+int64(i)+1 {
			return 0, core.Internal("the journal has position %d where the log expects %d", e.Sequence, size+int64(i)+1)
		}
		if err := r.Append(translog.LeafHash(e), visit); err != nil {
			return 0, err
		}
	}
	if err := bulkInsert(ctx, q, "tlog_nodes", []string{"level", "idx", "hash"}, rows, "",
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
