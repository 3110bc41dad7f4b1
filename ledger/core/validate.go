package core

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Validation. The server validates requests with protovalidate first; the ledger checks again so
// that no caller of this package (a benchmark, a tool) can write a malformed row.

// Field is the rule of one kind of request field: its length in characters (Unicode code
// points, as protovalidate counts them) and, for identifiers, the pattern it must match.
type Field struct {
	MinLen, MaxLen int
	Pattern        string
}

// Fields are the rules of the ledger's request fields, by their name in the .proto files. The
// gRPC boundary checks the same rules, written in the .proto as protovalidate rules; the test
// TestFieldRulesAgreeWithProto (server) walks every request message and fails where the two
// differ, so that the rules are written once and checked twice.
var Fields = map[string]Field{
	"request_id":   {1, 128, `^[!-~]+$`},
	"envelope_id":  {1, 63, `^[a-z]([a-z0-9-]*[a-z0-9])?$`},
	"display_name": {0, 200, ""},
	"beneficiary":  {1, 200, ""},
	"project":      {1, 200, ""},
	"description":  {0, 500, ""},
	"reason":       {1, 500, ""},
	"territory":    {0, 200, ""},
	"call":         {1, 200, ""},
	// Etags (AIP-154): optional, opaque to clients; the ledger's are 16 characters.
	"etag":             {0, 64, `^[!-~]*$`},
	"destination_etag": {0, 64, `^[!-~]*$`},
	// Publication (issue 13 §4; see publication.go). A SIRET's Luhn key is checked beyond its
	// pattern, by the ledger only.
	"decision_reference":     {0, 200, ""},
	"beneficiary_legal_name": {0, 200, ""},
	"beneficiary_siret":      {0, 14, `^[0-9]{14}$`},
	"beneficiary_rna":        {0, 10, `^W[0-9]{9}$`},
	"purpose":                {0, 256, ""},
	"granting_body_name":     {0, 200, ""},
	"granting_body_siret":    {0, 14, `^[0-9]{14}$`},
}

var (
	envelopeIDPattern = regexp.MustCompile(Fields["envelope_id"].Pattern)
	requestIDPattern  = regexp.MustCompile(Fields["request_id"].Pattern)
	currencyPattern   = regexp.MustCompile(`^[A-Z]{3}$`)
	// The ids the ledger makes: canonical UUIDs, lowercase with dashes. PostgreSQL and CockroachDB
	// store them as native UUIDs, which refuse any other text: so must the API, before a query.
	commitmentIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// CheckField checks the text s of a field named name in Fields, reported as path (name itself,
// or a path such as items[3].name).
func CheckField(path, name, s string) error {
	f, ok := Fields[name]
	if !ok {
		return Internal("no rule for field %s", name)
	}
	return CheckText(path, s, f.MinLen, f.MaxLen)
}

// CheckRequestID checks a request id.
func CheckRequestID(id string) error {
	if !isRequestID(id) {
		return InvalidArgument("request_id", "must be 1 to 128 printable ASCII characters without spaces")
	}
	return nil
}

// CheckEnvelopeID checks the id of an envelope named in field.
func CheckEnvelopeID(field, id string) error {
	if !isEnvelopeID(id) {
		return InvalidArgument(field, "must be 1 to 63 lower-case letters, digits and hyphens, starting with a letter")
	}
	return nil
}

// Every request names its request id and its envelope's, and the ledger checks them again after
// the gRPC boundary did: by hand, since a regular expression cost about 2 % of the server's CPU
// per award. isRequestID and isEnvelopeID are the rules of Fields, length and pattern, byte by
// byte; TestIDCheckersMatchTheirPatterns holds them to requestIDPattern and envelopeIDPattern.
var (
	requestIDMaxLen  = Fields["request_id"].MaxLen
	envelopeIDMaxLen = Fields["envelope_id"].MaxLen
)

// isRequestID: 1 to 128 bytes, each printable ASCII other than space ('!' to '~').
func isRequestID(id string) bool {
	if len(id) == 0 || len(id) > requestIDMaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '!' || id[i] > '~' {
			return false
		}
	}
	return true
}

// isEnvelopeID: 1 to 63 bytes, lower-case letters, digits and hyphens, a letter first, no hyphen
// last.
func isEnvelopeID(id string) bool {
	if len(id) == 0 || len(id) > envelopeIDMaxLen || id[0] < 'a' || id[0] > 'z' || id[len(id)-1] == '-' {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// TextPattern is the .proto's pattern of free text and text filters: no character that
// IsHiddenControl finds. TestTextPatternIsCheckText (server) checks that they agree.
//
// The pattern names the characters themselves beyond DEL (the .proto writes them \u007f…), not
// RE2's \x{…}, so that the regular expressions of every language read it alike.
const TextPattern = "^[^\\x00-\\x1f\u007f-\u009f\u200b\u2028-\u202e\u2066-\u2069\ufeff]*$"

// ShowHidden writes each character of s that IsHiddenControl finds as its escape (\u202E), so
// that a message quoting a rule or a value reads as it is (TextPattern names those characters
// themselves, and a right-to-left override in it would turn the rest of the line around).
func ShowHidden(s string) string {
	if !strings.ContainsFunc(s, IsHiddenControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if IsHiddenControl(r) {
			fmt.Fprintf(&b, "\\u%04X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// IsHiddenControl reports whether r may not appear in free text: a control character (C0, DEL,
// C1), a line or paragraph separator, a bidirectional embedding, override or isolate (which
// would make a name read otherwise than it is stored), a zero-width space or a byte-order mark.
func IsHiddenControl(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f, r == 0x200b, r >= 0x2028 && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

// CheckText checks a free-text field: valid UTF-8, min to max characters, no control character
// (IsHiddenControl).
func CheckText(field, s string, min, max int) error {
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return InvalidArgument(field, "must be valid UTF-8")
	case n < min:
		return InvalidArgument(field, "must not be empty")
	case n > max:
		return InvalidArgument(field, "must be at most %d characters", max)
	case strings.ContainsFunc(s, IsHiddenControl):
		return InvalidArgument(field, "must not contain control characters, line separators or bidirectional overrides")
	}
	return nil
}

// The times the ledger takes and gives back: those of google.protobuf.Timestamp and RFC 3339,
// 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. Their microseconds since the Unix epoch,
// as stored, fit an int64 throughout; beyond, they would wrap, and JSON cannot hold them.
var (
	MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// CheckTime checks that a time given in field is between MinTime and MaxTime.
func CheckTime(field string, t time.Time) error {
	if t.Before(MinTime) || t.After(MaxTime) {
		return InvalidArgument(field, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z")
	}
	return nil
}

// checkCaller refuses a caller (the authenticated principal, stored with every entry) that no
// engine can store: invalid UTF-8, or a NUL, which PostgreSQL text cannot hold.
func checkCaller(caller string) error {
	if !utf8.ValidString(caller) || strings.ContainsRune(caller, 0) {
		return InvalidArgument("caller", "must be valid UTF-8 without NUL")
	}
	return nil
}

func checkAmount(field string, v int64) error {
	if v <= 0 {
		return InvalidArgument(field, "must be a positive amount in minor units")
	}
	return nil
}

// FirstError returns the first non-nil error of errs, in order.
func FirstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a CreateEnvelope's fields.
func (c *CreateEnvelope) Validate() error {
	err := FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckEnvelopeID("envelope_id", c.EnvelopeID),
		CheckField("display_name", "display_name", c.DisplayName), checkAmount("allocation", c.Allocation),
		checkEffectiveRange(c.Effective))
	if err != nil {
		return err
	}
	if c.ParentID != "" {
		if err := CheckEnvelopeID("parent", c.ParentID); err != nil {
			return err
		}
	}
	if c.Currency != "" && !currencyPattern.MatchString(c.Currency) {
		return InvalidArgument("currency_code", "must be an ISO 4217 code of three upper-case letters")
	}
	if err := c.GrantingBody.validate(); err != nil {
		return err
	}
	if c.ParentID != "" && c.GrantingBody.Given() {
		field := "granting_body_name"
		if c.GrantingBodyName == "" {
			field = "granting_body_siret"
		}
		return InvalidArgument(field, "only a root envelope names its granting body; a child envelope's is its root's")
	}
	return nil
}

// Validate checks a MoveAllocation's fields.
func (c *MoveAllocation) Validate() error {
	err := FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckEnvelopeID("source", c.SourceID),
		CheckEnvelopeID("destination", c.DestinationID), checkAmount("amount", c.Amount),
		CheckField("reason", "reason", c.Reason), checkEffectiveRange(c.Effective),
		checkETag("etag", c.ETag), checkETag("destination_etag", c.DestinationETag))
	if err != nil {
		return err
	}
	if c.SourceID == c.DestinationID {
		return InvalidArgument("destination", "must differ from source")
	}
	return nil
}

// Validate checks a Commit's fields.
func (c *Commit) Validate() error {
	return FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckEnvelopeID("envelope", c.EnvelopeID),
		CheckField("beneficiary", "beneficiary", c.Beneficiary), CheckField("project", "project", c.Project),
		checkAmount("amount", c.Amount), CheckField("description", "description", c.Description), c.Policy.validate(""),
		checkEffectiveRange(c.Effective), c.Publication.validate(""))
}

// CheckCommitmentID checks the id of a commitment named in field.
func CheckCommitmentID(field, id string) error {
	if !commitmentIDPattern.MatchString(id) {
		return InvalidArgument(field, "must name a commitment, commitments/{uuid}")
	}
	return nil
}

// Validate checks a Release's fields.
func (c *Release) Validate() error {
	if err := CheckCommitmentID("commitment", c.CommitmentID); err != nil {
		return err
	}
	return FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), checkAmount("amount", c.Amount),
		CheckField("reason", "reason", c.Reason), checkEffectiveRange(c.Effective))
}
