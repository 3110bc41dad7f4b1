package core

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Validation. The server validates requests with protovalidate first; the ledger checks again so
// that no caller of this package (a benchmark, a tool) can write a malformed row.

var (
	envelopeIDPattern   = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	requestIDPattern    = regexp.MustCompile(`^[!-~]{1,128}$`)
	currencyPattern     = regexp.MustCompile(`^[A-Z]{3}$`)
	commitmentIDPattern = regexp.MustCompile(`^[0-9a-f-]{36}$`)
)

func CheckRequestID(id string) error {
	if !requestIDPattern.MatchString(id) {
		return InvalidArgument("request_id", "must be 1 to 128 printable ASCII characters without spaces")
	}
	return nil
}

func CheckEnvelopeID(field, id string) error {
	if len(id) > 63 || !envelopeIDPattern.MatchString(id) {
		return InvalidArgument(field, "must be 1 to 63 lower-case letters, digits and hyphens, starting with a letter")
	}
	return nil
}

func CheckText(field, s string, min, max int) error {
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return InvalidArgument(field, "must be valid UTF-8")
	case n < min:
		return InvalidArgument(field, "must not be empty")
	case n > max:
		return InvalidArgument(field, "must be at most %d characters", max)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return InvalidArgument(field, "must not contain control characters")
	}
	return nil
}

func checkAmount(field string, v int64) error {
	if v <= 0 {
		return InvalidArgument(field, "must be a positive amount in minor units")
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *CreateEnvelope) Validate() error {
	err := firstError(CheckRequestID(c.RequestID), CheckEnvelopeID("envelope_id", c.EnvelopeID),
		CheckText("display_name", c.DisplayName, 0, 200), checkAmount("allocation", c.Allocation))
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
	return nil
}

func (c *MoveAllocation) Validate() error {
	err := firstError(CheckRequestID(c.RequestID), CheckEnvelopeID("source", c.SourceID),
		CheckEnvelopeID("destination", c.DestinationID), checkAmount("amount", c.Amount),
		CheckText("reason", c.Reason, 1, 500))
	if err != nil {
		return err
	}
	if c.SourceID == c.DestinationID {
		return InvalidArgument("destination", "must differ from source")
	}
	return nil
}

func (c *Commit) Validate() error {
	return firstError(CheckRequestID(c.RequestID), CheckEnvelopeID("envelope", c.EnvelopeID),
		CheckText("beneficiary", c.Beneficiary, 1, 200), CheckText("project", c.Project, 1, 200),
		checkAmount("amount", c.Amount), CheckText("description", c.Description, 0, 500), c.Policy.validate(""))
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
	return firstError(CheckRequestID(c.RequestID), checkAmount("amount", c.Amount),
		CheckText("reason", c.Reason, 1, 500))
}
