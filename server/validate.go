package server

import (
	"context"
	"errors"
	"fmt"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// validationInterceptor checks every request against the rules written in the .proto files
// (protovalidate) before any handler runs. go-grpc-middleware's protovalidate interceptor would
// answer with buf.validate.Violations only; our clients switch on google.rpc.ErrorInfo and read
// google.rpc.BadRequest (AIP-193), so this one sends those.
func validationInterceptor(v protovalidate.Validator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		msg, ok := req.(proto.Message)
		if !ok {
			return nil, &internalError{cause: fmt.Errorf("unsupported message type %T", req)}
		}
		if err := v.Validate(msg); err != nil {
			return nil, validationStatus(err)
		}
		return handler(ctx, req)
	}
}

func validationStatus(err error) error {
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		// A rule that does not compile is our bug, not the caller's.
		return &internalError{cause: err}
	}
	bad := &errdetails.BadRequest{}
	for _, v := range verr.Violations {
		bad.FieldViolations = append(bad.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(v.Proto.GetField()),
			Description: core.ShowHidden(v.Proto.GetMessage()), // it may quote TextPattern
			Reason:      v.Proto.GetRuleId(),
		})
	}
	first := bad.FieldViolations[0]
	msg := fmt.Sprintf("invalid request: %s: %s", first.Field, first.Description)
	if first.Field == "" {
		msg = "invalid request: " + first.Description
	}
	if n := len(bad.FieldViolations); n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	// A rule of the whole message (two fields that must differ, say) names no field: its rule id
	// says which it is.
	md := map[string]string{"field": first.Field}
	if first.Field == "" {
		md = map[string]string{"rule": first.Reason}
	}
	info := &errdetails.ErrorInfo{Reason: string(ledger.ReasonInvalidArgument), Domain: ErrorDomain, Metadata: md}
	return attach(status.New(codes.InvalidArgument, msg), info, bad)
}
