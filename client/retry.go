package client

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// DefaultAttempts is how many times a call is tried in all, the first attempt included.
	DefaultAttempts = 5
	// DefaultBackoff is the wait before the first retry; it doubles at every retry, with jitter.
	// A server's RetryInfo takes its place (WithRetry).
	DefaultBackoff = 100 * time.Millisecond
	// maxRetryDelay caps the backoff between attempts. A RetryInfo asking for longer ends the
	// retries at once: the caller gets the error rather than a call that hangs (one within it is
	// waited, plus up to a tenth).
	maxRetryDelay = 10 * time.Second
)

// retryable reports whether a call that failed with st may be sent again unchanged. It is safe
// for mutations because each carries a request id that the server decides once: the same request
// sent again returns the first outcome. UNAVAILABLE and ABORTED (TRANSACTION_CONFLICT) mean
// nothing was recorded, or the retry learns what was; ABORTED for ETAG_MISMATCH is not retried. RESOURCE_EXHAUSTED is retried only as the
// server's rate limit (reason RATE_LIMITED): gRPC itself answers RESOURCE_EXHAUSTED for a message
// over a size limit, and then the same request gets the same answer — after the server did the
// work, when it was the response that was too large.
func retryable(st *status.Status) bool {
	switch st.Code() {
	case codes.Unavailable:
		return true
	case codes.Aborted:
		// A stale etag (AIP-154) is ABORTED too, but the same request would meet the same etag:
		// the caller must read again first.
		return reasonOf(st) != ReasonETagMismatch
	case codes.ResourceExhausted:
		return reasonOf(st) == ReasonRateLimited
	}
	return false
}

// retryPolicy bounds the retries of one call.
type retryPolicy struct {
	attempts uint          // in all, the first included; 0 or 1 disables retries
	backoff  time.Duration // before the first retry
}

// delay is the wait before retry number n (1 for the first retry) after err: the server's
// google.rpc.RetryInfo delay when it sent one, else exponential backoff with ±20% jitter, never
// more than maxRetryDelay. ok is false when the server asked for a longer wait than that.
func (p retryPolicy) delay(n uint, err error) (d time.Duration, ok bool) {
	ceiling := max(maxRetryDelay, p.backoff)
	if d, found := retryDelay(status.Convert(err)); found {
		// At least what the server asked for (AIP-194), plus up to 10% so that the callers it
		// pushed back together do not all return together.
		return d + time.Duration(rand.Int64N(int64(d)/10+1)), d <= ceiling
	}
	d = p.backoff
	for i := uint(1); i < n && d < ceiling; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, ceiling), true
}

// The retries are go-grpc-middleware's retry interceptor. Its BackoffFunc sees only the attempt
// number, not the error that the wait follows, so it cannot read a RetryInfo by itself; but its
// RetriableFunc does see every error, just before the backoff of the next attempt is asked for,
// in the same goroutine. retryInterceptors therefore puts in front of it an interceptor that hands
// each call its own pair of options sharing one state: the RetriableFunc decides whether to retry
// and computes the wait (from the RetryInfo, or by exponential backoff), and the BackoffFunc
// returns that wait.
//
// The middleware sends the very same request message on every attempt, so a request id set before
// the first attempt is the one every retry carries.
func retryInterceptors(p retryPolicy) []grpc.UnaryClientInterceptor {
	if p.attempts <= 1 {
		return nil
	}
	perCall := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var (
			retries uint
			next    time.Duration
		)
		retriable := func(err error) bool {
			if !retryable(status.Convert(err)) {
				return false
			}
			retries++
			d, ok := p.delay(retries, err)
			if !ok {
				return false
			}
			// A wait that would outlast the call's deadline ends the retries now, so that the
			// caller sees why the call failed rather than a DEADLINE_EXCEEDED.
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= d {
				return false
			}
			next = d
			return true
		}
		backoff := func(context.Context, uint) time.Duration { return next }
		opts = append(opts, retry.WithRetriable(retriable), retry.WithBackoff(backoff))
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	return []grpc.UnaryClientInterceptor{
		perCall,
		retry.UnaryClientInterceptor(retry.WithMax(p.attempts)),
	}
}
