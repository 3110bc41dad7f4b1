package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Client is a connection to a budget ledger server. It is safe for concurrent use; make one per
// server and share it.
type Client struct {
	conn        *grpc.ClientConn
	envelopes   pb.EnvelopeServiceClient
	commitments pb.CommitmentServiceClient
	journal     pb.JournalServiceClient
	audit       pb.AuditServiceClient
}

// Option configures Dial.
type Option func(*options)

type options struct {
	insecure bool
	tls      *tls.Config
	token    string
	retry    retryPolicy
	dialOpts []grpc.DialOption
}

// WithInsecure connects in plaintext, without TLS: for a server on loopback or a trusted network.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithTLSConfig connects over TLS with cfg (the default is TLS with the system's root CAs).
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithToken sends "authorization: Bearer <token>" with every call. The token is only ever sent
// over TLS, unless WithInsecure is given too.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithRetry sets how many times a call is tried in all (the first attempt included; 0 or 1
// disables retries) and the wait before the first retry, which then doubles at every retry, with
// jitter. When the server says how long to wait (a google.rpc.RetryInfo, which the ledger sends
// with TRANSACTION_CONFLICT, STORE_UNAVAILABLE and RATE_LIMITED), that wait, plus up to a tenth,
// takes the place of the backoff. The defaults are DefaultAttempts and DefaultBackoff.
func WithRetry(attempts uint, backoff time.Duration) Option {
	return func(o *options) { o.retry = retryPolicy{attempts: attempts, backoff: max(backoff, 0)} }
}

// WithDialOptions adds gRPC dial options, applied after the client's own. Unary interceptors
// added with grpc.WithChainUnaryInterceptor run inside the client's: once per attempt.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Dial returns a client of the server at target (a gRPC target such as "ledger.example:443" or
// "dns:///ledger.internal:50051"). Like grpc.NewClient it does not wait for the connection: the
// first call makes it, and a server that cannot be reached fails calls with ErrUnavailable.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := options{retry: retryPolicy{attempts: DefaultAttempts, backoff: DefaultBackoff}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.insecure && o.tls != nil {
		return nil, errors.New("client: WithInsecure and WithTLSConfig are exclusive")
	}
	var transport credentials.TransportCredentials
	switch {
	case o.insecure:
		transport = insecure.NewCredentials()
	case o.tls != nil:
		transport = credentials.NewTLS(o.tls.Clone())
	default:
		transport = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}) // system roots
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		// Accept every response the server may owe to a request it accepted: gRPC's default of
		// 4 MiB is below a large BatchCommit's answer, which would turn an award that was made
		// into an error (see pb.MaxResponseSize for how the bound was computed).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(pb.MaxResponseSize)),
		// Errors are converted outermost, so that the caller sees the error of the last attempt.
		grpc.WithChainUnaryInterceptor(append([]grpc.UnaryClientInterceptor{errorInterceptor},
			retryInterceptors(o.retry)...)...),
		// Streams are not retried (WatchJournalEntries opens its stream again itself), but their
		// errors are converted like a call's.
		grpc.WithChainStreamInterceptor(streamErrorInterceptor),
	}
	if o.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: !o.insecure}))
	}
	conn, err := grpc.NewClient(target, append(dialOpts, o.dialOpts...)...)
	if err != nil {
		return nil, err
	}
	conn.Connect()
	return &Client{
		conn:        conn,
		envelopes:   pb.NewEnvelopeServiceClient(conn),
		commitments: pb.NewCommitmentServiceClient(conn),
		journal:     pb.NewJournalServiceClient(conn),
		audit:       pb.NewAuditServiceClient(conn),
	}, nil
}

// Close closes the connection; calls in flight fail with codes.Canceled.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection, for other services of the same server (health checks).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Envelopes is the generated client of EnvelopeService. Its calls go through the same retries and
// error conversion as the Client's methods (streams: the error conversion, no retries); mutations
// must carry a request_id.
func (c *Client) Envelopes() pb.EnvelopeServiceClient { return c.envelopes }

// Commitments is the generated client of CommitmentService (see Envelopes).
func (c *Client) Commitments() pb.CommitmentServiceClient { return c.commitments }

// Journal is the generated client of JournalService (see Envelopes).
func (c *Client) Journal() pb.JournalServiceClient { return c.journal }

// errorInterceptor turns the error of every call into an *Error.
func errorInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return toError(ctx, req, invoker(ctx, method, req, reply, cc, opts...))
}

// streamErrorInterceptor turns the errors of every stream into *Error values: opening it, and
// each message sent or received (io.EOF, a stream's normal end, stays as it is).
func streamErrorInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, toError(ctx, nil, err)
	}
	return errorStream{ClientStream: s, ctx: ctx}, nil
}

type errorStream struct {
	grpc.ClientStream
	ctx context.Context
}

func (s errorStream) RecvMsg(m any) error { return s.convert(s.ClientStream.RecvMsg(m)) }
func (s errorStream) SendMsg(m any) error { return s.convert(s.ClientStream.SendMsg(m)) }

func (s errorStream) convert(err error) error {
	if err == io.EOF {
		return err
	}
	return toError(s.ctx, nil, err)
}

// bearer is a per-call credential: "authorization: Bearer <token>".
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity keeps the token off plaintext connections unless WithInsecure said so.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
