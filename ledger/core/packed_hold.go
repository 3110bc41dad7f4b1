package core

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The request log keeps a CreateHold's and a ConfirmHold's result by reference too (migration
// 29), as it keeps a Commit's (packed.go). Most of such a result is in rows that keep it:
//
//   - the hold's row holds every field of the hold as CreateHold made it, except the ones the
//     hold's end updates once (state, confirmed_amount, commitment_id, reason, updated_at:
//     store.EndHolds), whose values right after CreateHold are known (HELD, nothing confirmed, no
//     commitment nor reason, updated when made). Once ended, a hold's row never changes again
//     (the holds' trigger refuses it): it holds the hold as ConfirmHold ended it, and the id of
//     the commitment the confirmation made;
//   - that commitment's row holds it as the confirmation made it, once the columns later
//     operations update are reset (fresh, as for a Commit);
//   - the envelope's row holds what no operation updates (keptEnvelope).
//
// What is nowhere else is the envelope's balances and times just after the operation, and the
// journal entry's id. (The entry could be found in the journal instead: a HOLD_CREATED entry is
// the only one crediting its hold's account, a HOLD_CONFIRMED the only one crediting its
// commitment's; but a confirmation of part of a hold has three postings, in the postings table
// rather than the entry's row, so the record keeps the id: 18 bytes with its tag and length.) The
// packed record holds those, the hold's id, and the canonical checksum of the result
// (createHoldSum, confirmHoldSum). A replay rebuilds the result from the record and the rows and
// checks the checksum: the first answer, byte for byte, or an internal error, never another
// answer. PackCreateHold and PackConfirmHold refuse (and the request log keeps the deflated JSON)
// a result its rows could not give back exactly.
//
// Layout: one tag byte (packedCreateHold, packedConfirmHold: the next ones after packedDeflated),
// then the Commit's fields (packed.go), the hold's id in the place of the commitment's; the
// envelope's two times left out when equal to those of the hold's creation (CreateHold) or of the
// commitment (ConfirmHold); the checksum always pcSum.

const (
	packedCreateHold  byte = 4
	packedConfirmHold byte = 5
)

// Fields of a packed hold result that are not the Commit's.
const (
	phHoldUUID = pcCommitmentUUID // the hold's id, 16 bytes
	phHoldID   = pcCommitmentID   // the hold's id as text, when not a canonical UUID
)

// IsPackedCreateHold reports whether a request log record is a packed CreateHold result.
func IsPackedCreateHold(packed []byte) bool { return len(packed) > 0 && packed[0] == packedCreateHold }

// IsPackedConfirmHold reports whether a request log record is a packed ConfirmHold result.
func IsPackedConfirmHold(packed []byte) bool {
	return len(packed) > 0 && packed[0] == packedConfirmHold
}

// PackCreateHold returns the packed record of a CreateHold's result, or nil when the result is
// not one its rows give back exactly (then the request log keeps its JSON).
func PackCreateHold(r *CreateHoldResult) []byte {
	h, env := &r.Hold, &r.Envelope
	if !keptHold(h, env) || !heldFresh(h) || r.EntryID == "" || !keptEnvelope(env) {
		return nil
	}
	return packHold(packedCreateHold, h.ID, r.EntryID, env, h.CreatedAt, h.EffectiveAt, createHoldSum(r))
}

// PackConfirmHold returns the packed record of a ConfirmHold's result, or nil when the result is
// not one its rows give back exactly.
func PackConfirmHold(r *ConfirmHoldResult) []byte {
	h, c, env := &r.Hold, &r.Commitment, &r.Envelope
	if !keptHold(h, env) || h.State != HoldConfirmed || h.CommitmentID != c.ID || !kept(c, env) ||
		r.EntryID == "" || !keptEnvelope(env) {
		return nil
	}
	return packHold(packedConfirmHold, h.ID, r.EntryID, env, c.CreatedAt, c.EffectiveAt, confirmHoldSum(r))
}

// packHold lays out a packed hold result; updated and effective are the envelope's times the
// record leaves out when equal.
func packHold(tag byte, holdID, entryID string, env *Envelope, updated, effective time.Time, sum uint32) []byte {
	b := make([]byte, 1, 96)
	b[0] = tag
	b = appendID(b, phHoldUUID, phHoldID, holdID)
	b = appendID(b, pcEntryUUID, pcEntryID, entryID)
	b = appendBalances(b, env)
	if !env.UpdatedAt.Equal(updated) {
		b = protowire.AppendTag(b, pcUpdatedAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.UpdatedAt.UnixMicro()))
	}
	if !env.LatestEffectiveAt.Equal(effective) {
		b = protowire.AppendTag(b, pcLatestEffAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(env.LatestEffectiveAt.UnixMicro()))
	}
	b = protowire.AppendTag(b, pcSum, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, sum)
}

// keptHold reports whether hold h, on env, is what its row gives back (store.ScanHold): its
// times in UTC at the microsecond (an optional one zero, or not the row's zero, 0 µs), and each
// policy figure given exactly when the row stores it (a figure not given but not 0 comes back
// given).
func keptHold(h *Hold, env *Envelope) bool {
	optionalTime := func(t time.Time) bool { return t.IsZero() || (storedTime(t) && t.UnixMicro() != 0) }
	p := &h.Policy
	return h.ID != "" && h.EnvelopeID == env.ID && storedTime(h.CreatedAt) && storedTime(h.UpdatedAt) &&
		optionalTime(h.ExpireAt) && optionalTime(h.EffectiveAt) &&
		(p.EligibleCost == 0 || p.EligibleCostGiven) && (p.Population == 0 || p.PopulationGiven)
}

// heldFresh reports whether h is a hold as CreateHold makes it: what freshHold resets is as it was.
func heldFresh(h *Hold) bool {
	return h.State == HoldHeld && h.ConfirmedAmount == 0 && h.CommitmentID == "" && h.Reason == "" &&
		h.UpdatedAt.Equal(h.CreatedAt)
}

// freshHold resets what a hold's end updates of its row to what CreateHold made.
func freshHold(h *Hold) {
	h.State, h.ConfirmedAmount, h.CommitmentID, h.Reason, h.UpdatedAt = HoldHeld, 0, "", "", h.CreatedAt
}

// unpackHold reads a packed hold result of format tag.
func unpackHold(packed []byte, tag byte) (packedResult, error) {
	if len(packed) == 0 || packed[0] != tag {
		return packedResult{}, errPacked
	}
	p, err := unpackFields(packed[1:], false)
	if err == nil && p.sumKind != pcSum {
		err = errPacked // a hold's record has the canonical checksum only
	}
	return p, err
}

// PackedHoldID returns the id of the hold a packed CreateHold or ConfirmHold result names.
func PackedHoldID(packed []byte) (string, error) {
	if len(packed) == 0 || (packed[0] != packedCreateHold && packed[0] != packedConfirmHold) {
		return "", errPacked
	}
	p, err := unpackHold(packed, packed[0])
	return p.commitmentID, err
}

// envelopeAfter sets env's balances and times to those recorded in p; updated and effective are
// the times a record leaves out when equal.
func (p *packedResult) envelopeAfter(env *Envelope, updated, effective time.Time) {
	env.Allocation, env.Committed, env.ChildrenAllocated, env.Released = p.allocation, p.committed, p.children, p.released
	env.CommitmentCount, env.Paid, env.Held = p.count, p.paid, p.held
	env.UpdatedAt, env.LatestEffectiveAt = updated, effective
	if p.updatedAt != nil {
		env.UpdatedAt = time.UnixMicro(*p.updatedAt).UTC()
	}
	if p.latestEffectiveAt != nil {
		env.LatestEffectiveAt = time.UnixMicro(*p.latestEffectiveAt).UTC()
	}
}

// UnpackCreateHold rebuilds a CreateHold's result from its packed record, its hold's row and its
// envelope's row (as read now: what the hold's end updated is reset). It fails when the rebuilt
// result is not the one recorded.
func UnpackCreateHold(packed []byte, h Hold, env Envelope) (*CreateHoldResult, error) {
	p, err := unpackHold(packed, packedCreateHold)
	if err != nil {
		return nil, err
	}
	if h.ID != p.commitmentID || h.EnvelopeID != env.ID {
		return nil, Internal("packed result of hold %s rebuilt from hold %s on envelope %s", p.commitmentID, h.ID, env.ID)
	}
	freshHold(&h)
	p.envelopeAfter(&env, h.CreatedAt, h.EffectiveAt)
	r := &CreateHoldResult{Hold: h, Envelope: env, EntryID: p.entryID}
	if createHoldSum(r) != p.checksum {
		return nil, Internal("the hold %s or its envelope %s no longer holds what its creation recorded", h.ID, env.ID)
	}
	return r, nil
}

// UnpackConfirmHold rebuilds a ConfirmHold's result from its packed record, its hold's row (as the
// confirmation ended it), the row of the commitment the hold names, and its envelope's row. It
// fails when the rebuilt result is not the one recorded.
func UnpackConfirmHold(packed []byte, h Hold, c Commitment, env Envelope) (*ConfirmHoldResult, error) {
	p, err := unpackHold(packed, packedConfirmHold)
	if err != nil {
		return nil, err
	}
	if h.ID != p.commitmentID || h.CommitmentID != c.ID || h.EnvelopeID != env.ID || c.EnvelopeID != env.ID {
		return nil, Internal("packed result of hold %s rebuilt from hold %s, commitment %s on envelope %s",
			p.commitmentID, h.ID, c.ID, env.ID)
	}
	fresh(&c)
	p.envelopeAfter(&env, c.CreatedAt, c.EffectiveAt)
	r := &ConfirmHoldResult{Hold: h, Commitment: c, Envelope: env, EntryID: p.entryID}
	if confirmHoldSum(r) != p.checksum {
		return nil, Internal("the hold %s, its commitment %s or its envelope %s no longer holds what its confirmation recorded",
			h.ID, c.ID, env.ID)
	}
	return r, nil
}
