package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/budgetledger/budgetledger/ledger"
)

// ErrorDomain is the domain of every google.rpc.ErrorInfo this server sends (AIP-193).
const ErrorDomain = "budgetledger.v1"

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
	ledger.ReasonStoreUnavailable:        codes.Unavailable,
	ledger.ReasonTransactionConflict:     codes.Aborted,
	ledger.ReasonInternal:                codes.Internal,
}

// retryDelays are the waits suggested in a google.rpc.RetryInfo with the retryable reasons.
var retryDelays = map[ledger.Reason]time.Duration{
	ledger.ReasonTransactionConflict: 20 * time.Millisecond,
	ledger.ReasonStoreUnavailable:    500 * time.Millisecond,
}

// toStatus turns an error from the ledger into a gRPC status error with a google.rpc.ErrorInfo
// (and a google.rpc.BadRequest for a field error). The cause of an internal error stays in the
// server's log, never in the reply.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return withInfo(codes.DeadlineExceeded, "the request's deadline passed before the ledger answered; nothing was recorded unless a retry with the same request_id says so", "DEADLINE_EXCEEDED", nil)
	case errors.Is(err, context.Canceled):
		return withInfo(codes.Canceled, "the request was cancelled; nothing was recorded unless a retry with the same request_id says so", "CANCELLED", nil)
	}
	var le *ledger.Error
	if !errors.As(err, &le) {
		return &internalError{status.Convert(withInfo(codes.Internal, "internal error", string(ledger.ReasonInternal), nil)), err}
	}
	code, ok := reasonCodes[le.Reason]
	if !ok {
		code = codes.Internal
	}
	msg := le.Error()
	if code == codes.Internal {
		msg = "internal error"
	}
	st := status.New(code, msg)
	details := []protoadaptMessage{&errdetails.ErrorInfo{Reason: string(le.Reason), Domain: ErrorDomain, Metadata: le.Metadata}}
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
	if code == codes.Internal {
		return &internalError{status.Convert(attach(st, details...)), err}
	}
	return attach(st, details...)
}

// internalError is the reply to an internal error (a bug, a broken invariant, a recovered panic
// in a group-commit batch): the status says "internal error" and nothing more, and the cause is
// kept beside it for the server's log (logInternalCauses), never sent.
type internalError struct {
	st    *status.Status
	cause error
}

func (e *internalError) Error() string              { return e.st.Err().Error() }
func (e *internalError) GRPCStatus() *status.Status { return e.st }
func (e *internalError) Unwrap() error              { return e.cause }

// logInternalCauses logs the cause of every INTERNAL reply, which the reply itself never carries.
func logInternalCauses(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		var ie *internalError
		if errors.As(err, &ie) {
			log.ErrorContext(ctx, "internal error", "method", info.FullMethod, "cause", causeChain(ie.cause))
		}
		return resp, err
	}
}

// causeChain spells an error and the causes it wraps (a ledger error's message leaves its cause
// out), each once: "internal error: envelope x has a cycle of parents".
func causeChain(err error) string {
	var parts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		if n := len(parts); n > 0 && strings.Contains(parts[n-1], msg) {
			continue
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, ": ")
}

func withInfo(code codes.Code, msg, reason string, md map[string]string) error {
	return attach(status.New(code, msg), &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md})
}
