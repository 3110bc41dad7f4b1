package server

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/budgetledger/budgetledger/ledger"
)

// ErrorDomain is the domain of every google.rpc.ErrorInfo this server sends (AIP-193): the
// service's name, globally unique because it lies under a DNS name the project controls (its
// GitHub organisation's, github.com/budgetledger), and the prefix of the API's resource types
// ("budgetledger.github.io/Envelope"). It replaced "budgetledger.v1", the proto package, which is
// a version of the contract rather than a service. Clients compare it before reading a reason:
// client.ErrorDomain must be equal.
const ErrorDomain = "budgetledger.github.io"

// The reasons of the ErrorInfo the server sends on its own, not the ledger's.
const (
	reasonDeadlineExceeded = "DEADLINE_EXCEEDED"
	reasonCancelled        = "CANCELLED"
	reasonUnauthenticated  = "UNAUTHENTICATED"   // sent by auth.go
	reasonPermissionDenied = "PERMISSION_DENIED" // sent by auth.go
	reasonMethodNotFound   = "METHOD_NOT_FOUND"  // sent by unknownMethod
)

// serverReasonCodes is, for each reason the server sends on its own, its gRPC code. With
// reasonCodes it lists every reason an ErrorInfo of ErrorDomain can carry; the proto's ErrorReason
// enum lists the same (TestErrorReasonsAgree).
var serverReasonCodes = map[string]codes.Code{
	reasonDeadlineExceeded: codes.DeadlineExceeded,
	reasonCancelled:        codes.Canceled,
	reasonUnauthenticated:  codes.Unauthenticated,
	reasonPermissionDenied: codes.PermissionDenied,
	ReasonRateLimited:      codes.ResourceExhausted,
	reasonMethodNotFound:   codes.Unimplemented,
}

// unknownMethods answers a call of a service or method this server does not have (grpc-go's own
// answer carries no ErrorInfo), after the stream interceptors (authenticated, rate limited, counted
// under "unknown"), and logs it as a refusal, the name cut short.
func unknownMethods(log *slog.Logger) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		method = truncate(method, 200)
		log.InfoContext(stream.Context(), "call refused", "grpc.code", codes.Unimplemented.String(),
			"reason", reasonMethodNotFound, "grpc.method_sent", method)
		return withInfo(codes.Unimplemented, "this server has no method "+method, reasonMethodNotFound, map[string]string{"method": method})
	}
}

// reasonCodes is the one table from a ledger failure to its gRPC code, chosen by the litmus test
// of grpc-go's codes package: INVALID_ARGUMENT whatever the state, FAILED_PRECONDITION when the
// state must change first, ABORTED when a retry of the same request may succeed at once,
// UNAVAILABLE when the database is down.
var reasonCodes = map[ledger.Reason]codes.Code{
	ledger.ReasonInvalidArgument:         codes.InvalidArgument,
	ledger.ReasonInvalidPageToken:        codes.InvalidArgument,
	ledger.ReasonEnvelopeNotFound:        codes.NotFound,
	ledger.ReasonCommitmentNotFound:      codes.NotFound,
	ledger.ReasonEnvelopeAlreadyExists:   codes.AlreadyExists,
	ledger.ReasonInsufficientFunds:       codes.FailedPrecondition,
	ledger.ReasonReleaseExceedsRemaining: codes.FailedPrecondition,
	ledger.ReasonCurrencyMismatch:        codes.FailedPrecondition,
	ledger.ReasonEnvelopesNotRelated:     codes.FailedPrecondition,
	ledger.ReasonEnvelopeTooDeep:         codes.FailedPrecondition,
	ledger.ReasonAmountOverflow:          codes.FailedPrecondition,
	ledger.ReasonRequestIDReused:         codes.FailedPrecondition,
	ledger.ReasonPolicyViolation:         codes.FailedPrecondition,
	// An effective time is refused for the ledger's state (its clock, an envelope's dates), not
	// for its form: FAILED_PRECONDITION. Out of the years 0001-9999 it is INVALID_ARGUMENT.
	ledger.ReasonEffectiveTimeInFuture:         codes.FailedPrecondition,
	ledger.ReasonEffectiveTimeBeforeEnvelope:   codes.FailedPrecondition,
	ledger.ReasonEffectiveTimeBeforeLatest:     codes.FailedPrecondition,
	ledger.ReasonEffectiveTimeBeforeCommitment: codes.FailedPrecondition,
	ledger.ReasonEffectiveTimeBeforeHold:       codes.FailedPrecondition,
	ledger.ReasonEffectiveTimeBeforePayment:    codes.FailedPrecondition,
	ledger.ReasonEffectiveTimeBeforeRelease:    codes.FailedPrecondition,
	ledger.ReasonStoreUnavailable:              codes.Unavailable,
	ledger.ReasonTransactionConflict:           codes.Aborted,
	ledger.ReasonInternal:                      codes.Internal,
	// AIP-154: a stale etag is ABORTED (read, modify and write again), not retried unchanged.
	ledger.ReasonETagMismatch:         codes.Aborted,
	ledger.ReasonVerificationNotFound: codes.NotFound,
	// One verification runs at a time (AIP-151's work is bounded): poll the running one.
	ledger.ReasonVerificationRunning:     codes.ResourceExhausted,
	ledger.ReasonCommitmentClosed:        codes.FailedPrecondition,
	ledger.ReasonPaymentExceedsRemaining: codes.FailedPrecondition,
	ledger.ReasonReleaseExceedsUnpaid:    codes.FailedPrecondition,
	ledger.ReasonHoldNotFound:            codes.NotFound,
	ledger.ReasonHoldExpired:             codes.FailedPrecondition,
	ledger.ReasonHoldNotHeld:             codes.FailedPrecondition,
	ledger.ReasonConfirmExceedsHeld:      codes.FailedPrecondition,
}

// retryDelays are the waits suggested in a google.rpc.RetryInfo with the retryable reasons.
var retryDelays = map[ledger.Reason]time.Duration{
	ledger.ReasonTransactionConflict: 20 * time.Millisecond,
	ledger.ReasonStoreUnavailable:    500 * time.Millisecond,
}

// toStatus turns an error from the ledger into a gRPC status error with a google.rpc.ErrorInfo
// (and a google.rpc.BadRequest for a field error). An internal error keeps its cause for
// logInternal, which logs it; the reply carries none of it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	// The ledger's own errors first: its transaction timeout is STORE_UNAVAILABLE (retryable,
	// with RetryInfo) even though it wraps context.DeadlineExceeded; only the caller's own
	// deadline or cancellation is DEADLINE_EXCEEDED or CANCELLED.
	var le *ledger.Error
	isLedger := errors.As(err, &le)
	switch {
	case isLedger:
	case errors.Is(err, context.DeadlineExceeded):
		return withInfo(codes.DeadlineExceeded, "the request's deadline passed before the ledger answered; nothing was recorded unless a retry with the same request_id says so", reasonDeadlineExceeded, nil)
	case errors.Is(err, context.Canceled):
		return withInfo(codes.Canceled, "the request was cancelled; nothing was recorded unless a retry with the same request_id says so", reasonCancelled, nil)
	}
	if !isLedger {
		return &internalError{cause: err}
	}
	code, ok := reasonCodes[le.Reason]
	if !ok || code == codes.Internal {
		return &internalError{cause: err}
	}
	st := status.New(code, le.Error())
	md := le.Metadata
	if le.Field != "" && md["field"] == "" {
		// The field a refusal names is in ErrorInfo's metadata too, as the validation
		// interceptor's are (README, "Errors"): a client reads one place for either.
		md = maps.Clone(md)
		if md == nil {
			md = map[string]string{}
		}
		md["field"] = le.Field
	}
	details := []protoadaptMessage{&errdetails.ErrorInfo{Reason: string(le.Reason), Domain: ErrorDomain, Metadata: md}}
	if delay, ok := retryDelays[le.Reason]; ok {
		// Tell clients how long to wait: retrying a lost race at once is fine, a database that
		// is down needs a moment.
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	}
	if le.Field != "" {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: le.Field, Description: le.Message, Reason: string(le.Reason)},
		}})
	}
	if cause := errors.Unwrap(le); le.Reason == ledger.ReasonStoreUnavailable && cause != nil {
		// The caller is told to retry; the database's own error (a full disk, a refused
		// connection) is for the operator's log only (logInternal).
		return &unavailableError{st: status.Convert(attach(st, details...)), cause: cause}
	}
	return attach(st, details...)
}

// unavailableError is a STORE_UNAVAILABLE reply whose cause, the database's error, stays on the
// server: logInternal logs it, and the client gets the reply as it is.
type unavailableError struct {
	st    *status.Status
	cause error
}

func (e *unavailableError) Error() string              { return e.st.Message() }
func (e *unavailableError) GRPCStatus() *status.Status { return e.st }

// causes logs the causes of STORE_UNAVAILABLE replies: the first of each different text at once,
// then at most one line every causeEvery, with the number of replies since, so that a database
// down under load fills no disk with the same line.
type causes struct {
	mu     sync.Mutex
	last   string
	at     time.Time
	missed int
}

const causeEvery = 10 * time.Second

// answer logs the cause of err when it is a STORE_UNAVAILABLE reply with one, and returns the
// reply to send (ok false: err is no such reply).
func (c *causes) answer(ctx context.Context, log *slog.Logger, method string, err error) (reply error, ok bool) {
	var ue *unavailableError
	if err == nil || !errors.As(err, &ue) {
		return err, false
	}
	c.log(ctx, log, method, ue)
	return ue.st.Err(), true
}

func (c *causes) log(ctx context.Context, log *slog.Logger, method string, err *unavailableError) {
	text := causeText(err.cause)
	c.mu.Lock()
	now := time.Now()
	if text == c.last && now.Sub(c.at) < causeEvery {
		c.missed++
		c.mu.Unlock()
		return
	}
	// The replies not logged since the last line were all of the last line's error: counted
	// under that name when it repeats, and as the previous error's when this one differs.
	attrs := []any{"grpc.method", method, "error", text}
	if text == c.last {
		attrs = append(attrs, "same_error_since_last_line", c.missed)
	} else if c.missed > 0 {
		attrs = append(attrs, "previous_error_repeated", c.missed)
	}
	c.last, c.at, c.missed = text, now, 0
	c.mu.Unlock()
	log.WarnContext(ctx, "the database failed; the call was answered STORE_UNAVAILABLE", attrs...)
}

func withInfo(code codes.Code, msg, reason string, md map[string]string) error {
	return attach(status.New(code, msg), &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md})
}

// internalError is an INTERNAL reply whose cause stays on the server: logInternal logs the cause
// with the call's method and request id, and the client gets "internal error" and an ErrorInfo.
type internalError struct{ cause error }

func (e *internalError) Error() string { return "internal error" }

// GRPCStatus is what the client gets: nothing of the cause.
func (e *internalError) GRPCStatus() *status.Status {
	return status.Convert(withInfo(codes.Internal, "internal error", string(ledger.ReasonInternal), nil))
}

// logInternal logs the cause of every INTERNAL reply, with the method, the principal and the
// request's request_id (when it has one), and sends the reply without the cause.
func logInternal(log *slog.Logger) grpc.UnaryServerInterceptor {
	var unavailable causes
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if reply, ok := unavailable.answer(ctx, log, info.FullMethod, err); ok {
			return nil, reply
		}
		var ie *internalError
		if err == nil || !errors.As(err, &ie) {
			return resp, err
		}
		attrs := []any{"grpc.method", info.FullMethod, "principal", callerFrom(ctx), "error", causeText(ie.cause)}
		if r, ok := req.(interface{ GetRequestId() string }); ok {
			attrs = append(attrs, "request_id", r.GetRequestId())
		}
		log.ErrorContext(ctx, "internal error", attrs...)
		return nil, ie.GRPCStatus().Err()
	}
}

// logInternalStream is logInternal for streams.
func logInternalStream(log *slog.Logger) grpc.StreamServerInterceptor {
	var unavailable causes
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if reply, ok := unavailable.answer(ss.Context(), log, info.FullMethod, err); ok {
			return reply
		}
		var ie *internalError
		if err == nil || !errors.As(err, &ie) {
			return err
		}
		log.ErrorContext(ss.Context(), "internal error", "grpc.method", info.FullMethod, "principal", callerFrom(ss.Context()), "error", causeText(ie.cause))
		return ie.GRPCStatus().Err()
	}
}

// causeText spells out an error and the causes it wraps: a ledger.Error says "internal error"
// and keeps the database's error as its cause.
func causeText(err error) string {
	text := err.Error()
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		if t := u.Error(); !strings.Contains(text, t) {
			text += ": " + t
		}
	}
	return text
}
