package core

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The request log keeps a CreatePayment's result by reference too (migration 30), as it keeps a
// Commit's (packed.go) and a hold's (packed_hold.go). Most of such a result is in rows that keep
// it:
//
//   - the payment's row holds every field of the payment for good (the payments are append-only:
//     a trigger refuses any update or delete), the journal entry's id included;
//   - the commitment's row holds every field of the commitment but those later operations update
//     (released, paid, updated_at; closed_at, close_reason, close_effective_at: a payment is made
//     on an open commitment only, so these are unset just after it);
//   - the envelope's row holds what no operation updates (keptEnvelope).
//
// What is nowhere else is the commitment's released and paid amounts and its update time just
// after the payment (later payments, releases and closings change them), and the envelope's
// balances and times. The packed record holds those, the commitment's id and the payment's (the
// payments' primary key is (commitment_id, id)), and the canonical checksum of the result
// (paymentSum). The journal entry's id is the payment row's entry_id, which is the result's (a
// record would hold the entry's id only were they different: DecideCreatePayment never makes them so).
// A replay rebuilds the result from the record and the three rows and checks the checksum: the
// first answer, byte for byte, or an internal error, never another answer. PackPayment refuses
// (and the request log keeps the deflated JSON) a result its rows could not give back exactly.
//
// Layout: one tag byte (packedPayment: the next one after packedConfirmHold), then the Commit's
// fields (packed.go: the commitment's id, the envelope's balances and times, pcSum; the envelope's
// update time left out when it is the payment's creation, its latest effective time when it is
// the commitment's effective time), and the fields below (numbers from 16: two bytes of tag each),
// the commitment's update time left out when it is the payment's creation.

const packedPayment byte = 6

// Fields of a packed CreatePayment result that are not the Commit's.
const (
	ppPaymentUUID protowire.Number = 16 // the payment's id, 16 bytes
	ppPaymentID   protowire.Number = 17 // the payment's id as text, when not a canonical UUID
	ppReleased    protowire.Number = 18 // the commitment's released amount just after the payment
	ppPaid        protowire.Number = 19 // the commitment's paid amount just after the payment
	ppUpdatedAt   protowire.Number = 20 // the commitment's update time, microseconds; left out: the payment's creation
)

// IsPackedPayment reports whether a request log record is a packed CreatePayment result.
func IsPackedPayment(packed []byte) bool { return len(packed) > 0 && packed[0] == packedPayment }

// PackPayment returns the packed record of a CreatePayment's result, or nil when the result is
// not one its rows give back exactly (then the request log keeps its JSON).
func PackPayment(r *CreatePaymentResult) []byte {
	p, c, env := &r.Payment, &r.Commitment, &r.Envelope
	if !keptPayment(p, c, env) || !keptPaid(c, env) || r.EntryID == "" || !keptEnvelope(env) {
		return nil
	}
	b := make([]byte, 1, 112)
	b[0] = packedPayment
	b = appendID(b, pcCommitmentUUID, pcCommitmentID, c.ID)
	if r.EntryID != p.EntryID {
		b = appendID(b, pcEntryUUID, pcEntryID, r.EntryID)
	}
	b = appendBalances(b, env)
	if !env.UpdatedAt.Equal(p.CreatedAt) {
		b = protowire.AppendTag(b, pcUpdatedAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.UpdatedAt.UnixMicro()))
	}
	if !env.LatestEffectiveAt.Equal(c.EffectiveAt) {
		b = protowire.AppendTag(b, pcLatestEffAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.LatestEffectiveAt.UnixMicro()))
	}
	b = protowire.AppendTag(b, pcSum, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, paymentSum(r))
	b = appendID(b, ppPaymentUUID, ppPaymentID, p.ID)
	for _, f := range []struct {
		n protowire.Number
		v int64
	}{{ppReleased, c.Released}, {ppPaid, c.Paid}} {
		if f.v != 0 {
			b = protowire.AppendTag(b, f.n, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(f.v))
		}
	}
	if !c.UpdatedAt.Equal(p.CreatedAt) {
		b = protowire.AppendTag(b, ppUpdatedAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(c.UpdatedAt.UnixMicro()))
	}
	return b
}

// keptPayment reports whether payment p, of commitment c on env, is what its row gives back
// (store.ScanPayment): its times in UTC at the microsecond (its effective time zero when not
// given: the row's NULL).
func keptPayment(p *Payment, c *Commitment, env *Envelope) bool {
	return p.ID != "" && p.CommitmentID == c.ID && p.EnvelopeID == env.ID && p.EntryID != "" &&
		storedTime(p.CreatedAt) && (p.EffectiveAt.IsZero() || storedTime(p.EffectiveAt))
}

// keptPaid reports whether commitment c, as a payment on env just left it, is what its row gives
// back once the columns updated later are reset to the record's (see UnpackPayment): open (a
// closing's columns are unset), its times in UTC at the microsecond.
func keptPaid(c *Commitment, env *Envelope) bool {
	return c.ID != "" && c.EnvelopeID == env.ID && c.ClosedAt.IsZero() && c.CloseReason == "" &&
		c.CloseEffectiveAt.IsZero() && storedTime(c.CreatedAt) && storedTime(c.UpdatedAt) && storedTime(c.EffectiveAt)
}

// setPaid sets the field numbered num of a packed CreatePayment result's own (a varint) to v,
// and reports whether num is one.
func (p *packedResult) setPaid(num protowire.Number, v int64) bool {
	switch num {
	case ppReleased:
		p.paidReleased = v
	case ppPaid:
		p.paidPaid = v
	case ppUpdatedAt:
		p.paidUpdatedAt = &v
	default:
		return false
	}
	return true
}

// unpackPayment reads a packed CreatePayment result.
func unpackPayment(packed []byte) (packedResult, error) {
	if !IsPackedPayment(packed) {
		return packedResult{}, errPacked
	}
	p, err := unpackFields(packed[1:], true)
	if err == nil && (p.sumKind != pcSum || p.paymentID == "") {
		err = errPacked // a payment's record has the canonical checksum only, and its payment's id
	}
	return p, err
}

// PackedPaymentRefs returns the ids of the commitment and of the payment a packed CreatePayment
// result names (the payments' primary key).
func PackedPaymentRefs(packed []byte) (commitmentID, paymentID string, err error) {
	p, err := unpackPayment(packed)
	return p.commitmentID, p.paymentID, err
}

// UnpackPayment rebuilds a CreatePayment's result from its packed record, its payment's row, its
// commitment's row and its envelope's row (as read now: what later operations updated of the
// commitment and the envelope is set back to the record's). It fails when the rebuilt result is
// not the one recorded.
func UnpackPayment(packed []byte, pay Payment, c Commitment, env Envelope) (*CreatePaymentResult, error) {
	p, err := unpackPayment(packed)
	if err != nil {
		return nil, err
	}
	if pay.ID != p.paymentID || pay.CommitmentID != p.commitmentID || c.ID != p.commitmentID ||
		pay.EnvelopeID != env.ID || c.EnvelopeID != env.ID {
		return nil, Internal("packed result of payment %s of commitment %s rebuilt from payment %s of commitment %s, commitment %s on envelope %s",
			p.paymentID, p.commitmentID, pay.ID, pay.CommitmentID, c.ID, env.ID)
	}
	entryID := pay.EntryID
	if p.entryID != "" {
		entryID = p.entryID
	}
	// The commitment as the payment left it: open, its figures and update time the record's.
	c.Released, c.Paid, c.UpdatedAt = p.paidReleased, p.paidPaid, pay.CreatedAt
	if p.paidUpdatedAt != nil {
		c.UpdatedAt = time.UnixMicro(*p.paidUpdatedAt).UTC()
	}
	c.ClosedAt, c.CloseReason, c.CloseEffectiveAt = time.Time{}, "", time.Time{}
	p.envelopeAfter(&env, pay.CreatedAt, c.EffectiveAt)
	r := &CreatePaymentResult{Payment: pay, Commitment: c, Envelope: env, EntryID: entryID}
	if paymentSum(r) != p.checksum {
		return nil, Internal("the payment %s, its commitment %s or its envelope %s no longer holds what the payment recorded",
			pay.ID, c.ID, env.ID)
	}
	return r, nil
}
