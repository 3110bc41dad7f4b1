package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// guard admits calls: it authenticates and authorizes every call but health checks before grpc-go
// reads the request (a tap handle), applies the per-principal rate limit to every call and to
// every message of a stream, and ends a stream whose credential is revoked by a reload. Every
// call it refuses is logged and counted.
type guard struct {
	auth    *Authenticator    // nil: authentication is off
	limiter *principalLimiter // nil: no rate limit
	log     *slog.Logger
	refused *prometheus.CounterVec // nil: not counted

	// callsLogged says the logging interceptors write a line per call and stream (at INFO),
	// refusals included.
	callsLogged bool
	// known holds every method served, to label the refusals of others "unknown". Set once by
	// New, before the server serves.
	known map[string]bool
}

// refusedCallsMetric is the name of the counter of refused calls.
const refusedCallsMetric = "grpc_server_refused_calls_total"

func newGuard(auth *Authenticator, limiter *principalLimiter, log *slog.Logger, reg prometheus.Registerer) (*guard, error) {
	g := &guard{auth: auth, limiter: limiter, log: log, known: map[string]bool{}}
	if reg != nil {
		g.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: refusedCallsMetric,
			Help: "Calls refused before their handler ran: UNAUTHENTICATED, PERMISSION_DENIED or RATE_LIMITED (by ErrorInfo reason).",
		}, []string{"grpc_service", "grpc_method", "reason"})
		if err := reg.Register(g.refused); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// learn records the methods s serves; called once, before serving.
func (g *guard) learn(s *grpc.Server) {
	for service, info := range s.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + service + "/" + m.Name
			g.known[full] = true
		}
	}
}

// tap authenticates and authorizes the call from its headers alone, before grpc-go reads (and
// decodes) the request: an unauthenticated caller costs no decoding. It runs on the connection's
// reading goroutine, so it only hashes a token and looks it up.
func (g *guard) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if strings.HasPrefix(info.FullMethodName, "/"+openService+"/") {
		return ctx, nil
	}
	p, err := g.auth.admit(ctx, info.FullMethodName)
	if err != nil {
		g.refuse(ctx, info.FullMethodName, p, err)
		return nil, err
	}
	return withPrincipal(ctx, p), nil
}

// requirePrincipal admits a guarded unary call that the tap did not see: grpc-go runs no tap
// handle for the calls it serves through ServeHTTP, which is how the JSON-over-HTTP transcoder
// (http.go) calls this server. Such a call is authenticated and authorized here, by the same
// check and against the same table as the tap, from the same headers (the HTTP request's) and
// client certificate (its TLS connection's); a refusal is logged and counted alike.
func (g *guard) requirePrincipal(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, _, ok := PrincipalFrom(ctx); !ok {
		p, err := g.auth.admit(ctx, info.FullMethod)
		if err != nil {
			g.refuse(ctx, info.FullMethod, p, err)
			return nil, err
		}
		ctx = withPrincipal(ctx, p)
		if c := httpCallOf(ctx); c != nil {
			c.principal = p.name // for the logging interceptor, outside this one
		}
	}
	return handler(ctx, req)
}

// refuse logs and counts a refused call. The method is the caller's text: it is counted under its
// own name only when the server serves it, so that a caller cannot mint label values.
func (g *guard) refuse(ctx context.Context, method string, p principal, err error) {
	st := status.Convert(err)
	reason := st.Code().String()
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	service, name := g.labels(method)
	if g.refused != nil {
		g.refused.WithLabelValues(service, name, reason).Inc()
	}
	attrs := []any{"grpc.service", service, "grpc.method", name, "grpc.code", st.Code().String(), "reason", reason, "message", st.Message()}
	if !g.known[method] {
		attrs = append(attrs, "grpc.method_sent", truncate(method, 200))
	}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		attrs = append(attrs, "peer.address", pr.Addr.String())
	}
	if p.name != "" {
		attrs = append(attrs, "principal", p.name, "role", string(p.role))
	}
	g.log.WarnContext(ctx, "call refused", attrs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// unary applies the rate limit to a unary call.
func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.limiter.check(ctx); err != nil {
		if g.callsLogged {
			g.count(info.FullMethod, ReasonRateLimited) // the call's log line says it
		} else {
			g.refuse(ctx, info.FullMethod, principalOf(ctx), err)
		}
		return nil, err
	}
	return handler(ctx, req)
}

// count counts a refusal that the per-call log line reports.
func (g *guard) count(method, reason string) {
	if g.refused == nil {
		return
	}
	service, name := g.labels(method)
	g.refused.WithLabelValues(service, name, reason).Inc()
}

// labels are a method's service and name as metric labels: "unknown" for a method the server
// does not have, whose name the caller chose (it would make a series of each).
func (g *guard) labels(method string) (service, name string) {
	if !g.known[method] {
		return "unknown", "unknown"
	}
	service, name, _ = strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return service, name
}

// stream guards a stream for as long as it lasts: the rate limit on its opening and on every
// request message after the first, and the credential on every message and at every reload of
// the tokens file. A revoked credential refuses the stream's next message either way; at the
// reload, the stream's context (as its handler sees it) is cancelled too, which ends a
// server-streaming handler that waits on it with nothing to send. (The transport's own context is
// left alone: grpc-go would answer its cancellation with CANCELLED, not UNAUTHENTICATED.)
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	if g.limiter != nil {
		if err := g.limiter.check(ctx); err != nil {
			if g.callsLogged {
				g.count(info.FullMethod, ReasonRateLimited) // the call's log line says it
			} else {
				g.refuse(ctx, info.FullMethod, principalOf(ctx), err)
			}
			return err
		}
	}
	ctx, revoke := context.WithCancelCause(ctx)
	defer revoke(nil)
	gs := &guardedStream{ServerStream: ss, g: g, method: info.FullMethod, ctx: ctx, revoke: revoke}
	if g.auth != nil {
		// Check against the credentials in force now: a reload may have come since the tap.
		if err := gs.verify(); err != nil {
			return err
		}
		done := make(chan struct{})
		defer close(done)
		go gs.watchReloads(done)
	}
	if err := handler(srv, gs); err != nil {
		if revoked := revocation(ctx); revoked != nil {
			return revoked // the refusal, not the cancellation it caused
		}
		return err
	}
	return nil
}

// revocation is the refusal that ended the stream of ctx, if one did.
func revocation(ctx context.Context) error {
	var st interface{ GRPCStatus() *status.Status }
	if cause := context.Cause(ctx); cause != nil && errors.As(cause, &st) {
		return cause
	}
	return nil
}

// guardedStream is a ServerStream that checks the credential and the rate limit per message.
type guardedStream struct {
	grpc.ServerStream
	g      *guard
	method string
	ctx    context.Context // the stream's, cancelled by a revocation
	revoke context.CancelCauseFunc

	mu       sync.Mutex
	checked  *credentialSet // the reading of the tokens file last checked against
	err      error          // the refusal found, once found
	received int
}

// verify checks the caller's credential again when the tokens file was reloaded since the last
// check; on a refusal it ends the stream with it.
func (s *guardedStream) verify() error {
	if s.g.auth == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	set := s.g.auth.creds.Load()
	if set == s.checked {
		return nil
	}
	s.checked = set
	ctx := s.ServerStream.Context()
	before := principalOf(ctx)
	p, err := s.g.auth.admitWith(set, ctx, s.method)
	if err == nil && (p.name != before.name || p.role != before.role) {
		err = unauthenticated("the credential now names another principal or role; open a new stream")
	}
	if err != nil {
		s.err = err
		s.g.refuse(ctx, s.method, before, err)
		s.revoke(err)
	}
	return err
}

// watchReloads verifies the credential at each reload of the tokens file until done.
func (s *guardedStream) watchReloads(done <-chan struct{}) {
	for {
		s.mu.Lock()
		set := s.checked
		s.mu.Unlock()
		select {
		case <-set.replaced:
			if s.verify() != nil {
				return
			}
		case <-done:
			return
		}
	}
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.verify(); err != nil {
		return err
	}
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := s.verify(); err != nil {
		return err
	}
	s.mu.Lock()
	s.received++
	n := s.received
	s.mu.Unlock()
	// The stream's opening paid for its first message.
	if n > 1 && s.g.limiter != nil {
		if err := s.g.limiter.check(s.ServerStream.Context()); err != nil {
			s.g.refuse(s.ServerStream.Context(), s.method, principalOf(s.ServerStream.Context()), err)
			return err
		}
	}
	return nil
}

// Context is the stream's context, cancelled when its credential is revoked.
func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) SendMsg(m any) error {
	if err := s.verify(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}
