package translog

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// The tree's stored nodes. The store keeps the hash of every perfect subtree of the log once it
// is complete (level 0: the leaf hashes; level l, index i: the root of leaves [i·2^l, (i+1)·2^l)),
// so that a root or a proof reads O(log n) nodes, never the journal.

// Factory makes the log's compact ranges.
var Factory = &compact.RangeFactory{Hash: Hasher.HashChildren}

// NodeID names a node of the tree (level, index).
type NodeID = compact.NodeID

// ReadNodes returns the stored hashes of the given nodes, in order.
type ReadNodes func(ids []NodeID) ([][]byte, error)

// RangeNodes are the nodes whose hashes make the compact range of the tree of size leaves: what
// appending to it and its root need.
func RangeNodes(size uint64) []NodeID { return compact.RangeNodes(0, size, nil) }

// LoadRange is the compact range of the tree of size leaves, from its stored nodes.
func LoadRange(size uint64, read ReadNodes) (*compact.Range, error) {
	hashes, err := read(RangeNodes(size))
	if err != nil {
		return nil, err
	}
	return Factory.NewRange(0, size, hashes)
}

// Root is the root hash of the tree of size leaves (the hash of the empty string when size is 0).
func Root(size uint64, read ReadNodes) ([]byte, error) {
	if size == 0 {
		return Hasher.EmptyRoot(), nil
	}
	r, err := LoadRange(size, read)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// InclusionProof is the audit path of leaf index in the tree of size leaves.
func InclusionProof(index, size uint64, read ReadNodes) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return fetch(nodes, read)
}

// ConsistencyProof proves that the tree of size1 leaves is a prefix of the tree of size2.
func ConsistencyProof(size1, size2 uint64, read ReadNodes) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return fetch(nodes, read)
}

func fetch(nodes proof.Nodes, read ReadNodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := read(nodes.IDs)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(nodes.IDs) {
		return nil, fmt.Errorf("read %d node hashes of %d", len(hashes), len(nodes.IDs))
	}
	return nodes.Rehash(hashes, Hasher.HashChildren)
}

// VerifyInclusion checks that leaf (canonical bytes) is leaf index of the tree of size leaves
// whose root is root.
func VerifyInclusion(leaf []byte, index, size uint64, hashes [][]byte, root []byte) error {
	return proof.VerifyInclusion(Hasher, index, size, Hasher.HashLeaf(leaf), hashes, root)
}

// VerifyConsistency checks that the tree of size1 leaves with root1 is a prefix of the tree of
// size2 leaves with root2.
func VerifyConsistency(size1, size2 uint64, hashes [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(Hasher, size1, size2, hashes, root1, root2)
}

// Builder rebuilds a tree from its leaves, in order (for verifiers).
type Builder struct{ r *compact.Range }

// NewBuilder starts an empty tree.
func NewBuilder() *Builder { return &Builder{r: Factory.NewEmptyRange(0)} }

// Add appends the leaf with the given canonical bytes.
func (b *Builder) Add(leaf []byte) { _ = b.r.Append(Hasher.HashLeaf(leaf), nil) }

// Size is the number of leaves added.
func (b *Builder) Size() uint64 { return b.r.End() }

// Root is the root hash of the leaves added so far.
func (b *Builder) Root() []byte {
	if b.r.End() == 0 {
		return Hasher.EmptyRoot()
	}
	root, _ := b.r.GetRootHash(nil)
	return root
}
