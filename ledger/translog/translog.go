// Package translog is the journal as a transparency log: an RFC 6962 Merkle tree whose leaf n−1 is
// journal entry n (the journal's sequence, see docs/journal.md), and signed checkpoints of it in
// the C2SP tlog-checkpoint format. It is pure (no SQL, no clock): the store keeps the tree's node
// hashes, the ledger signs checkpoints, and verifiers outside the server use the same functions.
//
// The canonical byte encoding of a leaf is EncodeLeaf, documented byte for byte in
// docs/transparency.md; it is the one place that decides what a leaf holds.
package translog

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/transparency-dev/merkle/rfc6962"
)

// LeafVersion is the version of the canonical leaf encoding, its first byte. A change of what a
// leaf holds (a new field of journal entries, such as an effective time) is a new version: leaves
// already in the log keep the version they were written with, which a verifier reads from their
// first byte.
const LeafVersion = 1

// Hasher is the RFC 6962 hasher of the log: leaf SHA-256(0x00 ‖ leaf), node
// SHA-256(0x01 ‖ left ‖ right).
var Hasher = rfc6962.DefaultHasher

// HashSize is the size of every hash of the log.
const HashSize = sha256.Size

// EncodeLeaf is the canonical encoding of journal entry e, the log's leaf e.Sequence − 1:
//
//	u8   version (LeafVersion = 1)
//	u64  sequence
//	str  id, kind, currency, caller, request_id, memo
//	i64  created_at, microseconds since 1970-01-01T00:00:00Z
//	i64  effective_at, microseconds since 1970-01-01T00:00:00Z (when the act took effect;
//	     created_at when the entry was not backdated)
//	u32  number of postings, then for each posting in order: str account, i64 amount
//
// where every integer is big-endian (i64 in two's complement) and str is a u32 byte length
// followed by the UTF-8 bytes. This is the only function that encodes a leaf (the store, the
// verifiers and the proofs all call it). To add a field: add it here under a new version byte
// chosen from the entry itself, so that every leaf already in the log keeps its bytes (a new
// version for entries that carry the field, the old one for entries written before it existed,
// whose field stays unset: backfilling it would change their leaves, and VerifyLog would rightly
// report them).
func EncodeLeaf(e core.Entry) []byte {
	size := 1 + 8 + 8 + 8 + 4
	for _, s := range []string{e.ID, string(e.Kind), e.Currency, e.Caller, e.RequestID, e.Memo} {
		size += 4 + len(s)
	}
	for _, p := range e.Postings {
		size += 4 + len(p.Account) + 8
	}
	b := make([]byte, 0, size)
	b = append(b, LeafVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Sequence))
	for _, s := range []string{e.ID, string(e.Kind), e.Currency, e.Caller, e.RequestID, e.Memo} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.CreatedAt.UnixMicro()))
	effective := e.EffectiveAt
	if effective.IsZero() {
		effective = e.CreatedAt
	}
	b = binary.BigEndian.AppendUint64(b, uint64(effective.UnixMicro()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Postings)))
	for _, p := range e.Postings {
		b = appendString(b, p.Account)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Amount))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// DecodeLeaf reads a leaf of version 1 back into an entry (for verifiers and tests); ok is false
// when the bytes are not a well-formed leaf of a known version.
func DecodeLeaf(b []byte) (e core.Entry, ok bool) {
	r := reader{b: b}
	if r.u8() != LeafVersion {
		return core.Entry{}, false
	}
	e.Sequence = int64(r.u64())
	e.ID = r.str()
	e.Kind = core.EntryKind(r.str())
	e.Currency, e.Caller, e.RequestID, e.Memo = r.str(), r.str(), r.str(), r.str()
	e.CreatedAt = time.UnixMicro(int64(r.u64())).UTC()
	e.EffectiveAt = time.UnixMicro(int64(r.u64())).UTC()
	n := r.u32()
	for i := uint32(0); i < n && !r.bad; i++ {
		e.Postings = append(e.Postings, core.Posting{Account: r.str(), Amount: int64(r.u64())})
	}
	return e, !r.bad && len(r.b) == 0
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) || n < 0 {
		r.bad = true
		return make([]byte, 8) // enough for any fixed-size read; the leaf is refused anyway
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *reader) u8() byte    { return r.take(1)[0] }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }
func (r *reader) str() string { return string(r.take(int(r.u32()))) }

// LeafHash is the RFC 6962 hash of entry e's leaf.
func LeafHash(e core.Entry) []byte { return Hasher.HashLeaf(EncodeLeaf(e)) }
