package client

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRetryableResourceExhausted protects the rule that makes retries safe for a large
// BatchCommit: RESOURCE_EXHAUSTED is retried only when the ledger says it is its rate limit
// (ErrorInfo reason RATE_LIMITED in its domain). gRPC's own RESOURCE_EXHAUSTED for a message over
// a size limit, which the same request would get again, is not (issue 16).
func TestRetryableResourceExhausted(t *testing.T) {
	t.Parallel()
	withInfo := func(domain, reason string) *status.Status {
		st, err := status.New(codes.ResourceExhausted, "injected").WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tt := range []struct {
		name string
		st   *status.Status
		want bool
	}{
		{"rate limited", withInfo(ErrorDomain, string(ReasonRateLimited)), true},
		{"message larger than max, from gRPC", status.New(codes.ResourceExhausted,
			"grpc: received message larger than max (4931256 vs. 4194304)"), false},
		{"another reason", withInfo(ErrorDomain, "QUOTA_EXCEEDED"), false},
		{"RATE_LIMITED of another domain", withInfo("example.com", string(ReasonRateLimited)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryable(tt.st); got != tt.want {
				t.Errorf("retryable(%v) = %v, want %v", tt.st.Proto(), got, tt.want)
			}
			e := toError(t.Context(), nil, tt.st.Err()).(*Error)
			if e.Retryable() != tt.want {
				t.Errorf("Error.Retryable() = %v, want %v", e.Retryable(), tt.want)
			}
			if got := errors.Is(e, ErrRateLimited); got != tt.want {
				t.Errorf("errors.Is(err, ErrRateLimited) = %v, want %v", got, tt.want)
			}
		})
	}
}
