package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the budget ledger's errors. Reasons are read
// only from ErrorInfo details of this domain.
const ErrorDomain = "budgetledger.github.io"

// Reason is the stable name of a failure, the reason of the google.rpc.ErrorInfo the server sends.
type Reason string

// The reasons the server gives (see the error table of the README).
const (
	ReasonInvalidArgument         Reason = "INVALID_ARGUMENT"
	ReasonInvalidPageToken        Reason = "INVALID_PAGE_TOKEN"
	ReasonEnvelopeNotFound        Reason = "ENVELOPE_NOT_FOUND"
	ReasonCommitmentNotFound      Reason = "COMMITMENT_NOT_FOUND"
	ReasonEnvelopeAlreadyExists   Reason = "ENVELOPE_ALREADY_EXISTS"
	ReasonInsufficientFunds       Reason = "INSUFFICIENT_FUNDS"
	ReasonReleaseExceedsRemaining Reason = "RELEASE_EXCEEDS_REMAINING"
	ReasonCurrencyMismatch        Reason = "CURRENCY_MISMATCH"
	ReasonEnvelopesNotRelated     Reason = "ENVELOPES_NOT_RELATED"
	ReasonEnvelopeTooDeep         Reason = "ENVELOPE_TOO_DEEP"
	ReasonAmountOverflow          Reason = "AMOUNT_OVERFLOW"
	ReasonRequestIDReused         Reason = "REQUEST_ID_REUSED"
	ReasonTransactionConflict     Reason = "TRANSACTION_CONFLICT"
	ReasonStoreUnavailable        Reason = "STORE_UNAVAILABLE"
	ReasonDeadlineExceeded        Reason = "DEADLINE_EXCEEDED"
	ReasonRateLimited             Reason = "RATE_LIMITED"
	ReasonInternal                Reason = "INTERNAL"
	// The refusals of effective times (see the server's docs/dates.md).
	ReasonEffectiveTimeInFuture         Reason = "EFFECTIVE_TIME_IN_FUTURE"
	ReasonEffectiveTimeBeforeEnvelope   Reason = "EFFECTIVE_TIME_BEFORE_ENVELOPE"
	ReasonEffectiveTimeBeforeLatest     Reason = "EFFECTIVE_TIME_BEFORE_LATEST"
	ReasonEffectiveTimeBeforeCommitment Reason = "EFFECTIVE_TIME_BEFORE_COMMITMENT"
	ReasonEffectiveTimeBeforeHold       Reason = "EFFECTIVE_TIME_BEFORE_HOLD"
	ReasonEffectiveTimeBeforePayment    Reason = "EFFECTIVE_TIME_BEFORE_PAYMENT"
	ReasonEffectiveTimeBeforeRelease    Reason = "EFFECTIVE_TIME_BEFORE_RELEASE"
	ReasonPolicyViolation               Reason = "POLICY_VIOLATION"
	ReasonCancelled                     Reason = "CANCELLED"
	ReasonUnauthenticated               Reason = "UNAUTHENTICATED"
	ReasonPermissionDenied              Reason = "PERMISSION_DENIED"
	// ReasonETagMismatch: the etag sent (MoveAllocationParams.ETag, a SetEnvelopeRules etag) is
	// not the current one; nothing was recorded: read again, decide again, send again (AIP-154).
	ReasonETagMismatch Reason = "ETAG_MISMATCH"
	// ReasonVerificationNotFound: the server does not know the verification (see
	// Client.GetVerification).
	ReasonVerificationNotFound Reason = "VERIFICATION_NOT_FOUND"
	// ReasonVerificationRunning: a verification is already running on the server; its name is in
	// the error's metadata "verification".
	ReasonVerificationRunning Reason = "VERIFICATION_RUNNING"
	// ReasonMethodNotFound: the server has no such method (a server of an older release, say);
	// the method is in the error's metadata "method".
	ReasonMethodNotFound Reason = "METHOD_NOT_FOUND"
	// Payments and closing.
	ReasonCommitmentClosed        Reason = "COMMITMENT_CLOSED"
	ReasonPaymentExceedsRemaining Reason = "PAYMENT_EXCEEDS_REMAINING"
	ReasonReleaseExceedsUnpaid    Reason = "RELEASE_EXCEEDS_UNPAID"
)

// Sentinel errors, one per reason, for errors.Is. A few also match every error of their gRPC code,
// whatever its reason (or lack of one): ErrInvalidArgument matches any INVALID_ARGUMENT (so an
// INVALID_PAGE_TOKEN is both ErrInvalidPageToken and ErrInvalidArgument), ErrUnavailable any
// UNAVAILABLE (a database outage as well as a server that cannot be reached), ErrConflict any
// ABORTED, ErrDeadlineExceeded any DEADLINE_EXCEEDED, ErrCancelled any CANCELLED, ErrInternal any
// INTERNAL.
var (
	ErrInvalidArgument         error = &sentinel{reason: ReasonInvalidArgument, code: codes.InvalidArgument, byCode: true}
	ErrInvalidPageToken        error = &sentinel{reason: ReasonInvalidPageToken}
	ErrEnvelopeNotFound        error = &sentinel{reason: ReasonEnvelopeNotFound}
	ErrCommitmentNotFound      error = &sentinel{reason: ReasonCommitmentNotFound}
	ErrEnvelopeAlreadyExists   error = &sentinel{reason: ReasonEnvelopeAlreadyExists}
	ErrInsufficientFunds       error = &sentinel{reason: ReasonInsufficientFunds}
	ErrReleaseExceedsRemaining error = &sentinel{reason: ReasonReleaseExceedsRemaining}
	ErrCurrencyMismatch        error = &sentinel{reason: ReasonCurrencyMismatch}
	ErrEnvelopesNotRelated     error = &sentinel{reason: ReasonEnvelopesNotRelated}
	ErrEnvelopeTooDeep         error = &sentinel{reason: ReasonEnvelopeTooDeep}
	ErrAmountOverflow          error = &sentinel{reason: ReasonAmountOverflow}
	ErrRequestIDReused         error = &sentinel{reason: ReasonRequestIDReused}
	// ErrEffectiveTimeInFuture: an effective time later than the ledger's clock when it
	// records the request; ErrEffectiveTimeBeforeEnvelope: before an envelope took effect;
	// ErrEffectiveTimeBeforeLatest: a reduction of an envelope dated before the latest effective
	// time recorded on it; ErrEffectiveTimeBeforeCommitment: a release, payment or closing dated
	// before its commitment.
	ErrEffectiveTimeInFuture         error = &sentinel{reason: ReasonEffectiveTimeInFuture}
	ErrEffectiveTimeBeforeEnvelope   error = &sentinel{reason: ReasonEffectiveTimeBeforeEnvelope}
	ErrEffectiveTimeBeforeLatest     error = &sentinel{reason: ReasonEffectiveTimeBeforeLatest}
	ErrEffectiveTimeBeforeCommitment error = &sentinel{reason: ReasonEffectiveTimeBeforeCommitment}
	// ErrEffectiveTimeBeforeHold: a hold's confirmation or cancellation dated before the hold.
	ErrEffectiveTimeBeforeHold error = &sentinel{reason: ReasonEffectiveTimeBeforeHold}
	// ErrEffectiveTimeBeforePayment: a closing dated before the commitment's last payment.
	ErrEffectiveTimeBeforePayment error = &sentinel{reason: ReasonEffectiveTimeBeforePayment}
	// ErrEffectiveTimeBeforeRelease: a closing dated before the commitment's last release.
	ErrEffectiveTimeBeforeRelease error = &sentinel{reason: ReasonEffectiveTimeBeforeRelease}
	ErrConflict                   error = &sentinel{reason: ReasonTransactionConflict, code: codes.Aborted, byCode: true}
	ErrUnavailable                error = &sentinel{reason: ReasonStoreUnavailable, code: codes.Unavailable, byCode: true}
	ErrDeadlineExceeded           error = &sentinel{reason: ReasonDeadlineExceeded, code: codes.DeadlineExceeded, byCode: true}
	ErrCancelled                  error = &sentinel{reason: ReasonCancelled, code: codes.Canceled, byCode: true}
	ErrInternal                   error = &sentinel{reason: ReasonInternal, code: codes.Internal, byCode: true}
	// ErrPolicyViolation is an award that breaks a funding rule (share, population, window).
	ErrPolicyViolation error = &sentinel{reason: ReasonPolicyViolation}
	// ErrETagMismatch is a stale etag (ABORTED, so it also matches ErrConflict); the client does
	// not retry it, since the same request would meet the same etag.
	ErrETagMismatch         error = &sentinel{reason: ReasonETagMismatch}
	ErrVerificationNotFound error = &sentinel{reason: ReasonVerificationNotFound}
	ErrVerificationRunning  error = &sentinel{reason: ReasonVerificationRunning}
	// ErrCommitmentClosed: a payment, release or closing of a closed commitment.
	ErrCommitmentClosed error = &sentinel{reason: ReasonCommitmentClosed}
	// ErrPaymentExceedsRemaining: a payment larger than what remains to pay (metadata
	// remaining_to_pay).
	ErrPaymentExceedsRemaining error = &sentinel{reason: ReasonPaymentExceedsRemaining}
	// ErrReleaseExceedsUnpaid: a release of a partly paid commitment larger than what remains to
	// pay; what was paid cannot be returned (metadata remaining_to_pay, paid).
	ErrReleaseExceedsUnpaid error = &sentinel{reason: ReasonReleaseExceedsUnpaid}
	// ErrRateLimited is the server's rate limit: the caller's principal is over it (the client
	// retries it after the server's RetryInfo delay, within its bound). Other RESOURCE_EXHAUSTED
	// errors, such as a message over a size limit, do not match it and are not retried.
	ErrRateLimited error = &sentinel{reason: ReasonRateLimited}

	// ErrUnauthenticated and ErrPermissionDenied match the gRPC codes of the same names.
	ErrUnauthenticated  error = &sentinel{code: codes.Unauthenticated, byCode: true}
	ErrPermissionDenied error = &sentinel{code: codes.PermissionDenied, byCode: true}
)

// sentinel is the type of the Err* values. It is not *Error so that errors.As(err, &e) only ever
// yields an error that came from a call.
type sentinel struct {
	reason Reason
	code   codes.Code
	byCode bool // also match any error with this code
}

func (s *sentinel) Error() string {
	if s.reason != "" {
		return "budgetledger: " + string(s.reason)
	}
	return "budgetledger: " + s.code.String()
}

// Error is a failed call: its gRPC code, the reason and metadata of its google.rpc.ErrorInfo, and
// the field violations of its google.rpc.BadRequest. Every error a Client's calls return is an
// *Error (read it with errors.As); errors.Is matches it against the Err* sentinels; and it keeps
// its gRPC status, so status.Code and status.FromError work on it.
type Error struct {
	// Code is the gRPC code.
	Code codes.Code
	// Reason is the ErrorInfo reason (empty when the error did not come from the ledger, such as a
	// server that cannot be reached).
	Reason Reason
	// Message is the status message, meant for people.
	Message string
	// Metadata holds the figures of the failure, e.g. "available" and "requested" (minor units).
	Metadata map[string]string
	// FieldViolations name the invalid fields of an INVALID_ARGUMENT.
	FieldViolations []FieldViolation
	// RequestID is the request id the failed mutation was sent with, so that it can be sent again
	// with the same id to learn its outcome (after a DEADLINE_EXCEEDED, for instance).
	RequestID string

	status *status.Status
	cause  error
}

// FieldViolation is one invalid field of a request.
type FieldViolation struct {
	Field       string // path of the field, e.g. "amount"
	Description string
}

func (e *Error) Error() string {
	var b []byte
	b = append(b, "budgetledger: "...)
	b = append(b, e.Code.String()...)
	if e.Reason != "" {
		b = append(b, ' ')
		b = append(b, e.Reason...)
	}
	if e.Message != "" {
		b = append(b, ": "...)
		b = append(b, e.Message...)
	}
	return string(b)
}

// Is reports whether target is the sentinel of e's reason, or a sentinel that matches e's code.
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	if !ok {
		return false
	}
	return (s.reason != "" && s.reason == e.Reason) || (s.byCode && s.code == e.Code)
}

// Unwrap returns the context's error when the call ended because its context was cancelled or
// its deadline passed, so that errors.Is(err, context.DeadlineExceeded) works; nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus returns the status the server sent, details included.
func (e *Error) GRPCStatus() *status.Status {
	if e.status == nil { // an Error made by hand
		return status.New(e.Code, e.Message)
	}
	return e.status
}

// Available is the envelope's available amount of an INSUFFICIENT_FUNDS, in minor units.
func (e *Error) Available() (int64, bool) { return e.Int64("available") }

// Requested is the amount asked for by an INSUFFICIENT_FUNDS or RELEASE_EXCEEDS_REMAINING.
func (e *Error) Requested() (int64, bool) { return e.Int64("requested") }

// Remaining is the commitment's remaining amount of a RELEASE_EXCEEDS_REMAINING.
func (e *Error) Remaining() (int64, bool) { return e.Int64("remaining") }

// Int64 reads an integer of the metadata; ok is false when it is missing or not an integer.
func (e *Error) Int64(key string) (v int64, ok bool) {
	s, found := e.Metadata[key]
	if !found {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// RetryDelay is the google.rpc.RetryInfo delay the server asked for, if any.
func (e *Error) RetryDelay() (time.Duration, bool) { return retryDelay(e.GRPCStatus()) }

// Retryable reports whether sending the same request again (with the same request id) may
// succeed: the failures the client itself retries.
func (e *Error) Retryable() bool { return retryable(e.GRPCStatus()) }

// toError turns the error of a call into an *Error. ctx is the call's context; req its request,
// whose request id (if any) is kept. Errors that carry no gRPC status are returned unchanged.
func toError(ctx context.Context, req any, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	if info := errorInfo(st); info != nil {
		e.Reason, e.Metadata = Reason(info.GetReason()), info.GetMetadata()
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	if r, ok := req.(interface{ GetRequestId() string }); ok {
		e.RequestID = r.GetRequestId()
	}
	if (e.Code == codes.Canceled || e.Code == codes.DeadlineExceeded) && ctx.Err() != nil {
		e.cause = ctx.Err()
	}
	return e
}

// contextError is the *Error of a context that ended while the client waited between calls (its
// cause is ctx.Err(): errors.Is finds context.Canceled or context.DeadlineExceeded, as it finds
// ErrCancelled or ErrDeadlineExceeded).
func contextError(ctx context.Context) error {
	code := codes.Canceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = codes.DeadlineExceeded
	}
	return toError(ctx, nil, status.Error(code, ctx.Err().Error()))
}

// errorInfo returns the first google.rpc.ErrorInfo of the ledger's domain in st, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return info
		}
	}
	return nil
}

// reasonOf is the reason of st's ErrorInfo; empty when it has none from the ledger.
func reasonOf(st *status.Status) Reason { return Reason(errorInfo(st).GetReason()) }

// retryDelay reads the google.rpc.RetryInfo of a status.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return max(ri.GetRetryDelay().AsDuration(), 0), true
		}
	}
	return 0, false
}

// errorf makes an *Error for a failure found by the client itself.
func errorf(code codes.Code, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Code: code, Message: msg, status: status.New(code, msg)}
}
