package core

import (
	"encoding/json"
	"errors"
	"hash/crc32"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
)

// The request log keeps a Commit's result by reference (migration 18; docs/benchmarks.md, "A
// smaller request log"). A CommitResult is the new commitment and the envelope just after the
// award. Most of it is in rows that keep it for good:
//
//   - the commitment's row holds every field of the commitment as the award made it, except the
//     ones later operations update in place (released, paid, closed_at, close_reason,
//     close_effective_at, updated_at: store.UpdateCommitment, UpdateCommitmentFigures), whose
//     values right after an award are known (nothing released, paid or closed; updated when
//     made);
//   - the envelope's row holds its id, parent, name, currency, creation and effective times and
//     granting body, which no operation updates (store.UpdateEnvelope writes balances only).
//
// What is nowhere else is the envelope's balances and times just after the award, and the
// journal entry's id: the packed record holds those, the commitment's id, and the CRC-32C of the
// JSON the request log stored before migration 18 for the same result. A replay rebuilds the
// result from the record and the two rows and checks that its JSON has that checksum: it is the
// first answer, byte for byte, or an internal error (were a row ever edited), never another
// answer. PackCommit refuses (and the full JSON is stored) a result that the rows could not give
// back exactly.
//
// Layout: one tag byte (packedCommit), then protobuf wire-format fields (protowire), a field
// left out when zero or, for the envelope's two times, when equal to the commitment's.

const packedCommit byte = 1

// Fields of a packed Commit result.
const (
	pcCommitmentUUID protowire.Number = 1 // 16 bytes, when the id is a canonical UUID
	pcCommitmentID   protowire.Number = 2 // the id's text otherwise
	pcEntryUUID      protowire.Number = 3
	pcEntryID        protowire.Number = 4
	pcAllocation     protowire.Number = 5
	pcCommitted      protowire.Number = 6
	pcChildren       protowire.Number = 7
	pcReleased       protowire.Number = 8
	pcCount          protowire.Number = 9
	pcPaid           protowire.Number = 10
	pcHeld           protowire.Number = 11
	pcUpdatedAt      protowire.Number = 12 // microseconds; left out: the commitment's creation
	pcLatestEffAt    protowire.Number = 13 // microseconds; left out: the commitment's effective time
	pcChecksum       protowire.Number = 14 // CRC-32C of the result's JSON
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PackCommit returns the packed record of a Commit's result, or nil when the result is not one
// its rows give back exactly (then the request log keeps its JSON).
func PackCommit(r *CommitResult) []byte {
	c, env := &r.Commitment, &r.Envelope
	fresh := c.Released == 0 && c.Paid == 0 && c.ClosedAt.IsZero() && c.CloseReason == "" &&
		c.CloseEffectiveAt.IsZero() && c.UpdatedAt.Equal(c.CreatedAt)
	if !fresh || c.EnvelopeID != env.ID || c.ID == "" || r.EntryID == "" ||
		!storedTime(c.CreatedAt) || !storedTime(c.UpdatedAt) || !storedTime(c.EffectiveAt) ||
		!storedTime(env.CreatedAt) || !storedTime(env.UpdatedAt) || !storedTime(env.EffectiveAt) ||
		!storedTime(env.LatestEffectiveAt) {
		return nil
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	b := make([]byte, 1, 96)
	b[0] = packedCommit
	b = appendID(b, pcCommitmentUUID, pcCommitmentID, c.ID)
	b = appendID(b, pcEntryUUID, pcEntryID, r.EntryID)
	for _, f := range []struct {
		n protowire.Number
		v int64
	}{{pcAllocation, env.Allocation}, {pcCommitted, env.Committed}, {pcChildren, env.ChildrenAllocated},
		{pcReleased, env.Released}, {pcCount, env.CommitmentCount}, {pcPaid, env.Paid}, {pcHeld, env.Held}} {
		if f.v != 0 {
			b = protowire.AppendTag(b, f.n, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(f.v))
		}
	}
	if !env.UpdatedAt.Equal(c.CreatedAt) {
		b = protowire.AppendTag(b, pcUpdatedAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.UpdatedAt.UnixMicro()))
	}
	if !env.LatestEffectiveAt.Equal(c.EffectiveAt) {
		b = protowire.AppendTag(b, pcLatestEffAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.LatestEffectiveAt.UnixMicro()))
	}
	b = protowire.AppendTag(b, pcChecksum, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, crc32.Checksum(raw, castagnoli))
}

// storedTime reports whether t is one the database gives back as it is: set, in UTC, at the
// microsecond.
func storedTime(t time.Time) bool {
	return !t.IsZero() && t.Location() == time.UTC && t.Nanosecond()%1000 == 0
}

// appendID appends an id: as 16 bytes when it is a canonical UUID (the ledger's ids), else as text.
func appendID(b []byte, asUUID, asText protowire.Number, id string) []byte {
	if u, err := uuid.Parse(id); err == nil && u.String() == id {
		b = protowire.AppendTag(b, asUUID, protowire.BytesType)
		return protowire.AppendBytes(b, u[:])
	}
	b = protowire.AppendTag(b, asText, protowire.BytesType)
	return protowire.AppendString(b, id)
}

// IsPackedCommit reports whether a request log record is a packed Commit result.
func IsPackedCommit(packed []byte) bool { return len(packed) > 0 && packed[0] == packedCommit }

// packedResult is a packed Commit result's fields.
type packedResult struct {
	commitmentID, entryID                                        string
	allocation, committed, children, released, count, paid, held int64
	updatedAt, latestEffectiveAt                                 *int64
	checksum                                                     uint32
	hasChecksum                                                  bool
}

var errPacked = errors.New("malformed packed result")

func unpack(packed []byte) (packedResult, error) {
	var p packedResult
	if !IsPackedCommit(packed) {
		return p, errPacked
	}
	b := packed[1:]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return p, errPacked
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return p, errPacked
			}
			b = b[n:]
			var id string
			switch num {
			case pcCommitmentUUID, pcEntryUUID:
				u, err := uuid.FromBytes(v)
				if err != nil {
					return p, errPacked
				}
				id = u.String()
			case pcCommitmentID, pcEntryID:
				id = string(v)
			default:
				return p, errPacked
			}
			if num == pcCommitmentUUID || num == pcCommitmentID {
				p.commitmentID = id
			} else {
				p.entryID = id
			}
		case protowire.VarintType:
			u, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return p, errPacked
			}
			b = b[n:]
			v := int64(u)
			switch num {
			case pcAllocation:
				p.allocation = v
			case pcCommitted:
				p.committed = v
			case pcChildren:
				p.children = v
			case pcReleased:
				p.released = v
			case pcCount:
				p.count = v
			case pcPaid:
				p.paid = v
			case pcHeld:
				p.held = v
			case pcUpdatedAt:
				p.updatedAt = &v
			case pcLatestEffAt:
				p.latestEffectiveAt = &v
			default:
				return p, errPacked
			}
		case protowire.Fixed32Type:
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 || num != pcChecksum {
				return p, errPacked
			}
			b = b[n:]
			p.checksum, p.hasChecksum = v, true
		default:
			return p, errPacked
		}
	}
	if p.commitmentID == "" || p.entryID == "" || !p.hasChecksum {
		return p, errPacked
	}
	return p, nil
}

// PackedCommitmentID returns the id of the commitment a packed Commit result names.
func PackedCommitmentID(packed []byte) (string, error) {
	p, err := unpack(packed)
	return p.commitmentID, err
}

// UnpackCommit rebuilds a Commit's result from its packed record, its commitment's row and its
// envelope's row (as read now: the columns updated since are not used). It fails when the
// rebuilt result is not the one recorded (its JSON's checksum differs).
func UnpackCommit(packed []byte, c Commitment, env Envelope) (*CommitResult, error) {
	p, err := unpack(packed)
	if err != nil {
		return nil, err
	}
	if c.ID != p.commitmentID || c.EnvelopeID != env.ID {
		return nil, Internal("packed result of commitment %s rebuilt from commitment %s on envelope %s", p.commitmentID, c.ID, env.ID)
	}
	// The commitment as the award made it.
	c.Released, c.Paid, c.UpdatedAt = 0, 0, c.CreatedAt
	c.ClosedAt, c.CloseReason, c.CloseEffectiveAt = time.Time{}, "", time.Time{}
	// The envelope's balances and times just after it.
	env.Allocation, env.Committed, env.ChildrenAllocated, env.Released = p.allocation, p.committed, p.children, p.released
	env.CommitmentCount, env.Paid, env.Held = p.count, p.paid, p.held
	env.UpdatedAt, env.LatestEffectiveAt = c.CreatedAt, c.EffectiveAt
	if p.updatedAt != nil {
		env.UpdatedAt = time.UnixMicro(*p.updatedAt).UTC()
	}
	if p.latestEffectiveAt != nil {
		env.LatestEffectiveAt = time.UnixMicro(*p.latestEffectiveAt).UTC()
	}
	r := &CommitResult{Commitment: c, Envelope: env, EntryID: p.entryID}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(raw, castagnoli) != p.checksum {
		return nil, Internal("the commitment %s or its envelope %s no longer holds what its award recorded", c.ID, env.ID)
	}
	return r, nil
}
