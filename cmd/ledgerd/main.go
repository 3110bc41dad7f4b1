// Command ledgerd serves the budget ledger over gRPC.
//
//	go run ./cmd/ledgerd                       # 127.0.0.1:50051, SQLite file ./ledger.db
//	ledgerd --database postgres://user@host:5432/ledger?sslmode=verify-full
//
// Every flag has an environment equivalent (LEDGER_LISTEN, LEDGER_DATABASE, …); a flag wins over
// its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/server"
)

func main() {
	ctx, done := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer done()
	if err := realMain(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
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
	database        string
	batching        bool
	logFormat       string
	logLevel        string
	txTimeout       time.Duration
	shutdownTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("ledgerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", env("LEDGER_LISTEN", "127.0.0.1:50051"), "address to serve gRPC on (LEDGER_LISTEN)")
	fs.StringVar(&c.metricsListen, "metrics-listen", env("LEDGER_METRICS_LISTEN", ""),
		"address to serve Prometheus metrics on, at /metrics; empty: no metrics (LEDGER_METRICS_LISTEN)")
	batching, err := envBool("LEDGER_BATCHING", true)
	if err != nil {
		return c, err
	}
	fs.BoolVar(&c.batching, "batching", batching,
		"group commit: decide the awards and releases queued for one envelope in one transaction (LEDGER_BATCHING)")
	fs.StringVar(&c.database, "database", env("LEDGER_DATABASE", "ledger.db"),
		"a SQLite file path, or a postgres:// URL for PostgreSQL or CockroachDB (LEDGER_DATABASE)")
	fs.StringVar(&c.logFormat, "log-format", env("LEDGER_LOG_FORMAT", "text"), "text or json (LEDGER_LOG_FORMAT)")
	fs.StringVar(&c.logLevel, "log-level", env("LEDGER_LOG_LEVEL", "info"), "debug, info, warn or error (LEDGER_LOG_LEVEL)")
	txTimeout, err := envDuration("LEDGER_TX_TIMEOUT", 5*time.Second)
	if err != nil {
		return c, err
	}
	shutdownTimeout, err := envDuration("LEDGER_SHUTDOWN_TIMEOUT", 30*time.Second)
	if err != nil {
		return c, err
	}
	fs.DurationVar(&c.txTimeout, "tx-timeout", txTimeout, "deadline of every database transaction, retries included (LEDGER_TX_TIMEOUT)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", shutdownTimeout,
		"how long a stop waits for calls in flight before closing them (LEDGER_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

func realMain(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}

	// Take the port first: a clash fails at once, before any database is created or migrated.
	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	defer lis.Close()
	var reg *prometheus.Registry
	if cfg.metricsListen != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	lcfg := ledger.Config{TxTimeout: cfg.txTimeout, DisableBatching: !cfg.batching}
	scfg := server.Config{Logger: log}
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
		stopMetrics, err := serveMetrics(cfg.metricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	log.Info("ledgerd listening", "address", lis.Addr().String(), "engine", l.Engine(), "database", describe(cfg.database),
		"batching", cfg.batching)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping: finishing calls in flight", "timeout", cfg.shutdownTimeout.String())
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	srv.Shutdown(stopCtx)
	log.Info("stopped")
	return <-served
}

// serveMetrics serves reg at http://addr/metrics until the returned function is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("metrics listening", "address", "http://"+lis.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
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
func describe(database string) string {
	if strings.Contains(database, "://") {
		if u, err := url.Parse(database); err == nil {
			return u.Redacted()
		}
		return "(unparsable URL)"
	}
	return database
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
