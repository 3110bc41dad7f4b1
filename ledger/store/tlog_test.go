package store

import (
	"testing"

	"github.com/budgetledger/budgetledger/ledger/translog"
)

// TestLogRowsFollowTheTreesGrowth protects the rows of tlog_hashes (NodeRow, migration 23): as a
// tree grows leaf by leaf, every node that a leaf completes is kept in that leaf's row, level 0
// first and one level after the other, so that a row is written once, at the table's end, and
// holds rowHashes(leaf) hashes; and every node a proof may name is found in a row already written.
func TestLogRowsFollowTheTreesGrowth(t *testing.T) {
	r := translog.Factory.NewEmptyRange(0)
	nodes := 0
	for leaf := range int64(1000) {
		level := uint(0)
		err := r.Append(translog.Hasher.HashLeaf([]byte{byte(leaf), byte(leaf >> 8)}), func(id translog.NodeID, _ []byte) {
			nodes++
			row, err := NodeRow(id)
			if err != nil || row != leaf || id.Level != level {
				t.Fatalf("appending leaf %d completed node %+v, kept in row %d (%v) as its hash number %d", leaf, id, row, err, level)
			}
			level++
		})
		if err != nil {
			t.Fatal(err)
		}
		if int(level) != rowHashes(leaf) {
			t.Fatalf("leaf %d completed %d nodes, its row is made for %d", leaf, level, rowHashes(leaf))
		}
	}
	if nodes != 2*1000-6 { // 2n − popcount(n) complete nodes; 1000 has six ones
		t.Errorf("%d nodes completed by 1,000 leaves, want 1994", nodes)
	}
	// The nodes of a large tree's compact range are in rows of leaves it has, at a level the row holds.
	size := uint64(1<<40 + 12345)
	for _, id := range translog.RangeNodes(size) {
		row, err := NodeRow(id)
		if err != nil || row < 0 || uint64(row) >= size || int(id.Level) >= rowHashes(row) {
			t.Errorf("node %+v of a tree of %d leaves: row %d, %v", id, size, row, err)
		}
	}
	if got := rowHashes(1<<57 - 1); got != 58 || got*translog.HashSize != 1856 {
		t.Errorf("the last leaf's row holds %d hashes; the schema allows 1,856 bytes", got)
	}
}

// TestLogRowsRefuseWhatTheyCannotHold: a node past the 2^57 leaves the table's key can name is an
// error, never a row that wraps onto another leaf's.
func TestLogRowsRefuseWhatTheyCannotHold(t *testing.T) {
	for _, id := range []translog.NodeID{{Level: 0, Index: 1 << 57}, {Level: 57, Index: 0}, {Level: 10, Index: 1 << 47}, {Level: 63, Index: 1}} {
		if row, err := NodeRow(id); err == nil {
			t.Errorf("NodeRow(%+v) = %d, want an error", id, row)
		}
	}
	if row, err := NodeRow(translog.NodeID{Level: 0, Index: 1<<57 - 1}); err != nil || row != 1<<57-1 {
		t.Errorf("the last leaf's row = %d, %v", row, err)
	}
}
