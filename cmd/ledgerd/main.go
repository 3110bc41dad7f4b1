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
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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
	database        string
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
	l, err := ledger.Open(ctx, cfg.database, ledger.Config{TxTimeout: cfg.txTimeout})
	if err != nil {
		return err
	}
	defer l.Close()

	srv, err := server.New(l, server.Config{Logger: log})
	if err != nil {
		return err
	}
	log.Info("ledgerd listening", "address", lis.Addr().String(), "engine", l.Engine(), "database", describe(cfg.database))

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
