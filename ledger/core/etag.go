package core

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"regexp"
)

// Etags (AIP-154) let an administrator say "only if nothing changed since I read it". They are
// opaque to clients, which compare them for equality only, and are computed from stored state, so
// they are the same in every process and survive restarts.
//
// An envelope's etag is a digest of its id, its update time and its balances. It changes with
// every write of the envelope's row: each one is made by a transaction that holds the row's lock
// and stamps it with a time later than the row's stored update time (the ledger's stampAfter), so
// no two states of one envelope share an update time, whatever the processes and their clocks.
// The balances are in the digest as well, so that a writer that forgot to move the update time
// would still change the etag when it changes a balance.
//
// The etag of an envelope's rule sets is a digest of its id and of how many rule sets it has: rule
// sets are append-only (invariant 6), so their number grows with every change and never returns to
// an earlier value.

// EnvelopeETag is the etag of an envelope as it is now.
func EnvelopeETag(e Envelope) string {
	b := []byte("envelope\x00" + e.ID + "\x00")
	for _, v := range []int64{e.UpdatedAt.UnixMicro(), e.Allocation, e.Committed, e.ChildrenAllocated, e.Released, e.CommitmentCount} {
		b = binary.AppendVarint(b, v)
	}
	return digest(b)
}

// RulesETag is the etag of an envelope's rule sets when it has count of them.
func RulesETag(envelopeID string, count int64) string {
	return digest(binary.AppendVarint([]byte("rules\x00"+envelopeID+"\x00"), count))
}

// digest is 16 characters of base64url: 96 bits of SHA-256, so that two states never share an etag
// by chance.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// CheckETag refuses with ETAG_MISMATCH when given is set and is not current, the etag of what
// names (an envelope or its rules) now. An empty etag checks nothing.
func CheckETag(given, current, envelopeID, what string) error {
	if given == "" || given == current {
		return nil
	}
	return &Error{Reason: ReasonETagMismatch,
		Message: fmt.Sprintf("%s %q changed since the etag sent was read; nothing was recorded: read it again, decide again, and send the request again",
			what, EnvelopeName(envelopeID)),
		Metadata: map[string]string{"envelope": EnvelopeName(envelopeID)}}
}

var etagPattern = regexp.MustCompile(Fields["etag"].Pattern)

// checkETag checks an etag field of a request (Fields["etag"]): at most 64 printable ASCII
// characters without spaces, or empty.
func checkETag(field, v string) error {
	if len(v) > Fields[field].MaxLen || !etagPattern.MatchString(v) {
		return InvalidArgument(field, "must be at most %d printable ASCII characters without spaces", Fields[field].MaxLen)
	}
	return nil
}
