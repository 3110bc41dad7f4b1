// Package server serves the budget ledger over gRPC: the three budgetledger.v1 services, health
// checks and server reflection, behind one interceptor chain (logging, authentication and
// authorization, rate limit, validation, recovery), over plaintext or TLS.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Config tunes a Server. The zero value is usable.
type Config struct {
	// Logger receives one line per call and the server's own events (default: slog.Default()).
	Logger *slog.Logger
	// HealthInterval is how often the database is pinged to set the health status (default 2s).
	HealthInterval time.Duration
	// MaxRecvMsgSize caps a request's size in bytes (default 4 MiB).
	MaxRecvMsgSize int
	// MaxSendMsgSize caps a response's size in bytes (default and minimum pb.MaxResponseSize,
	// the largest response to a valid request: a lower cap would fail calls whose work was done).
	MaxSendMsgSize int
	// Registerer receives per-RPC counts and latencies (default: none are registered).
	Registerer prometheus.Registerer

	// Auth authenticates every call but health checks (by bearer token or client certificate) and
	// authorizes it by role. Nil: no authentication; every caller is "anonymous" and may do all.
	Auth *Authenticator
	// TLS serves over TLS with this configuration (nil: plaintext). For mutual TLS set ClientCAs
	// and ClientAuth (tls.VerifyClientCertIfGiven lets token holders in without a certificate).
	TLS *tls.Config
	// RateLimit caps each principal's calls per second (0: no limit); with authentication off,
	// all callers share the bucket of "anonymous". Health checks are never limited.
	RateLimit float64
	// RateBurst is how many calls a principal may make at once (default: RateLimit rounded up).
	RateBurst int
	// UnaryInterceptors run after the built-in ones (innermost, just around the handler).
	UnaryInterceptors []grpc.UnaryServerInterceptor

	// TracerProvider, when set, traces every call (OpenTelemetry, otelgrpc's stats handler), with
	// the W3C trace context of the caller as parent. Nil: no tracing, at no cost.
	TracerProvider trace.TracerProvider

	// MaxConcurrentStreams caps the calls and streams open at once on one connection (default
	// 100); a client opening more waits for one to end.
	MaxConcurrentStreams uint32
	// MaxConnectionAge closes a connection (GOAWAY) after this long, so that long-lived streams
	// and clients are spread again over the servers (0: never).
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace is how long calls still open at MaxConnectionAge may run on before
	// they are cut (default 1m).
	MaxConnectionAgeGrace time.Duration
	// KeepaliveMinTime is the shortest interval at which a client may ping; a client pinging more
	// often is disconnected (default 30s). Clients may ping idle connections.
	KeepaliveMinTime time.Duration
}

// Defaults of Config's connection limits.
const (
	DefaultMaxConcurrentStreams  = 100
	DefaultMaxConnectionAgeGrace = time.Minute
	DefaultKeepaliveMinTime      = 30 * time.Second
)

// Server is a gRPC server for one ledger.
type Server struct {
	grpc   *grpc.Server
	health *healthService
	ledger *ledger.Ledger
	log    *slog.Logger
	cfg    Config

	stopWatch context.CancelFunc
	watchDone chan struct{}
	stopOnce  sync.Once
	// streams is closed at Shutdown, which ends the journal streams (translog.go): a graceful
	// stop would otherwise wait for them forever.
	streams chan struct{}
}

// serviceNames are the services whose health is reported, besides the server as a whole ("").
var serviceNames = []string{
	pb.EnvelopeService_ServiceDesc.ServiceName,
	pb.CommitmentService_ServiceDesc.ServiceName,
	pb.JournalService_ServiceDesc.ServiceName,
}

// New builds a server over l. It starts watching the database for the health service at once.
func New(l *ledger.Ledger, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.MaxRecvMsgSize <= 0 {
		cfg.MaxRecvMsgSize = 4 << 20
	}
	if cfg.MaxSendMsgSize == 0 {
		cfg.MaxSendMsgSize = pb.MaxResponseSize
	}
	if cfg.MaxSendMsgSize < pb.MaxResponseSize {
		return nil, fmt.Errorf("a response size limit of %d bytes is below the largest response to a valid request (%d bytes): "+
			"a large BatchCommit would be made and then reported failed", cfg.MaxSendMsgSize, pb.MaxResponseSize)
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if cfg.MaxConnectionAgeGrace <= 0 {
		cfg.MaxConnectionAgeGrace = DefaultMaxConnectionAgeGrace
	}
	if cfg.KeepaliveMinTime <= 0 {
		cfg.KeepaliveMinTime = DefaultKeepaliveMinTime
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	var rpcMetrics *grpcprom.ServerMetrics
	interceptors := []grpc.UnaryServerInterceptor{markReached}
	// Streams: a request that could not be decoded is refused as RecvMsg returns it; the call is
	// logged, and its internal errors and panics are handled as a unary call's.
	streamInterceptors := []grpc.StreamServerInterceptor{readableStream}
	if cfg.Registerer != nil {
		rpcMetrics = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5})))
		if err := cfg.Registerer.Register(rpcMetrics); err != nil {
			return nil, err
		}
		interceptors = append(interceptors, rpcMetrics.UnaryServerInterceptor())
	}
	// One line per call at INFO; the interceptor builds its fields before any level check, so it
	// is left out altogether when INFO is off (ledgerd --log-level warn), which is worth several
	// percent of throughput.
	// A call of a method the server does not have (a stream to grpc-go: UnknownServiceHandler) is
	// logged by unknownMethods, its name cut short: the name is the caller's to choose, and this
	// line would carry it whole, at ERROR.
	var knownMethod func(string) bool
	if log.Enabled(context.Background(), slog.LevelInfo) {
		interceptors = append(interceptors, logging.UnaryServerInterceptor(slogAdapter(log), logging.WithLogOnEvents(logging.FinishCall),
			logging.WithFieldsFromContext(principalLogField)))
		streamInterceptors = append(streamInterceptors, selector.StreamServerInterceptor(
			logging.StreamServerInterceptor(slogAdapter(log), logging.WithLogOnEvents(logging.FinishCall),
				logging.WithFieldsFromContext(principalLogField)),
			selector.MatchFunc(func(_ context.Context, c middleware.CallMeta) bool { return knownMethod(c.FullMethod()) })))
	}
	// Authentication and authorization happen in the tap, before the request is read; the rate
	// limit of the principal it found and the per-message checks of streams follow. Health checks
	// skip all of them.
	var limiter *principalLimiter
	if cfg.RateLimit > 0 {
		limiter = newPrincipalLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	guard, err := newGuard(cfg.Auth, limiter, log, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	guard.callsLogged = log.Enabled(context.Background(), slog.LevelInfo)
	knownMethod = func(m string) bool { return guard.known[m] }
	if cfg.Auth != nil {
		interceptors = append(interceptors, selector.UnaryServerInterceptor(guard.requirePrincipal, guarded))
	}
	if limiter != nil {
		interceptors = append(interceptors, selector.UnaryServerInterceptor(guard.unary, guarded))
	}
	if cfg.Auth != nil || limiter != nil {
		streamInterceptors = append(streamInterceptors, selector.StreamServerInterceptor(guard.stream, guarded))
	}
	panicked := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		return &internalError{cause: fmt.Errorf("panic in handler: %v", p)}
	})
	interceptors = append(interceptors,
		logInternal(log),
		requireReadable,
		validationInterceptor(validator),
		recovery.UnaryServerInterceptor(panicked),
	)
	streamInterceptors = append(streamInterceptors, logInternalStream(log), recovery.StreamServerInterceptor(panicked))
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(append(interceptors, cfg.UnaryInterceptors...)...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgSize),
		// Bound what one client can hold open: streams per connection, connection lifetime, and
		// pings. The server pings a silent client after 2 minutes and drops it 20 s later, so
		// that dead peers do not keep their streams.
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      cfg.MaxConnectionAge, // 0 is infinity for grpc-go too
			MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
			Time:                  2 * time.Minute,
			Timeout:               20 * time.Second,
		}),
	}
	if cfg.Auth != nil {
		opts = append(opts, grpc.InTapHandle(guard.tap))
	}
	if cfg.TracerProvider != nil {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(cfg.TracerProvider),
			otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
			// Metrics stay with Prometheus (Registerer); the spans are what this adds.
			otelgrpc.WithMeterProvider(noopmetric.NewMeterProvider()))))
	}
	opts = append(opts, grpc.ChainStreamInterceptor(streamInterceptors...), grpc.ForceServerCodecV2(newReadableCodec()),
		grpc.UnknownServiceHandler(unknownMethods(log)))
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	g := grpc.NewServer(opts...)
	s := &Server{grpc: g, health: newHealthService(), ledger: l, log: log, cfg: cfg, streams: make(chan struct{})}
	pb.RegisterEnvelopeServiceServer(g, &envelopeService{ledger: l})
	pb.RegisterCommitmentServiceServer(g, &commitmentService{ledger: l})
	pb.RegisterJournalServiceServer(g, &journalService{ledger: l, stop: s.streams})
	pb.RegisterReportServiceServer(g, &reportService{ledger: l})
	pb.RegisterAuditServiceServer(g, &auditService{ledger: l})
	healthpb.RegisterHealthServer(g, s.health)
	if err := registerReflection(g, log); err != nil {
		return nil, err
	}
	if rpcMetrics != nil {
		rpcMetrics.InitializeMetrics(g)
	}
	guard.learn(g)

	ctx, cancel := context.WithCancel(context.Background())
	s.stopWatch, s.watchDone = cancel, make(chan struct{})
	s.checkHealth(ctx)
	go s.watchHealth(ctx)
	return s, nil
}

// checkHealth pings the database and sets every service's status accordingly.
func (s *Server) checkHealth(ctx context.Context) {
	want := healthpb.HealthCheckResponse_SERVING
	if err := s.ledger.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		want = healthpb.HealthCheckResponse_NOT_SERVING
		s.log.WarnContext(ctx, "database unreachable; reporting NOT_SERVING", "error", err)
	}
	for _, name := range append([]string{""}, serviceNames...) {
		s.health.SetServingStatus(name, want)
	}
}

func (s *Server) watchHealth(ctx context.Context) {
	defer close(s.watchDone)
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.checkHealth(ctx)
		}
	}
}

// Reload reads the tokens file again (ledgerd calls it on SIGHUP). On an error the credentials
// in force stay as they were. Without authentication it does nothing.
func (s *Server) Reload() error {
	if s.cfg.Auth == nil {
		return nil
	}
	return s.cfg.Auth.Reload()
}

// Serve accepts connections on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops accepting calls, lets the calls in flight finish, and stops hard when ctx ends
// first. Health turns NOT_SERVING at once so that load balancers drain the server.
func (s *Server) Shutdown(ctx context.Context) {
	s.stopOnce.Do(func() {
		s.stopWatch()
		<-s.watchDone
		s.health.shutdown()
		close(s.streams)
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("graceful stop timed out; closing the remaining calls")
			s.grpc.Stop()
			<-done
		}
	})
}

// slogAdapter lets go-grpc-middleware's logging interceptor write to slog.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
