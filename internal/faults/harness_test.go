//go:build faults

package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
)

// ledgerdBin is the ledgerd binary TestMain builds (with -race when the tests run with -race).
var ledgerdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faults-ledgerd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ledgerdBin = filepath.Join(dir, "ledgerd")
	args := []string{"build", "-o", ledgerdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/budgetledger/budgetledger/cmd/ledgerd")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(args, " "), err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := testdb.Main(m) // runs the tests, then stops the CockroachDB server testdb.Each may start
	if err := writeFigures(); err != nil {
		fmt.Fprintln(os.Stderr, "FAULTS_FIGURES:", err)
		code = max(code, 1)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	listeningLine = regexp.MustCompile(`msg="ledgerd listening" address=(\S+)`)
	// badLine marks a log line that fails the test whatever else happened: a data race in ledgerd
	// (when built with -race) or a panic.
	badLine = regexp.MustCompile(`WARNING: DATA RACE|^panic: |fatal error: `)
)

// ledgerd is a ledgerd child process that a test kills, stops and restarts, always on the same
// address and the same database.
type ledgerd struct {
	t        *testing.T
	database string
	extra    []string
	addr     string // "127.0.0.1:0" until the first start, then the port every restart reuses
	starts   int

	mu    sync.Mutex
	lines []string // the last lines of every run's log, each prefixed with its run
	bad   []string // lines matching badLine

	cur *run // the process of the latest start
}

// run is one ledgerd process.
type run struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its log is read
	err    error         // cmd.Wait's, set before exited closes
}

const keptLogLines = 300

// startLedgerd runs ledgerd on database, on a port of its own, with the extra flags given. It is
// stopped (SIGTERM, then SIGKILL) when the test ends, and its log is shown if the test failed.
func startLedgerd(t *testing.T, database string, extra ...string) *ledgerd {
	t.Helper()
	d := &ledgerd{t: t, database: database, extra: extra, addr: "127.0.0.1:0"}
	t.Cleanup(d.cleanup)
	d.start()
	return d
}

// start starts the process again on the same address; it fails the test if ledgerd does not say
// it listens within a minute.
func (d *ledgerd) start() {
	d.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		addr, err := d.tryStart()
		if err == nil {
			d.addr = addr
			d.starts++
			return
		}
		if time.Now().After(deadline) || attempt == 20 {
			d.t.Fatalf("ledgerd did not start (attempt %d): %v\n%s", attempt, err, d.tail(40))
		}
		// Only a port still held by the process just killed should get here; the kernel frees
		// it as soon as the process is reaped, so one short pause is enough.
		d.t.Logf("ledgerd start %d failed, trying again: %v", attempt, err)
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *ledgerd) tryStart() (string, error) {
	args := append([]string{"--listen", d.addr, "--database", d.database}, d.extra...)
	cmd := exec.Command(ledgerdBin, args...)
	// A -race binary sleeps a second at exit by default, which would blur the stop times.
	cmd.Env = append(os.Environ(), strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	r := &run{cmd: cmd, exited: make(chan struct{})}
	label := fmt.Sprintf("[ledgerd #%d pid %d] ", d.starts+1, cmd.Process.Pid)
	listening := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		for lines.Scan() {
			line := lines.Text()
			if !strings.Contains(line, "grpc.code=OK") { // one line per successful call is noise here
				d.record(label + line)
			}
			if badLine.MatchString(line) {
				d.mu.Lock()
				d.bad = append(d.bad, label+line)
				d.mu.Unlock()
			}
			if m := listeningLine.FindStringSubmatch(line); m != nil {
				select {
				case listening <- m[1]:
				default:
				}
			}
		}
		r.err = cmd.Wait()
		close(r.exited)
	}()
	select {
	case addr := <-listening:
		d.cur = r
		return addr, nil
	case <-r.exited:
		return "", fmt.Errorf("ledgerd exited before listening: %v", r.err)
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-r.exited
		return "", errors.New("ledgerd did not say it listens within a minute")
	}
}

func (d *ledgerd) record(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lines = append(d.lines, line)
	if len(d.lines) > 2*keptLogLines {
		d.lines = append(d.lines[:0], d.lines[len(d.lines)-keptLogLines:]...)
	}
}

// tail is the last n lines of ledgerd's log, over all its runs.
func (d *ledgerd) tail(n int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines[max(0, len(d.lines)-n):], "\n")
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *ledgerd) kill() {
	d.t.Helper()
	if err := d.cur.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatalf("SIGKILL: %v", err)
	}
	<-d.cur.exited
}

// terminate sends SIGTERM and returns how ledgerd exited: nil for exit status 0. It gives up
// (SIGKILL) after timeout.
func (d *ledgerd) terminate(timeout time.Duration) error {
	if err := d.cur.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-d.cur.exited:
		return d.cur.err
	case <-time.After(timeout):
		_ = d.cur.cmd.Process.Kill()
		<-d.cur.exited
		return fmt.Errorf("ledgerd still running %v after SIGTERM; killed", timeout)
	}
}

// running reports whether the latest process is still running.
func (d *ledgerd) running() bool {
	select {
	case <-d.cur.exited:
		return false
	default:
		return true
	}
}

func (d *ledgerd) cleanup() {
	if d.cur != nil && d.running() {
		if err := d.terminate(30 * time.Second); err != nil {
			d.t.Errorf("ledgerd at the end of the test: %v", err)
		}
	}
	d.mu.Lock()
	bad := append([]string(nil), d.bad...)
	d.mu.Unlock()
	for _, line := range bad {
		d.t.Errorf("ledgerd log: %s", line)
	}
	if d.t.Failed() {
		d.t.Logf("ledgerd log, last lines:\n%s", d.tail(80))
	}
}

// dial connects a Go client to addr with the retry policy given: attempts in all, the first wait
// backoff (doubling). It reconnects within tens of milliseconds after ledgerd comes back (gRPC's
// own first wait is a second). The attempts it counts are every try of a mutation, retries
// included, by outcome.
func dial(t *testing.T, addr string, attempts uint, wait time.Duration) (*client.Client, *attemptCounter) {
	t.Helper()
	fastReconnect := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
		MinConnectTimeout: 5 * time.Second,
	})
	counts := &attemptCounter{byCode: map[codes.Code]int{}}
	c, err := client.Dial(context.Background(), addr, client.WithInsecure(), client.WithRetry(attempts, wait),
		client.WithDialOptions(fastReconnect, grpc.WithChainUnaryInterceptor(counts.interceptor)))
	if err != nil {
		t.Fatalf("client.Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, counts
}

// attemptCounter counts the attempts of mutating calls (retries included) by gRPC code.
type attemptCounter struct {
	mu     sync.Mutex
	byCode map[codes.Code]int
}

func (a *attemptCounter) interceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if _, mutation := req.(interface{ GetRequestId() string }); mutation {
		a.mu.Lock()
		a.byCode[status.Code(err)]++
		a.mu.Unlock()
	}
	return err
}

// codeName is code as the gRPC documentation spells it: DEADLINE_EXCEEDED.
func codeName(code codes.Code) string {
	var b strings.Builder
	for i, r := range code.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// failed says how many attempts failed, by code, e.g. "37 UNAVAILABLE, 2 ABORTED".
func (a *attemptCounter) failed() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var parts []string
	for code, n := range a.byCode {
		if code != codes.OK {
			parts = append(parts, fmt.Sprintf("%d %s", n, codeName(code)))
		}
	}
	if len(parts) == 0 {
		return "no attempt failed"
	}
	slices.Sort(parts)
	return "attempts failed: " + strings.Join(parts, ", ")
}

// counter counts acknowledged operations; tests wait on it instead of sleeping.
type counter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed and replaced at every change
}

func newCounter() *counter { return &counter{changed: make(chan struct{})} }

func (c *counter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *counter) value() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitFor waits until the counter reaches target, at most timeout.
func (c *counter) waitFor(ctx context.Context, target int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c.mu.Lock()
		n, changed := c.n, c.changed
		c.mu.Unlock()
		if n >= target {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d operations acknowledged after %v, waiting for %d: %w", n, timeout, target, ctx.Err())
		}
	}
}

// figures is what a test reports of one run: the faults it injected and what came of them.
type figures struct {
	test, engine string
	faults       string // e.g. "10 × SIGKILL"
	acked        int    // operations acknowledged to the clients (commits, releases, moves)
	refused      int    // refused with a business error (INSUFFICIENT_FUNDS, …): posted nothing
	resolved     int    // failed without a definite answer, then sent again with the same request id
	lost         int    // acknowledged but missing from the ledger
	duplicated   int    // request ids applied more than once
	phantom      int    // in the ledger without having been acknowledged
	discrepancy  int    // what ledger.Verify found, over every check of the run
	notes        string
	elapsed      time.Duration
}

var (
	figuresMu  sync.Mutex
	allFigures []figures
)

const figuresHeader = "| test | engine | faults injected | ops acknowledged | refused | unanswered, resent | lost | duplicated | phantom | Verify discrepancies | time | notes |\n" +
	"|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"

func (f figures) row() string {
	return fmt.Sprintf("| %s | %s | %s | %d | %d | %d | %d | %d | %d | %d | %.1f s | %s |", f.test, f.engine, f.faults,
		f.acked, f.refused, f.resolved, f.lost, f.duplicated, f.phantom, f.discrepancy, f.elapsed.Seconds(), f.notes)
}

// report logs the figures (as a Markdown table row, for docs/reliability.md) and keeps them for
// FAULTS_FIGURES.
func (f figures) report(t *testing.T) {
	t.Helper()
	t.Logf("figures:\n%s\n%s", figuresHeader, f.row())
	figuresMu.Lock()
	allFigures = append(allFigures, f)
	figuresMu.Unlock()
}

// writeFigures writes every run's figures as a Markdown table to $FAULTS_FIGURES, if set.
func writeFigures() error {
	path := os.Getenv("FAULTS_FIGURES")
	if path == "" {
		return nil
	}
	figuresMu.Lock()
	defer figuresMu.Unlock()
	var b strings.Builder
	b.WriteString(figuresHeader + "\n")
	for _, f := range allFigures {
		b.WriteString(f.row() + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// engineOf names the engine of a database URL or path, for the figures.
func engineOf(database string) string {
	if strings.HasPrefix(database, "postgres") {
		return "postgres"
	}
	return "sqlite"
}
