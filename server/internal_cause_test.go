package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/groupcommit"
)

// TestInternalCauseLoggedNotSent protects the rule that an internal error tells the caller
// nothing of the server's insides: a panic recovered in a group-commit batch, a broken invariant
// found by the ledger or an error of no known kind reaches the caller as INTERNAL "internal
// error" with the reason INTERNAL and nothing else, while its cause is in the server's log.
func TestInternalCauseLoggedNotSent(t *testing.T) {
	t.Parallel()
	for name, cause := range map[string]error{
		"panic in a batch": core.Wrap(ledger.ReasonInternal, "internal error",
			fmt.Errorf("%w: secret-cause-1", groupcommit.ErrPanic)),
		"broken invariant": core.Internal("envelope %s has a cycle of parents: secret-cause-2", "deep"),
		"unknown error":    errors.New("secret-cause-3"),
	} {
		t.Run(name, func(t *testing.T) {
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			handler := func(context.Context, any) (any, error) { return nil, toStatus(cause) }
			_, err := logInternal(log)(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: "/test/Method"}, handler)
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.Internal || st.Message() != "internal error" {
				t.Fatalf("reply %v (a status: %v), want INTERNAL \"internal error\"", err, ok)
			}
			sent := prototext.Format(st.Proto())
			if strings.Contains(sent, "secret-cause") {
				t.Errorf("the reply carries the cause: %s", sent)
			}
			var reasons []string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					reasons = append(reasons, info.GetReason())
				}
			}
			if len(reasons) != 1 || reasons[0] != "INTERNAL" || len(st.Details()) != 1 {
				t.Errorf("the reply's details: %s; want one ErrorInfo with the reason INTERNAL", sent)
			}
			if !strings.Contains(logged.String(), "secret-cause") || !strings.Contains(logged.String(), "/test/Method") {
				t.Errorf("the log does not hold the cause and the method: %q", logged.String())
			}
		})
	}
}

// TestLedgerTimeoutIsStoreUnavailable protects the rule that a retryable database error is never
// reported as something else: the ledger's own transaction timeout wraps context.DeadlineExceeded,
// yet the caller must get UNAVAILABLE with the reason STORE_UNAVAILABLE (and may retry), not
// DEADLINE_EXCEEDED (which says the caller's own deadline passed).
func TestLedgerTimeoutIsStoreUnavailable(t *testing.T) {
	err := toStatus(core.Wrap(ledger.ReasonStoreUnavailable, "the database did not answer within the transaction timeout",
		fmt.Errorf("waiting: %w", context.DeadlineExceeded)))
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("the ledger's timeout: %v, want UNAVAILABLE", st)
	}
	if got := toStatus(fmt.Errorf("call: %w", context.DeadlineExceeded)); status.Code(got) != codes.DeadlineExceeded {
		t.Fatalf("the caller's own deadline: %v, want DEADLINE_EXCEEDED", got)
	}
}

// TestUnavailableCauseLogged protects the operator's view of a failing database: a call answered
// STORE_UNAVAILABLE (retry) tells the caller nothing of the database's error, but the server's
// log says what it was. A full disk under SQLite showed only "the database cannot be reached"
// on every call, and SQLITE_FULL nowhere (found by an outside probe). A cause of another text is
// logged at once, whatever was logged before.
func TestUnavailableCauseLogged(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	intercept := logInternal(log)
	for _, secret := range []string{"secret-cause-full", "secret-cause-refused"} {
		cause := core.Wrap(ledger.ReasonStoreUnavailable, "the database cannot be reached; nothing was recorded; retry", errors.New(secret))
		handler := func(context.Context, any) (any, error) { return nil, toStatus(cause) }
		_, err := intercept(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: "/test/Method"}, handler)
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.Unavailable || st.Message() != "the database cannot be reached; nothing was recorded; retry" {
			t.Fatalf("reply %v, want UNAVAILABLE with the ledger's message", err)
		}
		sent := prototext.Format(st.Proto())
		if strings.Contains(sent, "secret-cause") {
			t.Errorf("the reply carries the cause: %s", sent)
		}
		var reason string
		var retry bool
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				reason = d.GetReason()
			case *errdetails.RetryInfo:
				retry = true
			}
		}
		if reason != "STORE_UNAVAILABLE" || !retry {
			t.Errorf("the reply's details: %s; want STORE_UNAVAILABLE with a RetryInfo", sent)
		}
		if !strings.Contains(logged.String(), secret) || !strings.Contains(logged.String(), "/test/Method") {
			t.Errorf("the log does not hold the cause %q and the method: %q", secret, logged.String())
		}
	}
}
