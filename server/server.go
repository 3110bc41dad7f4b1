// Package server serves the budget ledger over gRPC: the three budgetledger.v1 services, health
// checks and server reflection, behind one interceptor chain (logging, authentication and
// authorization, rate limit, validation, recovery), over plaintext or TLS.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

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
}

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
	validator, err := protovalidate.New()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	var rpcMetrics *grpcprom.ServerMetrics
	interceptors := []grpc.UnaryServerInterceptor{}
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
	if log.Enabled(context.Background(), slog.LevelInfo) {
		logInterceptor := logging.UnaryServerInterceptor(slogAdapter(log), logging.WithLogOnEvents(logging.FinishCall),
			logging.WithFieldsFromContext(principalLogField))
		interceptors = append(interceptors, withLogSlot(logInterceptor))
	}
	// Authentication, then the rate limit of the principal it found; health checks skip both.
	var streamInterceptors []grpc.StreamServerInterceptor
	if cfg.Auth != nil {
		authFunc := cfg.Auth.authFunc(log)
		interceptors = append(interceptors, selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authFunc), guarded))
		streamInterceptors = append(streamInterceptors, selector.StreamServerInterceptor(auth.StreamServerInterceptor(authFunc), guarded))
	}
	if cfg.RateLimit > 0 {
		limiter := newPrincipalLimiter(cfg.RateLimit, cfg.RateBurst)
		interceptors = append(interceptors, selector.UnaryServerInterceptor(limiter.unary, guarded))
		streamInterceptors = append(streamInterceptors, selector.StreamServerInterceptor(limiter.stream, guarded))
	}
	interceptors = append(interceptors,
		logInternalCauses(log),
		validationInterceptor(validator),
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
			log.ErrorContext(ctx, "panic in handler", "panic", p)
			return withInfo(codes.Internal, "internal error", string(ledger.ReasonInternal), nil)
		})),
	)
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(append(interceptors, cfg.UnaryInterceptors...)...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
	}
	if len(streamInterceptors) > 0 {
		opts = append(opts, grpc.ChainStreamInterceptor(streamInterceptors...))
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	g := grpc.NewServer(opts...)
	s := &Server{grpc: g, health: newHealthService(), ledger: l, log: log, cfg: cfg}
	pb.RegisterEnvelopeServiceServer(g, &envelopeService{ledger: l})
	pb.RegisterCommitmentServiceServer(g, &commitmentService{ledger: l})
	pb.RegisterJournalServiceServer(g, &journalService{ledger: l})
	pb.RegisterReportServiceServer(g, &reportService{ledger: l})
	pb.RegisterAuditServiceServer(g, &auditService{ledger: l})
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
	if rpcMetrics != nil {
		rpcMetrics.InitializeMetrics(g)
	}

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
