package core

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Fingerprints. A request id names one operation: the fingerprint of everything the caller sent
// (and who sent it) is stored with the outcome, and a later request with the same id must have the
// same fingerprint. Fields are length-prefixed so that no two payloads encode alike.

type fingerprinter struct{ buf []byte }

func (f *fingerprinter) str(s string) *fingerprinter {
	f.buf = binary.AppendUvarint(f.buf, uint64(len(s)))
	f.buf = append(f.buf, s...)
	return f
}

func (f *fingerprinter) num(v int64) *fingerprinter {
	f.buf = binary.AppendVarint(f.buf, v)
	return f
}

func (f *fingerprinter) sum() string {
	h := sha256.Sum256(f.buf)
	return hex.EncodeToString(h[:])
}

func (c *CreateEnvelope) Fingerprint() string {
	f := &fingerprinter{}
	return f.str("CreateEnvelope").str(c.Caller).str(c.EnvelopeID).str(c.ParentID).str(c.DisplayName).
		str(c.Currency).num(c.Allocation).sum()
}

func (c *MoveAllocation) Fingerprint() string {
	f := &fingerprinter{}
	return f.str("MoveAllocation").str(c.Caller).str(c.SourceID).str(c.DestinationID).num(c.Amount).
		str(c.Reason).sum()
}

func (c *Commit) Fingerprint() string {
	f := &fingerprinter{}
	f.str("Commit").str(c.Caller).str(c.EnvelopeID).str(c.Beneficiary).str(c.Project).
		num(c.Amount).str(c.Description)
	c.Policy.add(f)
	return f.sum()
}

func (c *Release) Fingerprint() string {
	f := &fingerprinter{}
	return f.str("Release").str(c.Caller).str(c.CommitmentID).num(c.Amount).str(c.Reason).sum()
}
