package server

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ReasonRateLimited is the ErrorInfo reason of a call refused by the per-principal rate limit.
const ReasonRateLimited = "RATE_LIMITED"

// principalLimiter is one token bucket per principal. go-grpc-middleware's ratelimit interceptor
// does not fit: its Limiter could look the principal up in the context, but the interceptor turns
// the limiter's error into text, so the reply could carry neither the google.rpc.RetryInfo our
// client waits by nor the ErrorInfo it switches on.
//
// Buckets are never dropped: principals come from the tokens file (or are all "anonymous" when
// authentication is off), so there are as many buckets as names in the file.
type principalLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newPrincipalLimiter(perSecond float64, burst int) *principalLimiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &principalLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

func (l *principalLimiter) bucket(name string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[name]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[name] = b
	}
	return b
}

// check takes one token from the caller's bucket, or says how long to wait for one.
func (l *principalLimiter) check(ctx context.Context) error {
	name := callerFrom(ctx)
	b := l.bucket(name)
	now := time.Now()
	if b.AllowN(now, 1) {
		return nil
	}
	wait := time.Duration((1 - b.TokensAt(now)) / float64(l.limit) * float64(time.Second))
	wait = max(wait, time.Millisecond).Round(time.Millisecond)
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(
		"principal %q is over its rate limit of %g calls/s (burst %d); retry in %s", name, float64(l.limit), l.burst, wait))
	return attach(st,
		&errdetails.ErrorInfo{Reason: ReasonRateLimited, Domain: ErrorDomain, Metadata: map[string]string{
			"principal": name, "limit": strconv.FormatFloat(float64(l.limit), 'g', -1, 64), "burst": strconv.Itoa(l.burst)}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
}
