package clienttest_test

import (
	"context"
	"crypto/tls"
	"io"
	"iter"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// ledgerd is one server process: a ledger on a real database behind server.New, serving on a
// loopback TCP port.
type ledgerd struct {
	ledger *ledger.Ledger
	addr   string
	stop   func()
}

// startLedgerd starts a server over database on addr ("127.0.0.1:0" for any port). It stops when
// the test ends, or earlier through stop.
func startLedgerd(t *testing.T, database, addr string) *ledgerd {
	t.Helper()
	return startLedgerdWith(t, database, addr, ledger.Config{TxTimeout: testdb.TxTimeout})
}

// startLedgerdWith is startLedgerd with a ledger configuration.
func startLedgerdWith(t *testing.T, database, addr string, cfg ledger.Config) *ledgerd {
	t.Helper()
	l, err := ledger.Open(context.Background(), database, cfg)
	if err != nil {
		t.Fatalf("opening ledger: %v", err)
	}
	srv, err := server.New(l, server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
			l.Close()
		})
	}
	t.Cleanup(stop)
	return &ledgerd{ledger: l, addr: lis.Addr().String(), stop: stop}
}

// verify fails the test if the ledger's auditor finds a broken invariant.
func (d *ledgerd) verify(t *testing.T) {
	t.Helper()
	rep, err := d.ledger.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, x := range rep.Discrepancies {
		t.Errorf("ledger invariant broken: %s", x)
	}
}

// gateway is a gRPC server that forwards every budgetledger.v1 call to a ledgerd through the
// interceptors a test gives it. server.New takes no interceptors of its own, so this is where
// tests observe calls as they reach the server and inject failures around the real handler: the
// ledgerd behind it decides and records exactly as it would without it.
type gateway struct {
	addr string
	stop func()
}

type gatewayConfig struct {
	addr         string // "127.0.0.1:0" when empty
	interceptors []grpc.UnaryServerInterceptor
	tls          *tls.Config
}

func startGateway(t *testing.T, backend string, cfg gatewayConfig) *gateway {
	t.Helper()
	if cfg.addr == "" {
		cfg.addr = "127.0.0.1:0"
	}
	conn, err := grpc.NewClient(backend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(cfg.interceptors...)}
	if cfg.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.tls)))
	}
	g := grpc.NewServer(opts...)
	pb.RegisterEnvelopeServiceServer(g, envelopesForwarder{c: pb.NewEnvelopeServiceClient(conn)})
	pb.RegisterCommitmentServiceServer(g, commitmentsForwarder{c: pb.NewCommitmentServiceClient(conn)})
	pb.RegisterJournalServiceServer(g, journalForwarder{c: pb.NewJournalServiceClient(conn)})
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			g.GracefulStop() // answers the calls in flight first
			if err := <-served; err != nil {
				t.Errorf("gateway Serve: %v", err)
			}
			conn.Close()
		})
	}
	t.Cleanup(stop)
	return &gateway{addr: lis.Addr().String(), stop: stop}
}

type envelopesForwarder struct {
	pb.UnimplementedEnvelopeServiceServer
	c pb.EnvelopeServiceClient
}

func (f envelopesForwarder) CreateEnvelope(ctx context.Context, r *pb.CreateEnvelopeRequest) (*pb.CreateEnvelopeResponse, error) {
	return f.c.CreateEnvelope(ctx, r)
}

func (f envelopesForwarder) GetEnvelope(ctx context.Context, r *pb.GetEnvelopeRequest) (*pb.GetEnvelopeResponse, error) {
	return f.c.GetEnvelope(ctx, r)
}

func (f envelopesForwarder) ListEnvelopes(ctx context.Context, r *pb.ListEnvelopesRequest) (*pb.ListEnvelopesResponse, error) {
	return f.c.ListEnvelopes(ctx, r)
}

func (f envelopesForwarder) MoveAllocation(ctx context.Context, r *pb.MoveAllocationRequest) (*pb.MoveAllocationResponse, error) {
	return f.c.MoveAllocation(ctx, r)
}

type commitmentsForwarder struct {
	pb.UnimplementedCommitmentServiceServer
	c pb.CommitmentServiceClient
}

func (f commitmentsForwarder) Commit(ctx context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	return f.c.Commit(ctx, r)
}

func (f commitmentsForwarder) Release(ctx context.Context, r *pb.ReleaseRequest) (*pb.ReleaseResponse, error) {
	return f.c.Release(ctx, r)
}

func (f commitmentsForwarder) GetCommitment(ctx context.Context, r *pb.GetCommitmentRequest) (*pb.GetCommitmentResponse, error) {
	return f.c.GetCommitment(ctx, r)
}

func (f commitmentsForwarder) ListCommitments(ctx context.Context, r *pb.ListCommitmentsRequest) (*pb.ListCommitmentsResponse, error) {
	return f.c.ListCommitments(ctx, r)
}

type journalForwarder struct {
	pb.UnimplementedJournalServiceServer
	c pb.JournalServiceClient
}

func (f journalForwarder) ListJournalEntries(ctx context.Context, r *pb.ListJournalEntriesRequest) (*pb.ListJournalEntriesResponse, error) {
	return f.c.ListJournalEntries(ctx, r)
}

// onMethod runs fn for the calls of one method only; the others go straight to the handler.
func onMethod(method string, fn grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod != method {
			return handler(ctx, req)
		}
		return fn(ctx, req, info, handler)
	}
}

// dial connects a client to addr in plaintext, closed when the test ends. It reconnects within
// tens of milliseconds after a server goes away (gRPC's default first wait is a second).
func dial(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	fastReconnect := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 100 * time.Millisecond},
		MinConnectTimeout: 5 * time.Second,
	})
	opts = append([]client.Option{client.WithInsecure(), client.WithDialOptions(fastReconnect)}, opts...)
	c, err := client.Dial(context.Background(), addr, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// callCounter is a client interceptor counting the attempts of each method.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (cc *callCounter) interceptor(ctx context.Context, method string, req, reply any, conn *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	cc.mu.Lock()
	if cc.calls == nil {
		cc.calls = map[string]int{}
	}
	cc.calls[method]++
	cc.mu.Unlock()
	return invoker(ctx, method, req, reply, conn, opts...)
}

func (cc *callCounter) count(method string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.calls[method]
}

const million = 100_000_000 // one million euros, in cents

// buildFund creates the France Relance fund "Transformation numérique des collectivités
// territoriales": 88 M€ and its three axes of 30, 24 and 34 M€.
func buildFund(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	steps := []client.CreateEnvelopeParams{
		{EnvelopeID: "fund", DisplayName: "Transformation numérique des collectivités territoriales", Allocation: 88 * million},
		{EnvelopeID: "axis-1", Parent: "envelopes/fund", DisplayName: "Axe 1 - outils numériques communs", Allocation: 30 * million},
		{EnvelopeID: "axis-2", Parent: "envelopes/fund", DisplayName: "Axe 2 - projets d'envergure", Allocation: 24 * million},
		{EnvelopeID: "axis-3", Parent: "envelopes/fund", DisplayName: "Axe 3 - projets locaux", Allocation: 34 * million},
	}
	for _, p := range steps {
		if _, err := c.CreateEnvelope(ctx, p); err != nil {
			t.Fatalf("CreateEnvelope(%s): %v", p.EnvelopeID, err)
		}
	}
}

// collect drains an iterator, failing the test on an error.
func collect[T any](t *testing.T, seq iter.Seq2[T, error]) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatalf("iterating: %v", err)
		}
		out = append(out, v)
	}
	return out
}
