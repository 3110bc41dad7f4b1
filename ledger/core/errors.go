package core

import (
	"errors"
	"fmt"
	"strconv"
)

// Reason names a failure. Reasons are stable: clients switch on them, and the server maps each to
// one gRPC code in one table.
type Reason string

// The reasons the ledger can give.
const (
	// ReasonInvalidArgument: a field is missing or malformed; nothing was looked up or recorded.
	ReasonInvalidArgument Reason = "INVALID_ARGUMENT"
	// ReasonInvalidPageToken: a page token was not made by this server for these filters.
	ReasonInvalidPageToken Reason = "INVALID_PAGE_TOKEN"
	// ReasonEnvelopeNotFound: the named envelope does not exist.
	ReasonEnvelopeNotFound Reason = "ENVELOPE_NOT_FOUND"
	// ReasonCommitmentNotFound: the named commitment does not exist.
	ReasonCommitmentNotFound Reason = "COMMITMENT_NOT_FOUND"
	// ReasonEnvelopeAlreadyExists: an envelope with that id exists.
	ReasonEnvelopeAlreadyExists Reason = "ENVELOPE_ALREADY_EXISTS"
	// ReasonInsufficientFunds: the envelope's available amount does not cover the request.
	ReasonInsufficientFunds Reason = "INSUFFICIENT_FUNDS"
	// ReasonReleaseExceedsRemaining: a release larger than what the commitment still holds.
	ReasonReleaseExceedsRemaining Reason = "RELEASE_EXCEEDS_REMAINING"
	// ReasonCurrencyMismatch: two envelopes (or an envelope and a request) disagree on currency.
	ReasonCurrencyMismatch Reason = "CURRENCY_MISMATCH"
	// ReasonEnvelopeTooDeep: a child envelope would be nested deeper than MaxEnvelopeDepth
	// levels.
	ReasonEnvelopeTooDeep Reason = "ENVELOPE_TOO_DEEP"
	// ReasonEnvelopesNotRelated: allocation can only move between a parent and its child or
	// between siblings.
	ReasonEnvelopesNotRelated Reason = "ENVELOPES_NOT_RELATED"
	// ReasonAmountOverflow: a balance would leave the range of a 64-bit integer.
	ReasonAmountOverflow Reason = "AMOUNT_OVERFLOW"
	// ReasonRequestIDReused: the request id was already used for a different request.
	ReasonRequestIDReused Reason = "REQUEST_ID_REUSED"
	// ReasonStoreUnavailable: the database cannot be reached; nothing was recorded; retry.
	ReasonStoreUnavailable Reason = "STORE_UNAVAILABLE"
	// ReasonTransactionConflict: the transaction lost its race too many times; nothing was
	// recorded; retry.
	ReasonTransactionConflict Reason = "TRANSACTION_CONFLICT"
	// ReasonInternal: a bug or an invariant found broken; nothing was recorded.
	ReasonInternal Reason = "INTERNAL"
	// ReasonETagMismatch: the etag sent with a request (AIP-154) is not the current one: what it
	// guards changed since it was read. Nothing is recorded, not even under the request id (see
	// IsRefusal), so the caller may read again and send the same request with a fresh etag.
	ReasonETagMismatch Reason = "ETAG_MISMATCH"
	// ReasonVerificationNotFound: the named verification is not known to this process.
	ReasonVerificationNotFound Reason = "VERIFICATION_NOT_FOUND"
	// ReasonVerificationRunning: a verification is already running; one runs at a time.
	ReasonVerificationRunning Reason = "VERIFICATION_RUNNING"
)

// Error is a failure with a stable Reason. Errors returned by the ledger can be inspected with
// errors.Is against the Err* values below (which compare by reason) and errors.As to read the
// metadata.
type Error struct {
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// Field is the request field at fault, for ReasonInvalidArgument.
	Field string `json:"field,omitempty"`
	// Metadata holds the figures of the failure, e.g. "available" and "requested" in minor units.
	Metadata map[string]string `json:"metadata,omitempty"`

	cause error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Reason)
	}
	return e.Message
}

// Is reports whether target is an *Error with the same reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// Unwrap returns the underlying cause, if any (a database error, for instance).
func (e *Error) Unwrap() error { return e.cause }

// Retryable reports whether the same request may succeed if sent again unchanged.
func (e *Error) Retryable() bool {
	return e.Reason == ReasonStoreUnavailable || e.Reason == ReasonTransactionConflict
}

// Sentinel errors to use with errors.Is.
var (
	ErrInvalidArgument         = &Error{Reason: ReasonInvalidArgument}
	ErrInvalidPageToken        = &Error{Reason: ReasonInvalidPageToken}
	ErrEnvelopeNotFound        = &Error{Reason: ReasonEnvelopeNotFound}
	ErrCommitmentNotFound      = &Error{Reason: ReasonCommitmentNotFound}
	ErrEnvelopeAlreadyExists   = &Error{Reason: ReasonEnvelopeAlreadyExists}
	ErrInsufficientFunds       = &Error{Reason: ReasonInsufficientFunds}
	ErrReleaseExceedsRemaining = &Error{Reason: ReasonReleaseExceedsRemaining}
	ErrCurrencyMismatch        = &Error{Reason: ReasonCurrencyMismatch}
	ErrEnvelopesNotRelated     = &Error{Reason: ReasonEnvelopesNotRelated}
	ErrEnvelopeTooDeep         = &Error{Reason: ReasonEnvelopeTooDeep}
	ErrAmountOverflow          = &Error{Reason: ReasonAmountOverflow}
	ErrRequestIDReused         = &Error{Reason: ReasonRequestIDReused}
	ErrStoreUnavailable        = &Error{Reason: ReasonStoreUnavailable}
	ErrTransactionConflict     = &Error{Reason: ReasonTransactionConflict}
	ErrInternal                = &Error{Reason: ReasonInternal}
	ErrETagMismatch            = &Error{Reason: ReasonETagMismatch}
	ErrVerificationNotFound    = &Error{Reason: ReasonVerificationNotFound}
	ErrVerificationRunning     = &Error{Reason: ReasonVerificationRunning}
)

// InvalidArgument is the refusal of a malformed request field.
func InvalidArgument(field, format string, args ...any) *Error {
	return &Error{Reason: ReasonInvalidArgument, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// EnvelopeNotFound is the refusal of a request naming an envelope that does not exist.
func EnvelopeNotFound(id string) *Error {
	return &Error{
		Reason:   ReasonEnvelopeNotFound,
		Message:  fmt.Sprintf("envelope %q does not exist", EnvelopeName(id)),
		Metadata: map[string]string{"envelope": EnvelopeName(id)},
	}
}

// CommitmentNotFound is the refusal of a request naming a commitment that does not exist.
func CommitmentNotFound(id string) *Error {
	return &Error{
		Reason:   ReasonCommitmentNotFound,
		Message:  fmt.Sprintf("commitment %q does not exist", CommitmentName(id)),
		Metadata: map[string]string{"commitment": CommitmentName(id)},
	}
}

func insufficientFunds(env *Envelope, requested int64) *Error {
	return &Error{
		Reason: ReasonInsufficientFunds,
		Message: fmt.Sprintf("envelope %q has %d available, %d requested",
			EnvelopeName(env.ID), env.Available(), requested),
		Metadata: map[string]string{
			"envelope":      EnvelopeName(env.ID),
			"available":     strconv.FormatInt(env.Available(), 10),
			"requested":     strconv.FormatInt(requested, 10),
			"currency_code": env.Currency,
		},
	}
}

func overflow(what string) *Error {
	return &Error{Reason: ReasonAmountOverflow, Message: what + " would exceed the largest amount the ledger holds"}
}

// Internal is a bug or a broken invariant: the request fails and nothing is recorded.
func Internal(format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Reason: ReasonInternal, Message: "internal error", cause: err}
}

// AsError returns err as an *Error when it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Wrap returns an error with reason and message whose cause is err (a database error, say).
func Wrap(reason Reason, message string, err error) *Error {
	return &Error{Reason: reason, Message: message, cause: err}
}
