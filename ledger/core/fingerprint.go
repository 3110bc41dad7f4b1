package core

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// Fingerprints. A request id names one operation: the fingerprint of everything the caller sent
// (and who sent it) is stored with the outcome, and a later request with the same id must have the
// same fingerprint.
//
// The encoding is canonical: a version tag, the operation's name, then every field of the
// operation in a fixed order, always (an optional field not given is encoded as its zero value),
// strings length-prefixed, integers as varints, lists preceded by their length. No two payloads
// encode alike, so no two share a fingerprint. Fingerprints made this way are stored with the
// prefix "v2:".
//
// Rows recorded before that hold a fingerprint without a prefix, made by the legacy encoding,
// which appended the policy fields of an award only when one was given: two different bulk calls
// could be built with the same legacy fingerprint. A request is compared with such a row by its
// legacy fingerprint, so that a retry of a request recorded before the upgrade still replays.

// fingerprintV2 prefixes every fingerprint of the canonical encoding.
const fingerprintV2 = "v2:"

// Fingerprint is what identifies a request's payload in the request log.
type Fingerprint struct {
	// Current is the canonical fingerprint ("v2:…"), the one recorded with new requests.
	Current string
	// Legacy is the fingerprint the legacy encoding gives the same request, for comparison with
	// rows recorded before the canonical encoding.
	Legacy string
}

// Matches reports whether a fingerprint stored in the request log is this request's: a canonical
// one is compared with Current, a legacy one (no version prefix) with Legacy.
func (f Fingerprint) Matches(stored string) bool {
	if strings.HasPrefix(stored, fingerprintV2) {
		return stored == f.Current
	}
	return stored == f.Legacy
}

// FingerprintDigest returns the 32 bytes of a canonical fingerprint ("v2:" and 64 lowercase hex
// digits), which the request log stores instead of its 67 characters; nil for any other.
func FingerprintDigest(fp string) []byte {
	hexDigits, ok := strings.CutPrefix(fp, fingerprintV2)
	if !ok || len(hexDigits) != 2*sha256.Size {
		return nil
	}
	d, err := hex.DecodeString(hexDigits)
	if err != nil || hex.EncodeToString(d) != hexDigits {
		return nil
	}
	return d
}

// FingerprintFromDigest is the canonical fingerprint whose digest is d (FingerprintDigest).
func FingerprintFromDigest(d []byte) string { return fingerprintV2 + hex.EncodeToString(d) }

type fingerprinter struct{ buf []byte }

// canonical starts a canonical fingerprint of the operation op.
func canonical(op string) *fingerprinter {
	return (&fingerprinter{}).str(fingerprintV2).str(op)
}

func (f *fingerprinter) str(s string) *fingerprinter {
	f.buf = binary.AppendUvarint(f.buf, uint64(len(s)))
	f.buf = append(f.buf, s...)
	return f
}

func (f *fingerprinter) num(v int64) *fingerprinter {
	f.buf = binary.AppendVarint(f.buf, v)
	return f
}

// policy appends the policy fields, always, each figure with whether it was given.
func (f *fingerprinter) policy(p Policy) *fingerprinter {
	return f.flag(p.HasEligibleCost()).num(p.EligibleCost).str(p.Territory).flag(p.HasPopulation()).num(p.Population)
}

// effective appends an operation's effective time, only when one is given: a request without
// one keeps the fingerprint it had before effective times existed (so that a retry across the
// upgrade still replays), and one with it adds a tagged field after every fixed field, so the
// encoding stays unambiguous.
func (f *fingerprinter) effective(t time.Time) *fingerprinter {
	if t.IsZero() {
		return f
	}
	return f.str("effective").num(t.UnixMicro())
}

func (f *fingerprinter) flag(b bool) *fingerprinter {
	if b {
		return f.num(1)
	}
	return f.num(0)
}

// sum is the hex SHA-256 of the encoding (a legacy fingerprint when the encoding is legacy).
func (f *fingerprinter) sum() string {
	h := sha256.Sum256(f.buf)
	return hex.EncodeToString(h[:])
}

// sumV2 is the fingerprint of a canonical encoding.
func (f *fingerprinter) sumV2() string { return fingerprintV2 + f.sum() }

func (c *CreateEnvelope) Fingerprint() Fingerprint {
	legacy := &fingerprinter{}
	return newFieldsGiven(c.GrantingBody.Given(), Fingerprint{
		Current: canonical("CreateEnvelope").str(c.Caller).str(c.EnvelopeID).str(c.ParentID).str(c.DisplayName).
			str(c.Currency).num(c.Allocation).effective(c.Effective).grantingBody(c.GrantingBody).sumV2(),
		Legacy: legacy.str("CreateEnvelope").str(c.Caller).str(c.EnvelopeID).str(c.ParentID).str(c.DisplayName).
			str(c.Currency).num(c.Allocation).effective(c.Effective).sum(),
	})
}

func (c *MoveAllocation) Fingerprint() Fingerprint {
	legacy := &fingerprinter{}
	return Fingerprint{
		Current: canonical("MoveAllocation").str(c.Caller).str(c.SourceID).str(c.DestinationID).num(c.Amount).
			str(c.Reason).effective(c.Effective).sumV2(),
		Legacy: legacy.str("MoveAllocation").str(c.Caller).str(c.SourceID).str(c.DestinationID).num(c.Amount).
			str(c.Reason).effective(c.Effective).sum(),
	}
}

func (c *Commit) Fingerprint() Fingerprint {
	legacy := &fingerprinter{}
	legacy.str("Commit").str(c.Caller).str(c.EnvelopeID).str(c.Beneficiary).str(c.Project).
		num(c.Amount).str(c.Description)
	c.Policy.addLegacy(legacy)
	legacy.effective(c.Effective)
	return newFieldsGiven(c.Publication.Given(), Fingerprint{
		Current: canonical("Commit").str(c.Caller).str(c.EnvelopeID).str(c.Beneficiary).str(c.Project).
			num(c.Amount).str(c.Description).policy(c.Policy).effective(c.Effective).optionalPublication(c.Publication).sumV2(),
		Legacy: legacy.sum(),
	})
}

func (c *Release) Fingerprint() Fingerprint {
	legacy := &fingerprinter{}
	return Fingerprint{
		Current: canonical("Release").str(c.Caller).str(c.CommitmentID).num(c.Amount).str(c.Reason).effective(c.Effective).sumV2(),
		Legacy:  legacy.str("Release").str(c.Caller).str(c.CommitmentID).num(c.Amount).str(c.Reason).effective(c.Effective).sum(),
	}
}

func (c *BulkCommit) Fingerprint() Fingerprint {
	f := canonical("BulkCommit").str(c.Caller).str(c.EnvelopeID).flag(c.AllOrNothing).num(int64(len(c.Items)))
	for _, it := range c.Items {
		f.str(it.Beneficiary).str(it.Project).num(it.Amount).str(it.Description).policy(it.Policy)
	}
	f.effective(c.Effective)
	given := f.itemPublications(c.Items)
	return newFieldsGiven(given, Fingerprint{Current: f.sumV2(), Legacy: c.legacyFingerprint()})
}

// legacyFingerprint is the legacy encoding of a bulk call, in which an item's policy fields are
// appended only when given: ambiguous, kept only to recognise rows recorded with it.
func (c *BulkCommit) legacyFingerprint() string {
	f := &fingerprinter{}
	f.str("BulkCommit").str(c.Caller).str(c.EnvelopeID).num(int64(len(c.Items)))
	if c.AllOrNothing {
		f.num(1)
	} else {
		f.num(0)
	}
	for _, it := range c.Items {
		f.str(it.Beneficiary).str(it.Project).num(it.Amount).str(it.Description)
		it.Policy.addLegacy(f)
	}
	f.effective(c.Effective)
	return f.sum()
}

// itemFingerprint is the fingerprint of item i of a bulk call whose fingerprint is call: it
// changes whenever any item of the call does.
func itemFingerprint(call Fingerprint, i int) Fingerprint {
	legacy := &fingerprinter{}
	return Fingerprint{
		Current: canonical("BulkItem").str(call.Current).num(int64(i)).sumV2(),
		Legacy:  legacy.str(call.Legacy).num(int64(i)).sum(),
	}
}

func (c *SetRules) Fingerprint() Fingerprint {
	// Rules is a struct of pointers: its JSON encoding is deterministic (fields in declaration
	// order, a field not given left out).
	raw, _ := json.Marshal(c.Rules)
	legacy := &fingerprinter{}
	return Fingerprint{
		Current: canonical("SetRules").str(c.Caller).str(c.EnvelopeID).str(c.Call).
			num(c.EffectiveTime.UnixMicro()).str(string(raw)).sumV2(),
		Legacy: legacy.str("SetRules").str(c.Caller).str(c.EnvelopeID).str(c.Call).
			num(c.EffectiveTime.UnixMicro()).str(string(raw)).sum(),
	}
}
