// Command ledgerd serves the budget ledger over gRPC.
//
//	go run ./cmd/ledgerd                       # 127.0.0.1:50051, SQLite file ./ledger.db
//	ledgerd --database postgres://user@host:5432/ledger?sslmode=verify-full
//	ledgerd --listen 0.0.0.0:50051 --tokens-file /etc/ledger/tokens --tls-cert server.crt --tls-key server.key
//
// Every flag has an environment equivalent (LEDGER_LISTEN, LEDGER_DATABASE, …); a flag wins over
// its variable. ledgerd refuses to listen beyond loopback without authentication and TLS, unless
// --insecure says so. On SIGHUP it reads the tokens file and the TLS certificate and key again
// (see docs/security.md).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"

	"github.com/budgetledger/budgetledger/internal/gcpercent"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/store"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

func main() {
	ctx, done := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer done()
	if err := realMain(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(1)
	}
}

// config is every setting of ledgerd.
type config struct {
	listen          string
	metricsListen   string
	httpListen      string
	publicPage      bool
	database        string
	batching        bool
	batchQueues     int
	followerReads   bool
	logFormat       string
	logLevel        string
	txTimeout       time.Duration
	shutdownTimeout time.Duration

	tokensFile  string
	tlsCert     string
	tlsKey      string
	tlsClientCA string
	insecure    bool
	rateLimit   float64
	rateBurst   int

	maxRecvMsgSize        int
	maxSendMsgSize        int
	maxConcurrentStreams  uint
	maxConnectionAge      time.Duration
	maxConnectionAgeGrace time.Duration
	keepaliveMinTime      time.Duration

	log logFlags // the transparency log's (logkey.go)

	cpuProfile string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("ledgerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	envErrs := envErrors{}
	fs.StringVar(&c.listen, "listen", env("LEDGER_LISTEN", "127.0.0.1:50051"), "address to serve gRPC on (LEDGER_LISTEN)")
	fs.StringVar(&c.metricsListen, "metrics-listen", env("LEDGER_METRICS_LISTEN", ""),
		"address to serve Prometheus metrics on, at /metrics; empty: no metrics (LEDGER_METRICS_LISTEN)")
	fs.StringVar(&c.httpListen, "http-listen", env("LEDGER_HTTP_LISTEN", ""),
		"address to serve the public page, the open data and the JSON API on (HTTP, HTTPS with --tls-cert); empty: none (LEDGER_HTTP_LISTEN)")
	publicPage, err := envBool("LEDGER_PUBLIC_PAGE", false)
	envErrs.note("public-page", err)
	fs.BoolVar(&c.publicPage, "public-page", publicPage,
		"with --tokens-file: serve the page and the open data of --http-listen to anyone, without a credential (LEDGER_PUBLIC_PAGE)")
	batching, err := envBool("LEDGER_BATCHING", true)
	envErrs.note("batching", err)
	fs.BoolVar(&c.batching, "batching", batching,
		"group commit: decide the awards, releases, holds and payments queued for one envelope in one transaction (LEDGER_BATCHING)")
	batchQueues, err := envInt("LEDGER_BATCH_QUEUES", 0)
	envErrs.note("batch-queues", err)
	fs.IntVar(&c.batchQueues, "batch-queues", batchQueues,
		"group-commit queues, and so batch transactions at once, the envelopes are spread over; 0: half the CPUs, 1 to 4 (LEDGER_BATCH_QUEUES)")
	followerReads, err := envBool("LEDGER_FOLLOWER_READS", false)
	envErrs.note("follower-reads", err)
	fs.BoolVar(&c.followerReads, "follower-reads", followerReads,
		"CockroachDB: Verify and reports read a consistent snapshot a few seconds old, which conflicts with no writer (LEDGER_FOLLOWER_READS)")
	fs.StringVar(&c.database, "database", env("LEDGER_DATABASE", "ledger.db"),
		"a SQLite file path, or a postgres:// URL for PostgreSQL or CockroachDB (LEDGER_DATABASE)")
	fs.StringVar(&c.logFormat, "log-format", env("LEDGER_LOG_FORMAT", "text"), "text or json (LEDGER_LOG_FORMAT)")
	fs.StringVar(&c.logLevel, "log-level", env("LEDGER_LOG_LEVEL", "info"), "debug, info, warn or error (LEDGER_LOG_LEVEL)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", env("LEDGER_CPUPROFILE", ""),
		"write a CPU profile (go tool pprof) of the server, from when it serves until it stops, to this new file; "+
			"an existing file is refused (LEDGER_CPUPROFILE)")
	txTimeout, err := envDuration("LEDGER_TX_TIMEOUT", 5*time.Second)
	envErrs.note("tx-timeout", err)
	shutdownTimeout, err := envDuration("LEDGER_SHUTDOWN_TIMEOUT", 30*time.Second)
	envErrs.note("shutdown-timeout", err)
	fs.DurationVar(&c.txTimeout, "tx-timeout", txTimeout, "deadline of every database transaction, retries included (LEDGER_TX_TIMEOUT)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", shutdownTimeout,
		"how long a stop waits for calls in flight before closing them (LEDGER_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.tokensFile, "tokens-file", env("LEDGER_TOKENS_FILE", ""),
		"file of the accepted credentials: token hashes and client certificate identities, each with a principal and a role; "+
			"empty: no authentication (LEDGER_TOKENS_FILE)")
	fs.StringVar(&c.tlsCert, "tls-cert", env("LEDGER_TLS_CERT", ""), "PEM certificate (chain) to serve TLS with; empty: plaintext (LEDGER_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", env("LEDGER_TLS_KEY", ""), "PEM private key of --tls-cert (LEDGER_TLS_KEY)")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", env("LEDGER_TLS_CLIENT_CA", ""),
		"PEM CA certificate(s) that sign client certificates, for mutual TLS; the certificates' identities map to "+
			"principals through --tokens-file (LEDGER_TLS_CLIENT_CA)")
	insecure, err := envBool("LEDGER_INSECURE", false)
	envErrs.note("insecure", err)
	fs.BoolVar(&c.insecure, "insecure", insecure,
		"allow listening beyond loopback without authentication or without TLS (LEDGER_INSECURE)")
	rateLimit, err := envFloat("LEDGER_RATE_LIMIT", 0)
	envErrs.note("rate-limit", err)
	rateBurst, err := envInt("LEDGER_RATE_BURST", 0)
	envErrs.note("rate-burst", err)
	fs.Float64Var(&c.rateLimit, "rate-limit", rateLimit, "calls per second allowed to each principal; 0: no limit (LEDGER_RATE_LIMIT)")
	fs.IntVar(&c.rateBurst, "rate-burst", rateBurst,
		"calls a principal may make at once above --rate-limit; 0: --rate-limit rounded up (LEDGER_RATE_BURST)")
	maxRecv, err := envInt("LEDGER_MAX_RECV_MSG_SIZE", 4<<20)
	envErrs.note("max-recv-msg-size", err)
	maxSend, err := envInt("LEDGER_MAX_SEND_MSG_SIZE", pb.MaxResponseSize)
	envErrs.note("max-send-msg-size", err)
	fs.IntVar(&c.maxRecvMsgSize, "max-recv-msg-size", maxRecv,
		"largest request accepted, in bytes; a larger one is refused with RESOURCE_EXHAUSTED before any work (LEDGER_MAX_RECV_MSG_SIZE)")
	fs.IntVar(&c.maxSendMsgSize, "max-send-msg-size", maxSend,
		"largest response sent, in bytes; at least the largest response to a valid request, the default (LEDGER_MAX_SEND_MSG_SIZE)")
	streams, err := envInt("LEDGER_MAX_CONCURRENT_STREAMS", server.DefaultMaxConcurrentStreams)
	envErrs.note("max-concurrent-streams", err)
	fs.UintVar(&c.maxConcurrentStreams, "max-concurrent-streams", uint(max(streams, 0)),
		"calls and streams one connection may hold open at once (LEDGER_MAX_CONCURRENT_STREAMS)")
	for _, d := range []struct {
		to               *time.Duration
		flag, env, usage string
		fallback         time.Duration
	}{
		{&c.maxConnectionAge, "max-connection-age", "LEDGER_MAX_CONNECTION_AGE",
			"close a client connection (GOAWAY) after this long, so that streams and clients spread again; 0: never", 30 * time.Minute},
		{&c.maxConnectionAgeGrace, "max-connection-age-grace", "LEDGER_MAX_CONNECTION_AGE_GRACE",
			"how long the calls still open at --max-connection-age may run on", server.DefaultMaxConnectionAgeGrace},
		{&c.keepaliveMinTime, "keepalive-min-time", "LEDGER_KEEPALIVE_MIN_TIME",
			"shortest interval at which a client may ping; a client pinging more often is disconnected", server.DefaultKeepaliveMinTime},
	} {
		v, err := envDuration(d.env, d.fallback)
		envErrs.note(d.flag, err)
		fs.DurationVar(d.to, d.flag, v, d.usage+" ("+d.env+")")
	}
	c.log.register(fs, envErrs)
	showVersion := fs.Bool("version", false, "print the version and the commit it was built from, and exit")
	// A mistaken flag is said once, by main, with a pointer to --help, rather than by the flag
	// package before its 60 lines of usage and again by main.
	if !slices.ContainsFunc(args, isHelp) {
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w (ledgerd --help lists the flags)", err)
	}
	fs.SetOutput(stderr)
	// A variable that cannot be read is an error only when its flag is not given: the flag wins.
	if err := envErrs.check(fs); err != nil {
		return c, err
	}
	if *showVersion {
		return c, errVersion
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: a subcommand comes first (ledgerd verify --database …); ledgerd --help lists them", fs.Arg(0))
	}
	// A negative duration (or a transaction timeout of 0) means nothing: the ledger took it for
	// its 5 s default, and a stop for "give up at once", logging every stop as timed out.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, d := range []struct {
		flag, env, want string
		bad             bool
	}{
		{"tx-timeout", "LEDGER_TX_TIMEOUT", "must be positive", c.txTimeout <= 0},
		{"shutdown-timeout", "LEDGER_SHUTDOWN_TIMEOUT", "must not be negative (0: close the calls in flight at once)", c.shutdownTimeout < 0},
	} {
		if !d.bad {
			continue
		}
		if given[d.flag] {
			return c, fmt.Errorf("--%s %s", d.flag, d.want)
		}
		return c, fmt.Errorf("%s %s (it sets --%s)", d.env, d.want, d.flag)
	}
	if c.batchQueues < 0 {
		return c, errors.New("--batch-queues must not be negative (0: the default, half the CPUs)")
	}
	if c.cpuProfile != "" {
		// Told before anything is opened; the file is made only once ledgerd serves (realMain).
		if _, err := os.Lstat(c.cpuProfile); err == nil {
			return c, fmt.Errorf("--cpuprofile: %s already exists; ledgerd writes a profile to a new file only", c.cpuProfile)
		}
	}
	if c.maxRecvMsgSize <= 0 {
		return c, errors.New("--max-recv-msg-size must be a positive number of bytes")
	}
	if c.maxSendMsgSize < pb.MaxResponseSize {
		// A response over the limit fails after the work is done: a BatchCommit made, reported failed.
		return c, fmt.Errorf("--max-send-msg-size must be at least %d bytes, the largest response to a valid request", pb.MaxResponseSize)
	}
	return c, checkSecurity(c)
}

// checkSecurity checks that the security flags make sense together, and that ledgerd does not
// serve beyond loopback without authentication and TLS unless --insecure says so.
func checkSecurity(c config) error {
	switch {
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.tlsClientCA != "" && c.tlsCert == "":
		return errors.New("--tls-client-ca (mutual TLS) needs TLS: give --tls-cert and --tls-key too")
	case c.tlsClientCA != "" && c.tokensFile == "":
		return errors.New("--tls-client-ca needs --tokens-file, which maps client certificates to principals and roles")
	case c.rateLimit < 0 || math.IsNaN(c.rateLimit) || math.IsInf(c.rateLimit, 0):
		return errors.New("--rate-limit must be a number of calls per second, 0 for none")
	case c.rateBurst < 0:
		return errors.New("--rate-burst must not be negative")
	case c.rateBurst > 0 && c.rateLimit == 0:
		return errors.New("--rate-burst needs --rate-limit")
	case c.maxConcurrentStreams == 0 || c.maxConcurrentStreams > math.MaxUint32:
		return errors.New("--max-concurrent-streams must be at least 1")
	case c.maxConnectionAge < 0 || c.maxConnectionAgeGrace <= 0 || c.keepaliveMinTime <= 0:
		return errors.New("--max-connection-age must not be negative; --max-connection-age-grace and --keepalive-min-time must be positive")
	}
	if err := checkExposure("--listen", c.listen, c); err != nil {
		return err
	}
	if c.httpListen != "" {
		// The JSON API is the gRPC API's reads: the same rule as --listen.
		if err := checkExposure("--http-listen", c.httpListen, c); err != nil {
			return err
		}
	}
	if c.metricsListen != "" {
		// The metrics name every envelope and its available amount: the same rule as the API.
		return checkExposure("--metrics-listen", c.metricsListen, c)
	}
	return nil
}

// checkExposure refuses to serve on addr (of flag) beyond loopback without authentication and TLS,
// unless --insecure says so.
func checkExposure(flag, addr string, c config) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if c.insecure || loopback(host) {
		return nil
	}
	var missing, risks []string
	if c.tokensFile == "" {
		missing = append(missing, "authentication (--tokens-file)")
		risks = append(risks, "anyone who reaches the port could create envelopes and make awards")
	}
	if c.tlsCert == "" {
		missing = append(missing, "TLS (--tls-cert, --tls-key)")
		risks = append(risks, "tokens and ledger data would cross the network in clear")
	}
	if len(missing) == 0 {
		return nil
	}
	them := "them"
	if len(missing) == 1 {
		them = "it"
	}
	if flag == "--http-listen" {
		risks = []string{"anyone who reaches the port could read every envelope, award and journal entry"}
		if c.tlsCert == "" {
			risks = append(risks, "tokens and ledger data would cross the network in clear")
		}
	}
	if flag == "--metrics-listen" {
		risks = []string{"anyone who reaches the port could read every envelope's available amount"}
		if c.tlsCert == "" {
			risks = append(risks, "tokens would cross the network in clear")
		}
	}
	return fmt.Errorf("refusing to listen on %s (%s), beyond loopback, without %s: %s. Set %s up (see docs/security.md), "+
		"listen on 127.0.0.1, or pass --insecure to take the risk", addr, flag, strings.Join(missing, " and "), strings.Join(risks, ", and "), them)
}

// loopback reports whether host (of --listen) can only be reached from this machine. An empty
// host is every interface; a host name other than localhost counts as beyond loopback.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// usage opens ledgerd --help: the subcommands, then the server's flags.
const usage = `usage: ledgerd [flags]                   serve the ledger (gRPC; HTTP and metrics if asked)
       ledgerd verify [flags]            check the ledger's invariants (exit 1 on a discrepancy)
       ledgerd backup --out FILE         copy a SQLite ledger while it is served, and verify the copy
       ledgerd copy --from DB --to DB    move a whole ledger into an empty database of any engine
       ledgerd export scdl [flags]       the awards as open data (the SCDL subventions CSV)
       ledgerd export-journal [flags]    the journal as JSON lines, with the log's checkpoint
       ledgerd verify-log [flags]        check an exported journal against a signed checkpoint
       ledgerd log-key generate [flags]  make the transparency log's signing key
       ledgerd log-key verifier --key F  print the verifier key of the signing key in F
Each subcommand's flags: ledgerd SUBCOMMAND --help. See README.md and docs/operations.md.

The server's flags (each also an environment variable; the flag wins):
`

func realMain(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	if len(args) > 0 && args[0] == "verify" {
		return verifyMain(ctx, args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && logSubcommands[args[0]] != nil {
		return logSubcommands[args[0]](ctx, args[1:], os.Stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(os.Stdout, version())
		return err
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	gcpercent.Apply()
	tp, tracing, err := newTracerProvider(ctx)
	if err != nil {
		return err
	}
	if tp != nil {
		// The exporter's failures (a collector away) go to the ledger's log, in its format,
		// instead of the standard library's logger.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
		defer func() {
			// Send the spans still buffered; a collector that is away costs at most 5 s.
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(flushCtx); err != nil {
				log.Warn("tracing: spans not all exported", "error", err)
			}
		}()
	}
	scfg := server.Config{Logger: log, RateLimit: cfg.rateLimit, RateBurst: cfg.rateBurst,
		MaxConcurrentStreams: uint32(cfg.maxConcurrentStreams), MaxConnectionAge: cfg.maxConnectionAge,
		MaxConnectionAgeGrace: cfg.maxConnectionAgeGrace, KeepaliveMinTime: cfg.keepaliveMinTime,
		MaxRecvMsgSize: cfg.maxRecvMsgSize, MaxSendMsgSize: cfg.maxSendMsgSize}
	if tp != nil {
		scfg.TracerProvider = tp
	}
	var certs *certFiles
	if cfg.tlsCert != "" {
		if scfg.TLS, certs, err = serverTLS(cfg); err != nil {
			return err
		}
	}
	if cfg.tokensFile != "" {
		if scfg.Auth, err = server.NewAuthenticator(cfg.tokensFile); err != nil {
			return fmt.Errorf("--tokens-file: %w", err)
		}
		warnTokensFile(cfg.tokensFile, log)
	}

	// Take the port first: a clash fails at once, before any database is created or migrated.
	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer lis.Close()
	var metricsLis net.Listener
	if cfg.metricsListen != "" {
		if metricsLis, err = net.Listen("tcp", cfg.metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer metricsLis.Close()
	}
	var httpLis net.Listener
	if cfg.httpListen != "" {
		if httpLis, err = net.Listen("tcp", cfg.httpListen); err != nil {
			return fmt.Errorf("--http-listen: %w", err)
		}
		defer httpLis.Close()
	}
	var reg *prometheus.Registry
	if cfg.metricsListen != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	lcfg := ledger.Config{TxTimeout: cfg.txTimeout, DisableBatching: !cfg.batching, BatchQueues: cfg.batchQueues,
		FollowerReads: cfg.followerReads, Logger: log}
	if err := cfg.log.apply(&lcfg); err != nil {
		return err
	}
	if tp != nil {
		lcfg.TracerProvider = tp
	}
	if reg != nil {
		lcfg.Registerer, scfg.Registerer = reg, reg
	}
	l, err := ledger.Open(ctx, cfg.database, lcfg)
	if err != nil {
		return err
	}
	defer l.Close()

	srv, err := server.New(l, scfg)
	if err != nil {
		return err
	}
	if reg != nil {
		defer serveMetrics(metricsLis, reg, scfg.Auth, scfg.TLS, log)()
	}
	stopHTTP := func() {}
	if httpLis != nil {
		h, err := httpHandler(l, srv, scfg.Auth, cfg.publicPage, log)
		if err != nil {
			return err
		}
		stopHTTP = serveHTTP("http", httpLis, h, scfg.TLS, log, "/")
		defer stopHTTP()
		if host, _, _ := net.SplitHostPort(cfg.httpListen); !loopback(host) && (scfg.Auth == nil || scfg.TLS == nil) {
			log.Warn("--insecure: serving HTTP beyond loopback without authentication and TLS", "address", cfg.httpListen)
		}
	}
	// The profile is made last, once every step that can fail has passed: a start refused on a
	// flag, a port or the database writes nothing, and a new file is never made over an existing
	// one (the ledger itself, given by mistake).
	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("ledgerd listening", "address", lis.Addr().String(), "engine", l.Engine(), "database", describe(cfg.database),
		"batching", cfg.batching, "tls", tlsMode(cfg), "authentication", scfg.Auth != nil, "rate_limit", cfg.rateLimit, "tracing", tracing,
		"transparency_log", transparencyLog(lcfg.Log))
	if scfg.Auth != nil {
		tokens, certIDs := scfg.Auth.Counts()
		log.Info("credentials loaded", "tokens_file", cfg.tokensFile, "tokens", tokens, "certificate_identities", certIDs)
	} else {
		log.Info("authentication is off: every caller may call every RPC, and is recorded as anonymous")
	}
	if host, _, _ := net.SplitHostPort(cfg.listen); !loopback(host) && (scfg.Auth == nil || scfg.TLS == nil) {
		log.Warn("--insecure: serving beyond loopback without authentication and TLS", "address", lis.Addr().String())
	}
	if host, _, _ := net.SplitHostPort(cfg.metricsListen); cfg.metricsListen != "" && !loopback(host) && (scfg.Auth == nil || scfg.TLS == nil) {
		log.Warn("--insecure: serving metrics beyond loopback without authentication and TLS", "address", cfg.metricsListen)
	}

	// SIGHUP reads the tokens file and the TLS certificate again; it no longer stops ledgerd.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
wait:
	for {
		select {
		case err := <-served:
			return err
		case <-hup:
			reload(srv, scfg.Auth, certs, log)
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("stopping: finishing calls in flight", "timeout", cfg.shutdownTimeout.String())
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	stopHTTP() // its calls go through the gRPC server: they finish first
	srv.Shutdown(stopCtx)
	log.Info("stopped")
	return <-served
}

// startCPUProfile starts the CPU profile of --cpuprofile in the new file path (O_EXCL: an
// existing file, made since the flags were checked, is refused, not replaced); stop completes it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// reload reads the tokens file and the TLS certificate and key again; a file that fails to load
// leaves the one in force.
func reload(srv *server.Server, auth *server.Authenticator, certs *certFiles, log *slog.Logger) {
	if auth == nil && certs == nil {
		log.Info("SIGHUP: nothing to reload (no --tokens-file, no TLS)")
	}
	if auth != nil {
		if err := srv.Reload(); err != nil {
			log.Error("SIGHUP: tokens file not reloaded; the credentials in force are unchanged", "error", err)
		} else {
			warnTokensFile(auth.Path(), log)
			tokens, certIDs := auth.Counts()
			log.Info("SIGHUP: tokens file reloaded", "tokens", tokens, "certificate_identities", certIDs)
		}
	}
	if certs != nil {
		if err := certs.load(); err != nil {
			log.Error("SIGHUP: TLS certificate not reloaded; the one in force is unchanged", "error", err)
		} else {
			log.Info("SIGHUP: TLS certificate reloaded")
		}
	}
}

func tlsMode(cfg config) string {
	switch {
	case cfg.tlsClientCA != "":
		return "mutual"
	case cfg.tlsCert != "":
		return "on"
	}
	return "off"
}

// certFiles is the server's certificate and key, read again on SIGHUP.
type certFiles struct {
	certPath, keyPath string
	cert              atomic.Pointer[tls.Certificate]
}

func (c *certFiles) load() error {
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		// LoadX509KeyPair names the files and what is wrong with them, never the key.
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	c.cert.Store(&cert)
	return nil
}

// serverTLS is the TLS configuration of --tls-cert, --tls-key and --tls-client-ca. With a client
// CA, a client certificate is verified when one is sent, but not required: token holders connect
// without one, and the health checks stay open.
func serverTLS(cfg config) (*tls.Config, *certFiles, error) {
	certs := &certFiles{certPath: cfg.tlsCert, keyPath: cfg.tlsKey}
	if err := certs.load(); err != nil {
		return nil, nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return certs.cert.Load(), nil
		},
	}
	if cfg.tlsClientCA != "" {
		pemCerts, err := os.ReadFile(cfg.tlsClientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCerts) {
			return nil, nil, fmt.Errorf("--tls-client-ca: no PEM certificate in %s", cfg.tlsClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, certs, nil
}

// serveMetrics serves reg at /metrics on lis (https with tlsConfig) until the returned
// function is called. With auth, a scrape needs a credential of the tokens file, as a call does:
// "Authorization: Bearer <token>", or a client certificate over mutual TLS.
func serveMetrics(lis net.Listener, reg *prometheus.Registry, auth *server.Authenticator, tlsConfig *tls.Config, log *slog.Logger) (stop func()) {
	var handler http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if auth != nil {
		handler = requireCredential(auth, handler, log, "metrics scrape", "metrics")
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	return serveHTTP("metrics", lis, mux, tlsConfig, log, "/metrics", "authentication", auth != nil)
}

// requireCredential lets a request through to next only with a credential of the tokens file,
// of any role; a refusal is logged ("<what> refused", "metrics scrape refused") and answered 401
// with the realm "ledgerd <realm>".
func requireCredential(auth *server.Authenticator, next http.Handler, log *slog.Logger, what, realm string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := auth.AuthenticateHTTP(r); err != nil {
			log.Warn(what+" refused", "peer.address", r.RemoteAddr, "path", truncate(r.URL.Path, 200), "reason", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="ledgerd `+realm+`"`)
			http.Error(w, "unauthenticated: "+err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// warnTokensFile logs the warning of a tokens file others may read.
func warnTokensFile(path string, log *slog.Logger) {
	if warning, err := server.CheckTokensFilePermissions(path); err == nil && warning != "" {
		log.Warn(warning)
	}
}

// errVersion ends ledgerd after --version printed it.
var errVersion = errors.New("version printed")

// version is ledgerd's module version and the commit it was built from, read from the build
// information the Go toolchain embeds (the commit is there when built by go build or go install
// from a git checkout).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "ledgerd (no build information)"
	}
	return formatVersion(bi)
}

func formatVersion(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	v := "ledgerd " + bi.Main.Version
	if rev := settings["vcs.revision"]; rev != "" {
		v += " commit " + rev
		if settings["vcs.modified"] == "true" {
			v += " (modified)"
		}
		if t := settings["vcs.time"]; t != "" {
			v += " " + t
		}
	} else {
		v += " (no commit recorded: built without VCS stamping, e.g. by go run or -buildvcs=false)"
	}
	return v + " " + bi.GoVersion
}

func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", cfg.logFormat)
}

// describe says where the ledger is stored, without a password.
func describe(database string) string { return store.Redact(database) }

// envErrors are the environment variables that could not be read, by the name of the flag each
// stands for: such a variable is an error only when its flag is not given (the flag wins).
type envErrors map[string]error

func (e envErrors) note(flagName string, err error) {
	if err != nil {
		e[flagName] = err
	}
}

// check returns the first error of a variable whose flag fs was not given.
func (e envErrors) check(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, name := range slices.Sorted(maps.Keys(e)) {
		if !given[name] {
			return fmt.Errorf("%w (or give --%s, which takes its place)", e[name], name)
		}
	}
	return nil
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return fallback
}

func envBool(name string, fallback bool) (bool, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func envFloat(name string, fallback float64) (float64, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

func envInt(name string, fallback int) (int, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

func envDuration(name string, fallback time.Duration) (time.Duration, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}
