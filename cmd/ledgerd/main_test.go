package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

var listeningLine = regexp.MustCompile(`msg="ledgerd listening" address=(\S+)`)

// waitListening reads ledgerd's log until it says where it listens, and keeps draining it.
func waitListening(t *testing.T, r io.Reader) string {
	t.Helper()
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		if m := listeningLine.FindStringSubmatch(lines.Text()); m != nil {
			go func() {
				for lines.Scan() {
				}
			}()
			return m[1]
		}
	}
	t.Fatalf("ledgerd stopped before listening: %v", lines.Err())
	return ""
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// runLedgerd runs ledgerd in-process with args and returns the loopback address it serves on and
// what it had logged until then. It stops (as on a signal: its context ends) when the test ends,
// and the test fails if it did not stop cleanly. Unless args set one, the transaction timeout is
// the tests' (testdb.TxTimeout): the default of 5 s is not meant for a machine busy with a whole
// test suite under -race.
func runLedgerd(t *testing.T, args ...string) (addr, logged string) {
	t.Helper()
	if !slices.Contains(args, "--tx-timeout") {
		args = append(args, "--tx-timeout", testdb.TxTimeout.String())
	}
	return runLedgerdAsGiven(t, args...)
}

// runLedgerdAsGiven is runLedgerd with args exactly as given.
func runLedgerdAsGiven(t *testing.T, args ...string) (addr, logged string) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	logR, logW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, args, logW)
		logW.Close()
	}()
	var log lockedBuffer
	listening := waitListening(t, io.TeeReader(logR, &log))
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ledgerd stopped with %v", err)
			}
		case <-time.After(5 * time.Minute):
			t.Error("ledgerd did not stop")
		}
	})
	_, port, err := net.SplitHostPort(listening)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", port), log.String()
}

// lockedBuffer is a buffer written by one goroutine and read by another.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestServesOnDefaults runs ledgerd as a newcomer would, with no set-up: it creates its SQLite file
// in the working directory, serves, and stops cleanly on a signal (here, its context).
func TestServesOnDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	addr, _ := runLedgerdAsGiven(t, "--listen", "127.0.0.1:0")
	conn := dial(t, addr)
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp.GetStatus(), err)
	}
	if _, err := pb.NewEnvelopeServiceClient(conn).CreateEnvelope(context.Background(),
		&pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 8_800_000_000, RequestId: "fund"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Errorf("no SQLite file in the working directory: %v", err)
	}
}

// TestCPUProfileWrittenWhenStopped: --cpuprofile leaves a complete profile (gzip-compressed
// protocol buffer, as go tool pprof reads) once ledgerd stops on its signal, covering the calls
// it served.
func TestCPUProfileWrittenWhenStopped(t *testing.T) {
	t.Chdir(t.TempDir())
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	t.Run("serve", func(t *testing.T) {
		addr, _ := runLedgerd(t, "--listen", "127.0.0.1:0", "--cpuprofile", profile)
		if _, err := pb.NewEnvelopeServiceClient(dial(t, addr)).CreateEnvelope(context.Background(),
			&pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 100, RequestId: "fund"}); err != nil {
			t.Fatal(err)
		}
	}) // ledgerd stops at the end of the subtest
	raw, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("the profile is not a gzip-compressed pprof file (%d bytes)", len(raw))
	}
}

// TestCPUProfileNeverReplacesAFile protects the files a mistyped --cpuprofile names: an existing
// file, the ledger itself included, is refused and left as it was, before anything is opened; and
// a start that fails (on --listen, on --database) writes no profile at all.
func TestCPUProfileNeverReplacesAFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	// Ended already: a ledgerd that took the file anyway stops at once rather than serving on.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	important := filepath.Join(dir, "important.txt")
	if err := os.WriteFile(important, []byte("important\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := realMain(ended, []string{"--listen", "127.0.0.1:0", "--cpuprofile", important}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--cpuprofile") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("--cpuprofile naming an existing file: %v, want it refused", err)
	}
	if got, err := os.ReadFile(important); err != nil || string(got) != "important\n" {
		t.Errorf("the existing file now holds %q, %v", got, err)
	}
	if _, err := os.Stat("ledger.db"); err == nil {
		t.Error("a start refused on --cpuprofile created ledger.db")
	}

	// The ledger named twice, as its own profile.
	ledgerFile := filepath.Join(dir, "lg2.db")
	t.Run("serve", func(t *testing.T) {
		runLedgerd(t, "--listen", "127.0.0.1:0", "--database", ledgerFile)
	})
	before, err := os.ReadFile(ledgerFile)
	if err != nil || len(before) == 0 {
		t.Fatalf("the ledger: %d bytes, %v", len(before), err)
	}
	if err := realMain(ended, []string{"--listen", "127.0.0.1:0", "--database", ledgerFile, "--cpuprofile", ledgerFile}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--cpuprofile") {
		t.Errorf("--cpuprofile naming the ledger: %v, want it refused", err)
	}
	if after, err := os.ReadFile(ledgerFile); err != nil || !bytes.Equal(after, before) {
		t.Errorf("--cpuprofile naming the ledger changed it: %d bytes, %v; was %d", len(after), err, len(before))
	}

	profile := filepath.Join(dir, "cpu.pprof")
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:99999"},
		{"--listen", "127.0.0.1:0", "--database", "postgres://%zz"},
	} {
		if err := realMain(ended, append(args, "--cpuprofile", profile), io.Discard); err == nil {
			t.Fatalf("ledgerd %v started", args)
		}
		if _, err := os.Stat(profile); !os.IsNotExist(err) {
			t.Errorf("ledgerd %v failed to start but left a profile: %v", args, err)
			os.Remove(profile)
		}
	}
}

// TestRejectsBadConfiguration checks that ledgerd refuses to start on a bad setting and says
// which, before it creates anything.
func TestRejectsBadConfiguration(t *testing.T) {
	t.Chdir(t.TempDir())
	// A port taken: a clash fails before any database is created.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--log-format", "xml"}, want: "--log-format"},
		{args: []string{"--log-level", "loud"}, want: "--log-level"},
		{args: []string{"serve"}, want: `unexpected argument "serve"`},
		{env: map[string]string{"LEDGER_TX_TIMEOUT": "soon"}, want: "LEDGER_TX_TIMEOUT"},

		{args: []string{"--listen", "127.0.0.1:0", "--database", "postgres://%zz"}, want: "not a valid PostgreSQL URL"},
		{args: []string{"--metrics-listen", busy.Addr().String()}, want: "--metrics-listen"},
	}
	for _, tc := range cases {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		err := realMain(context.Background(), append(tc.args, "--listen", "127.0.0.1:0"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ledgerd %v (env %v): error %v, want one mentioning %q", tc.args, tc.env, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
	if _, err := os.Stat("ledger.db"); err == nil {
		t.Error("a refused configuration created ledger.db")
	}
}

// TestRefusesNegativeTimeouts protects the timeouts from a value that means nothing: a negative
// --tx-timeout (or 0) was taken for the 5 s default, a negative --shutdown-timeout made every stop
// "time out"; each is refused in one line naming the flag, or the variable when it set it.
func TestRefusesNegativeTimeouts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--tx-timeout", "-1s"}, want: "--tx-timeout must be positive"},
		{args: []string{"--tx-timeout", "0s"}, want: "--tx-timeout must be positive"},
		{env: map[string]string{"LEDGER_TX_TIMEOUT": "-1s"}, want: "LEDGER_TX_TIMEOUT must be positive"},
		{args: []string{"--shutdown-timeout", "-1s"}, want: "--shutdown-timeout must not be negative"},
		{env: map[string]string{"LEDGER_SHUTDOWN_TIMEOUT": "-5m"}, want: "LEDGER_SHUTDOWN_TIMEOUT must not be negative"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := parseFlags(tc.args, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("ledgerd %v (env %v): %v, want one line starting %q", tc.args, tc.env, err, tc.want)
			}
		})
	}
	// 0 is a stop that closes the calls in flight at once: a choice, not a mistake.
	if _, err := parseFlags([]string{"--shutdown-timeout", "0s"}, io.Discard); err != nil {
		t.Errorf("--shutdown-timeout 0s: %v", err)
	}
}

// TestRefusesTokensFileWithoutCredentials protects callers from a server that starts with
// authentication on and nobody to admit, refusing every call: a tokens file holding no credential
// (empty, or all comments) is refused at start, in one line naming the flag.
func TestRefusesTokensFileWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# nobody yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Ended already: a ledgerd that took the file stops at once rather than serving on.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	err := realMain(ended, []string{"--listen", "127.0.0.1:0", "--tokens-file", tokens}, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--tokens-file: ") || !strings.Contains(err.Error(), "holds no credentials") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("a tokens file with no credentials: %v, want one line refusing --tokens-file", err)
	}
}

// TestEverySubcommandHasHelp protects `ledgerd SUBCOMMAND --help`, which ledgerd --help points
// to: for every subcommand and sub-subcommand, -h and --help print a usage text and end as help
// does (exit 0), not as an error.
func TestEverySubcommandHasHelp(t *testing.T) {
	for _, cmd := range [][]string{{}, {"verify"}, {"backup"}, {"copy"}, {"export"}, {"export", "scdl"}, {"export-journal"},
		{"verify-log"}, {"log-key"}, {"log-key", "generate"}} {
		for _, help := range []string{"--help", "-h"} {
			var stderr bytes.Buffer
			err := realMain(context.Background(), append(slices.Clone(cmd), help), &stderr)
			if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "usage: ledgerd") {
				t.Errorf("ledgerd %s %s: %v, stderr %q; want the usage and exit 0", strings.Join(cmd, " "), help, err, stderr.String())
			}
		}
	}
}

// TestFlagWinsOverABadVariable protects README's "every flag has an environment variable; the
// flag wins": a variable that cannot be read is an error only when its flag is not given, and
// names itself; a variable that can be read still sets its flag's default.
func TestFlagWinsOverABadVariable(t *testing.T) {
	t.Setenv("LEDGER_BATCHING", "yes")
	t.Setenv("LEDGER_CHECKPOINT_INTERVAL", "soon")
	t.Setenv("LEDGER_TX_TIMEOUT", "7s")
	c, err := parseFlags([]string{"--batching=false", "--checkpoint-interval", "1m"}, io.Discard)
	if err != nil {
		t.Fatalf("bad variables overridden by their flags: %v", err)
	}
	if c.batching || c.log.interval != time.Minute || c.txTimeout != 7*time.Second {
		t.Errorf("batching %v, checkpoint interval %v, tx timeout %v; want false, 1m, 7s", c.batching, c.log.interval, c.txTimeout)
	}
	for _, args := range [][]string{{"--checkpoint-interval", "1m"}, {"--batching=false"}} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), "LEDGER_") {
			t.Errorf("flags %v, another variable bad and its flag not given: %v, want that variable named", args, err)
		}
	}
}

// TestMistakenFlagSaidOnce protects a newcomer's first mistake: an unknown flag or a bad value is
// one error, pointing at --help, not the flag package's message and 60 lines of usage before it.
func TestMistakenFlagSaidOnce(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--port", "50051"}, {"--tx-timeout", "soon"}} {
		var stderr bytes.Buffer
		err := realMain(context.Background(), args, &stderr)
		if err == nil || !strings.Contains(err.Error(), "ledgerd --help") {
			t.Errorf("ledgerd %v: %v, want an error pointing at --help", args, err)
		}
		if stderr.Len() != 0 {
			t.Errorf("ledgerd %v also wrote %q", args, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if err := realMain(context.Background(), []string{"--help"}, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-listen") {
		t.Errorf("ledgerd --help: %v, printed %d bytes", err, stderr.Len())
	}
}
