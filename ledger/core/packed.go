package core

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"time"

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
// What is nowhere else is the envelope's balances and times just after the award: the packed
// record holds those, the commitment's id, and a checksum of the result (canonical.go: the
// CRC-32C of its canonical encoding; in a record written before 2026-12-02, of its JSON). The
// journal entry's id is the journal's: the one COMMITTED entry that credits the commitment (a
// record written before migration 28 holds it too). A replay rebuilds the result from the record,
// the two rows and the entry's id, and checks the checksum: it is the first answer, byte for
// byte, or an internal error (were a row ever edited, or another entry named), never another
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
	pcEntryUUID      protowire.Number = 3 // the journal entry's id, in records written before migration 28
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
	pcChecksum       protowire.Number = 14 // CRC-32C of the result's JSON (records written before pcSum)
	pcSum            protowire.Number = 15 // CRC-32C of the result's canonical encoding (canonical.go)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PackCommit returns the packed record of a Commit's result, or nil when the result is not one
// its rows give back exactly (then the request log keeps its JSON).
func PackCommit(r *CommitResult) []byte {
	c, env := &r.Commitment, &r.Envelope
	if !kept(c, env) || r.EntryID == "" || !keptEnvelope(env) {
		return nil
	}
	b := make([]byte, 1, 96)
	b[0] = packedCommit
	b = appendID(b, pcCommitmentUUID, pcCommitmentID, c.ID)
	b = appendBalances(b, env)
	if !env.UpdatedAt.Equal(c.CreatedAt) {
		b = protowire.AppendTag(b, pcUpdatedAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.UpdatedAt.UnixMicro()))
	}
	if !env.LatestEffectiveAt.Equal(c.EffectiveAt) {
		b = protowire.AppendTag(b, pcLatestEffAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.LatestEffectiveAt.UnixMicro()))
	}
	b = protowire.AppendTag(b, pcSum, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, commitSum(r))
}

// kept reports whether commitment c, as an award on env just made it, is what its row will give
// back once the columns updated later are reset (see UnpackCommit).
func kept(c *Commitment, env *Envelope) bool {
	fresh := c.Released == 0 && c.Paid == 0 && c.ClosedAt.IsZero() && c.CloseReason == "" &&
		c.CloseEffectiveAt.IsZero() && c.UpdatedAt.Equal(c.CreatedAt)
	return fresh && c.EnvelopeID == env.ID && c.ID != "" &&
		storedTime(c.CreatedAt) && storedTime(c.UpdatedAt) && storedTime(c.EffectiveAt)
}

// keptEnvelope reports whether env's row gives back its times as they are.
func keptEnvelope(env *Envelope) bool {
	return storedTime(env.CreatedAt) && storedTime(env.UpdatedAt) && storedTime(env.EffectiveAt) &&
		storedTime(env.LatestEffectiveAt)
}

// fresh resets what later operations update of a commitment's row to what its award made.
func fresh(c *Commitment) {
	c.Released, c.Paid, c.UpdatedAt = 0, 0, c.CreatedAt
	c.ClosedAt, c.CloseReason, c.CloseEffectiveAt = time.Time{}, "", time.Time{}
}

// storedTime reports whether t is one the database gives back as it is: set, in UTC, at the
// microsecond.
func storedTime(t time.Time) bool {
	return !t.IsZero() && t.Location() == time.UTC && t.Nanosecond()%1000 == 0
}

// appendID appends an id: as 16 bytes when it is a canonical UUID (the ledger's ids), else as text.
func appendID(b []byte, asUUID, asText protowire.Number, id string) []byte {
	if u, ok := parseUUID(id); ok {
		b = protowire.AppendTag(b, asUUID, protowire.BytesType)
		return protowire.AppendBytes(b, u[:])
	}
	b = protowire.AppendTag(b, asText, protowire.BytesType)
	return protowire.AppendString(b, id)
}

// ParseUUID is parseUUID, for the store (a UUID column's value, as its 16 bytes).
func ParseUUID(s string) ([16]byte, bool) { return parseUUID(s) }

// parseUUID returns the 16 bytes of a UUID in its canonical text form (lowercase, with dashes:
// what the ledger's ids are), which formatUUID gives back; false for any other text.
// It allocates nothing: every award packs two ids (about 2 µs a call when it went through
// hex.Decode and formatUUID, 1.6 % of ledgerd's CPU per award on PostgreSQL).
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	for i, j := 0, 0; i < 16; i++ {
		if j == 8 || j == 13 || j == 18 || j == 23 {
			j++
		}
		hi, lo := lowerHex(s[j]), lowerHex(s[j+1])
		if hi < 0 || lo < 0 {
			return u, false
		}
		u[i] = byte(hi<<4 | lo)
		j += 2
	}
	return u, true
}

// lowerHex is the value of a lowercase hexadecimal digit, -1 for any other byte: the canonical
// text has no uppercase digit, so that formatUUID gives back the very string parsed.
func lowerHex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// formatUUID is the canonical text of a UUID's 16 bytes.
func formatUUID(u []byte) string {
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// IsPackedCommit reports whether a request log record is a packed Commit result.
func IsPackedCommit(packed []byte) bool { return len(packed) > 0 && packed[0] == packedCommit }

// IsPackedBulk reports whether a request log record is a packed bulk call's result.
func IsPackedBulk(packed []byte) bool { return len(packed) > 0 && packed[0] == packedBulk }

// packedResult is a packed Commit result's fields.
type packedResult struct {
	commitmentID, entryID                                        string
	allocation, committed, children, released, count, paid, held int64
	updatedAt, latestEffectiveAt                                 *int64
	checksum                                                     uint32
	// sumKind is the checksum's field: pcSum, or pcChecksum in a record written before it (0:
	// none yet).
	sumKind protowire.Number
	// A packed CreatePayment result's own fields (packed_payment.go): the payment's id, and its
	// commitment's figures and update time just after it.
	paymentID              string
	paidReleased, paidPaid int64
	paidUpdatedAt          *int64
}

// setChecksum sets the checksum read from field num, and reports whether the record may hold
// it: one checksum, of either kind.
func (p *packedResult) setChecksum(num protowire.Number, v uint32) bool {
	if (num != pcSum && num != pcChecksum) || p.sumKind != 0 {
		return false
	}
	p.checksum, p.sumKind = v, num
	return true
}

// matches reports whether a rebuilt result has the recorded checksum: sum is its canonical
// checksum, result what its JSON is made of (for a record of before pcSum).
func (p *packedResult) matches(sum func() (uint32, error), result any) (bool, error) {
	if p.sumKind == pcSum {
		s, err := sum()
		return err == nil && s == p.checksum, err
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return false, err
	}
	return crc32.Checksum(raw, castagnoli) == p.checksum, nil
}

var errPacked = errors.New("malformed packed result")

func unpack(packed []byte) (packedResult, error) {
	if !IsPackedCommit(packed) {
		return packedResult{}, errPacked
	}
	return unpackFields(packed[1:], false)
}

// unpackFields reads the fields of a packed Commit result, or of a packed hold result (the
// hold's id in commitmentID), or, with payment, of a packed CreatePayment result (its own fields
// too: packed_payment.go), after its tag byte.
func unpackFields(b []byte, payment bool) (packedResult, error) {
	var p packedResult
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
				if len(v) != 16 {
					return p, errPacked
				}
				id = formatUUID(v)
			case pcCommitmentID, pcEntryID:
				id = string(v)
			case ppPaymentUUID, ppPaymentID:
				if !payment || (num == ppPaymentUUID && len(v) != 16) {
					return p, errPacked
				}
				if num == ppPaymentUUID {
					p.paymentID = formatUUID(v)
				} else {
					p.paymentID = string(v)
				}
				continue
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
			if !p.setBalance(num, v) && (!payment || !p.setPaid(num, v)) {
				return p, errPacked
			}
		case protowire.Fixed32Type:
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 || !p.setChecksum(num, v) {
				return p, errPacked
			}
			b = b[n:]
		default:
			return p, errPacked
		}
	}
	if p.commitmentID == "" || p.sumKind == 0 {
		return p, errPacked
	}
	return p, nil
}

// setBalance sets the envelope figure numbered num (a varint field of a packed result) to v, and
// reports whether num is one.
func (p *packedResult) setBalance(num protowire.Number, v int64) bool {
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
		return false
	}
	return true
}

// PackedCommitRefs returns the id of the commitment a packed Commit result names, and the id of
// its journal entry when the record holds it (written before migration 28), else "".
func PackedCommitRefs(packed []byte) (commitmentID, entryID string, err error) {
	p, err := unpack(packed)
	return p.commitmentID, p.entryID, err
}

// UnpackCommit rebuilds a Commit's result from its packed record, its commitment's row, its
// envelope's row (as read now: the columns updated since are not used) and the id of the
// journal's COMMITTED entry crediting the commitment (unused when the record holds one). It
// fails when the rebuilt result is not the one recorded (its checksum differs).
func UnpackCommit(packed []byte, c Commitment, env Envelope, entryID string) (*CommitResult, error) {
	p, err := unpack(packed)
	if err != nil {
		return nil, err
	}
	if c.ID != p.commitmentID || c.EnvelopeID != env.ID {
		return nil, Internal("packed result of commitment %s rebuilt from commitment %s on envelope %s", p.commitmentID, c.ID, env.ID)
	}
	if p.entryID == "" {
		if entryID == "" {
			return nil, Internal("the commitment %s has no COMMITTED journal entry", c.ID)
		}
		p.entryID = entryID
	}
	// The commitment as the award made it.
	fresh(&c)
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
	ok, err := p.matches(func() (uint32, error) { return commitSum(r), nil }, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, Internal("the commitment %s or its envelope %s no longer holds what its award recorded", c.ID, env.ID)
	}
	return r, nil
}

// A bulk call (BulkCommit) is recorded as one row under the call's key (migration 18), instead of
// a row for the call and one per item: its result packed by reference (packedBulk), or its whole
// refusal as JSON. The record holds the envelope's id, each item in order (the id of its
// commitment, or its refusal's JSON), the envelope's balances and times after the call, and the
// result's checksum (bulkSum; the CRC-32C of its JSON before 2026-12-02). A replay rebuilds each commitment from its row as its award made
// it, and the envelope from its row and the record, and checks the checksum.

const packedBulk byte = 2

// Fields of a packed bulk result (the balances and times use the Commit's numbers).
const (
	pbEnvelopeID     protowire.Number = 1
	pbCommitmentUUID protowire.Number = 2 // an accepted item, its commitment's id as 16 bytes
	pbCommitmentID   protowire.Number = 3 // an accepted item, its commitment's id as text
	pbRefusal        protowire.Number = 4 // a refused item: its refusal's JSON
)

// BulkPackable reports whether PackBulk packs res (every commitment kept by its row).
func BulkPackable(res *BulkCommitResult) bool {
	if !keptEnvelope(&res.Envelope) || res.Envelope.ID == "" {
		return false
	}
	for _, it := range res.Items {
		if it.Commitment != nil && !kept(it.Commitment, &res.Envelope) {
			return false
		}
	}
	return true
}

// PackBulk returns the packed record of a bulk call's result, or nil when not BulkPackable.
func PackBulk(res *BulkCommitResult) ([]byte, error) {
	if !BulkPackable(res) {
		return nil, nil
	}
	env := &res.Envelope
	refusals := make([][]byte, len(res.Items))
	b := make([]byte, 1, 64+18*len(res.Items))
	b[0] = packedBulk
	b = protowire.AppendTag(b, pbEnvelopeID, protowire.BytesType)
	b = protowire.AppendString(b, env.ID)
	for i, it := range res.Items {
		if it.Commitment != nil {
			b = appendID(b, pbCommitmentUUID, pbCommitmentID, it.Commitment.ID)
			continue
		}
		refusal, err := json.Marshal(it.Refusal)
		if err != nil {
			return nil, err
		}
		refusals[i] = refusal
		b = protowire.AppendTag(b, pbRefusal, protowire.BytesType)
		b = protowire.AppendBytes(b, refusal)
	}
	b = appendBalances(b, env)
	b = protowire.AppendTag(b, pcUpdatedAt, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(env.UpdatedAt.UnixMicro()))
	b = protowire.AppendTag(b, pcLatestEffAt, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(env.LatestEffectiveAt.UnixMicro()))
	b = protowire.AppendTag(b, pcSum, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, bulkSum(res, refusals)), nil
}

// appendBalances appends an envelope's balances, each left out when 0.
func appendBalances(b []byte, env *Envelope) []byte {
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
	return b
}

// PackedBulk is a packed bulk result's references: its envelope, and its accepted items'
// commitments.
type PackedBulk struct {
	EnvelopeID  string
	Commitments []string
	// items: a commitment id, or a refusal (nil commitment id).
	items   []packedItem
	balance packedResult
}

type packedItem struct {
	commitmentID string
	refusal      *Error
}

// UnpackBulkRefs reads a packed bulk result's references.
func UnpackBulkRefs(packed []byte) (*PackedBulk, error) {
	if !IsPackedBulk(packed) {
		return nil, errPacked
	}
	p := &PackedBulk{}
	b := packed[1:]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errPacked
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errPacked
			}
			b = b[n:]
			switch num {
			case pbEnvelopeID:
				p.EnvelopeID = string(v)
			case pbCommitmentUUID:
				if len(v) != 16 {
					return nil, errPacked
				}
				id := formatUUID(v)
				p.items = append(p.items, packedItem{commitmentID: id})
				p.Commitments = append(p.Commitments, id)
			case pbCommitmentID:
				p.items = append(p.items, packedItem{commitmentID: string(v)})
				p.Commitments = append(p.Commitments, string(v))
			case pbRefusal:
				e := &Error{}
				if err := json.Unmarshal(v, e); err != nil {
					return nil, errPacked
				}
				p.items = append(p.items, packedItem{refusal: e})
			default:
				return nil, errPacked
			}
		case protowire.VarintType:
			u, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, errPacked
			}
			b = b[n:]
			v := int64(u)
			if !p.balance.setBalance(num, v) {
				return nil, errPacked
			}
		case protowire.Fixed32Type:
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 || !p.balance.setChecksum(num, v) {
				return nil, errPacked
			}
			b = b[n:]
		default:
			return nil, errPacked
		}
	}
	if p.EnvelopeID == "" || p.balance.sumKind == 0 || p.balance.updatedAt == nil || p.balance.latestEffectiveAt == nil {
		return nil, errPacked
	}
	return p, nil
}

// Rebuild rebuilds the bulk call's result from the rows of its commitments (by id) and of its
// envelope. It fails when the result rebuilt is not the one recorded.
func (p *PackedBulk) Rebuild(commitments map[string]*Commitment, env Envelope) (*BulkCommitResult, error) {
	if env.ID != p.EnvelopeID {
		return nil, Internal("packed bulk result on envelope %s rebuilt from envelope %s", p.EnvelopeID, env.ID)
	}
	bal := &p.balance
	env.Allocation, env.Committed, env.ChildrenAllocated, env.Released = bal.allocation, bal.committed, bal.children, bal.released
	env.CommitmentCount, env.Paid, env.Held = bal.count, bal.paid, bal.held
	env.UpdatedAt, env.LatestEffectiveAt = time.UnixMicro(*bal.updatedAt).UTC(), time.UnixMicro(*bal.latestEffectiveAt).UTC()
	res := &BulkCommitResult{Items: make([]BulkItemResult, len(p.items)), Envelope: env}
	for i, it := range p.items {
		if it.refusal != nil {
			res.Items[i].Refusal = it.refusal
			res.Refused++
			continue
		}
		row, ok := commitments[it.commitmentID]
		if !ok || row.EnvelopeID != env.ID {
			return nil, Internal("packed bulk result names commitment %s, not found on envelope %s", it.commitmentID, env.ID)
		}
		c := *row
		fresh(&c)
		res.Items[i].Commitment = &c
		res.Accepted++
	}
	ok, err := bal.matches(func() (uint32, error) {
		// A refusal's JSON as encoded again from what was read: what is answered.
		refusals := make([][]byte, len(res.Items))
		for i, it := range res.Items {
			if it.Refusal != nil {
				raw, err := json.Marshal(it.Refusal)
				if err != nil {
					return 0, err
				}
				refusals[i] = raw
			}
		}
		return bulkSum(res, refusals), nil
	}, res)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, Internal("the commitments of a bulk call on envelope %s no longer hold what their awards recorded", env.ID)
	}
	return res, nil
}
