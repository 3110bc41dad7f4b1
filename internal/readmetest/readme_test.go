package readmetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

const (
	// walkthroughHeading opens the README section under test; the section ends at the next "## ".
	walkthroughHeading = "## Walkthrough with grpcurl"
	// readmeAddress is where the README's commands call ledgerd; the test rewrites it to the
	// address of the ledgerd it started on a free port.
	readmeAddress = "127.0.0.1:50051"
)

// Figures the README states in its prose and in the error it shows: awards of 300,000 € and
// 1.2 M€ on axis 1 (3,000,000,000 cents), then a release of 50,000 € of the first, leave
// 2,855,000,000 cents available there.
const (
	axis1          = "envelopes/axis-1"
	releasedAmount = 5_000_000
	axis1Available = 2_855_000_000
)

var (
	listeningLine = regexp.MustCompile(`msg="ledgerd listening" address=(\S+)`)
	// The README's grpcurl shell function, which the test points at the binary it built.
	grpcurlFunc = regexp.MustCompile(`^grpcurl\(\)\s*\{.*\}\s*$`)
	// A single-quoted -d payload, as most of the walkthrough's calls have.
	payloadArg  = regexp.MustCompile(`-d '([^']*)'`)
	rpcMethod   = regexp.MustCompile(`\bbudgetledger\.v1\.(\w+Service)/(\w+)\b`)
	describeArg = regexp.MustCompile(`\bdescribe\s+(\S+)\s*$`)
	commitName  = regexp.MustCompile(`^commitments/[0-9a-f-]{36}$`)
	timestamp   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	uuid        = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

// fence is one fenced code block of the README.
type fence struct {
	lang string
	body []string
	line int // of the opening ```, 1-based
}

// command is one shell command of a ```sh block: one line, or several joined by trailing
// backslashes.
type command struct {
	text   string // as the README has it
	line   int    // in the README, 1-based
	expect *fence // the block the README shows right after it as its output, if any
	// mustFail: the output the README shows is a grpcurl error ("ERROR:"), so the command exits
	// non-zero.
	mustFail bool
}

// result is what one command printed.
type result struct {
	stdout, stderr string
	exitCode       int
}

// TestREADMEWalkthrough runs every command of the README's "Walkthrough with grpcurl", in order
// and in one bash process (so that $C, set by one block, is there for the next), against a fresh
// ledgerd, with the README's own grpcurl function pointed at the grpcurl pinned in tools/go.mod.
// It fails when a command fails, when an output the README shows differs from the real one, or
// when a result contradicts what the README says about it.
func TestREADMEWalkthrough(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed: the README's commands are bash; skipping the walkthrough test")
	}
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := walkthroughCommands(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}

	bin := t.TempDir()
	ledgerd, grpcurl := filepath.Join(bin, "ledgerd"), filepath.Join(bin, "grpcurl")
	goBuild(t, root,
		[]string{"-o", ledgerd, "./cmd/ledgerd"},
		[]string{"-modfile=" + filepath.Join(root, "tools", "go.mod"), "-o", grpcurl, "github.com/fullstorydev/grpcurl/cmd/grpcurl"})

	// The walkthrough's first command defines grpcurl as `go tool -modfile=tools/go.mod grpcurl`.
	// It is run as written once, from the repository root as the README says, to check that it
	// does give grpcurl; the walkthrough then uses the binary built above, sparing each of its
	// calls go tool's start-up.
	var defined bool
	for i, c := range cmds {
		if !grpcurlFunc.MatchString(c.text) {
			continue
		}
		if defined {
			t.Fatalf("README.md:%d: a second definition of the grpcurl function", c.line)
		}
		defined = true
		checkGrpcurlFunc(t, bash, root, c)
		cmds[i].text = "grpcurl() { " + shellQuote(grpcurl) + ` "$@"; }`
	}
	if !defined {
		t.Fatalf("README.md: the walkthrough no longer defines the grpcurl shell function (a line `grpcurl() { ...; }`); update this test with the README")
	}

	work := t.TempDir()
	addr := startLedgerd(t, ledgerd, work)
	for i := range cmds {
		cmds[i].text = strings.ReplaceAll(cmds[i].text, readmeAddress, addr)
	}
	results := runWalkthrough(t, bash, work, cmds)
	checkWalkthrough(t, cmds, results)
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(mod, []byte("module github.com/budgetledger/budgetledger\n")) {
		t.Fatalf("%s is not the budgetledger repository root (go.mod: %v)", root, err)
	}
	return root
}

// goBuild runs `go build ARGS...` for each argument list, at once, from the repository root.
func goBuild(t *testing.T, root string, builds ...[]string) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, args := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(goCmd, append([]string{"build"}, args...)...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkGrpcurlFunc runs the README's definition of grpcurl, as written, from the repository root,
// and checks that it gives a working grpcurl.
func checkGrpcurlFunc(t *testing.T, bash, root string, c command) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "--noprofile", "--norc", "-euo", "pipefail", "-c", c.text+"\ngrpcurl -version")
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "grpcurl ") {
		t.Fatalf("README.md:%d: the grpcurl function as written (%s) does not run grpcurl from the repository root: %v\n%s",
			c.line, c.text, err, out)
	}
}

// walkthroughCommands extracts, in order, the commands of every ```sh block of the walkthrough,
// each with the block the README shows as its output when one follows.
func walkthroughCommands(readme string) ([]command, error) {
	fences, err := sectionFences(readme, walkthroughHeading)
	if err != nil {
		return nil, err
	}
	var cmds []command
	prevSh := false
	for i := range fences {
		f := &fences[i]
		if f.lang != "sh" && f.lang != "bash" {
			// A block right after a ```sh block shows what its last command prints.
			if prevSh {
				last := &cmds[len(cmds)-1]
				last.expect = f
				last.mustFail = len(f.body) > 0 && strings.TrimSpace(f.body[0]) == "ERROR:"
			}
			prevSh = false
			continue
		}
		n := len(cmds)
		var cur []string
		for j, line := range f.body {
			if len(cur) == 0 && (strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#")) {
				continue
			}
			cur = append(cur, line)
			if !strings.HasSuffix(line, `\`) {
				cmds = append(cmds, command{text: strings.Join(cur, "\n"), line: f.line + 1 + j - (len(cur) - 1)})
				cur = nil
			}
		}
		if len(cur) > 0 {
			return nil, fmt.Errorf("line %d: the ```sh block ends on a backslash", f.line)
		}
		if len(cmds) == n {
			return nil, fmt.Errorf("line %d: an empty ```sh block", f.line)
		}
		prevSh = true
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("no ```sh block under %q", walkthroughHeading)
	}
	return cmds, nil
}

// sectionFences returns the fenced blocks between the heading that starts with heading and the
// next level-2 heading.
func sectionFences(readme, heading string) ([]fence, error) {
	lines := strings.Split(readme, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, heading) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("no section %q", heading)
	}
	var fences []fence
	var open *fence
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if open == nil && strings.HasPrefix(l, "## ") {
			break
		}
		trimmed := strings.TrimSpace(l)
		switch {
		case open == nil && strings.HasPrefix(trimmed, "```"):
			open = &fence{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1}
		case open != nil && trimmed == "```":
			fences = append(fences, *open)
			open = nil
		case open != nil:
			open.body = append(open.body, l)
		}
	}
	if open != nil {
		return nil, fmt.Errorf("line %d: a code block is not closed", open.line)
	}
	return fences, nil
}

// startLedgerd starts ledgerd in dir as the README's quick start does (its default SQLite file
// ./ledger.db, fresh here), but on a free port, and returns the address it reports.
func startLedgerd(t *testing.T, bin, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0")
	cmd.Dir = dir
	// The README's defaults, whatever the caller's environment sets.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEDGER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Except the transaction timeout: the README's commands do not depend on it, and its 5 s
	// default can pass on a machine busy with other work (see testdb.TxTimeout).
	cmd.Env = append(cmd.Env, "LEDGER_TX_TIMEOUT="+testdb.TxTimeout.String())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	addrc := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			mu.Lock()
			log.WriteString(lines.Text() + "\n")
			mu.Unlock()
			if m := listeningLine.FindStringSubmatch(lines.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	exited := make(chan error, 1)
	go func() {
		<-drained
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("ledgerd's log:\n%s", log.String())
			mu.Unlock()
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-exited:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("ledgerd stopped before listening: %v\n%s", err, log.String())
	case <-time.After(5 * time.Minute):
		t.Fatal("ledgerd did not say where it listens within 5 minutes")
	}
	return ""
}

// runWalkthrough runs the commands in order in one bash process under `set -euo pipefail`, each
// with its output in files of its own, and returns what each printed.
//
// The one command that the README shows failing (its output block starts with "ERROR:": grpcurl
// exits non-zero on an error status) runs as the condition of an `if`, which exempts it from
// `set -e`, and its exit code is recorded instead. This is sturdier than `|| true` or than
// running the blocks in separate processes: every other command still stops the run at its first
// failure, shell variables carry over from block to block as they do in the reader's terminal,
// and a command that the README shows failing but that succeeds is reported as such.
func runWalkthrough(t *testing.T, bash, dir string, cmds []command) []result {
	t.Helper()
	out := t.TempDir()
	file := func(i int, ext string) string { return filepath.Join(out, fmt.Sprintf("%d.%s", i, ext)) }
	current := filepath.Join(out, "current")
	var s strings.Builder
	s.WriteString("set -euo pipefail\n")
	for i, c := range cmds {
		fmt.Fprintf(&s, "\n# README.md:%d\nprintf '%%d\\n' %d >%s\n", c.line, i, shellQuote(current))
		redirect := fmt.Sprintf(">%s 2>%s", shellQuote(file(i, "out")), shellQuote(file(i, "err")))
		if c.mustFail {
			fmt.Fprintf(&s, "if { %s\n} %s; then echo 0 >%s; else echo \"$?\" >%[3]s; fi\n",
				c.text, redirect, shellQuote(file(i, "rc")))
		} else {
			fmt.Fprintf(&s, "{ %s\n} %s\n", c.text, redirect)
		}
	}
	fmt.Fprintf(&s, "\nprintf 'done\\n' >%s\n", shellQuote(current))
	script := filepath.Join(out, "walkthrough.sh")
	if err := os.WriteFile(script, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("the walkthrough's commands are not valid bash once put together (each must be one line, or lines ending in a backslash): %v\n%s\nscript:\n%s",
			err, out, s.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "--noprofile", "--norc", script)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var shellOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &shellOut, &shellOut
	runErr := cmd.Run()

	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}
	if last := strings.TrimSpace(read(current)); runErr != nil || last != "done" {
		i, err := strconv.Atoi(last)
		if err != nil {
			t.Fatalf("the walkthrough did not run: %v (last command: %q)\n%s", runErr, last, shellOut.String())
		}
		t.Fatalf("README.md:%d: this walkthrough command failed (%v):\n%s\nstdout:\n%s\nstderr:\n%s%s",
			cmds[i].line, runErr, cmds[i].text, read(file(i, "out")), read(file(i, "err")), shellOut.String())
	}
	results := make([]result, len(cmds))
	for i, c := range cmds {
		results[i] = result{stdout: read(file(i, "out")), stderr: read(file(i, "err"))}
		if c.mustFail {
			rc, err := strconv.Atoi(strings.TrimSpace(read(file(i, "rc"))))
			if err != nil {
				t.Fatalf("README.md:%d: no exit code recorded: %v", c.line, err)
			}
			results[i].exitCode = rc
		}
	}
	return results
}

// normalize makes an output comparable with the README's rendering of it: no trailing blanks, no
// leading or trailing empty lines, and timestamps and UUIDs (different at every run) replaced.
func normalize(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	s = strings.Trim(strings.Join(lines, "\n"), "\n")
	s = timestamp.ReplaceAllString(s, "<timestamp>")
	return uuid.ReplaceAllString(s, "<uuid>")
}

// walk is what the test knows of the ledger as the walkthrough goes.
type walk struct {
	t          *testing.T
	allocation map[string]int64    // by envelope name, as created
	available  map[string]int64    // by envelope name, after the last call that changed it
	children   map[string][]string // envelope names by parent
	commits    map[string]int      // number of awards made, by envelope name
	commitment string              // what `echo "$C"` printed
	seen       map[string]bool
	// paid and payments are what was paid of $C, and in how many payments.
	paid, payments int64
}

// checkWalkthrough checks each command's output against the README, in order.
func checkWalkthrough(t *testing.T, cmds []command, results []result) {
	w := &walk{
		t:          t,
		allocation: map[string]int64{},
		available:  map[string]int64{},
		children:   map[string][]string{},
		commits:    map[string]int{},
		seen:       map[string]bool{},
	}
	for i, c := range cmds {
		r := results[i]
		if c.mustFail && r.exitCode == 0 {
			t.Errorf("README.md:%d: the README shows this command failing, but it succeeded:\n%s\noutput:\n%s", c.line, c.text, r.stdout)
		}
		if c.expect != nil {
			got, want := normalize(r.stdout+r.stderr), normalize(strings.Join(c.expect.body, "\n"))
			if got != want {
				t.Errorf("README.md:%d: the output shown at line %d differs from what the command prints.\ncommand:\n%s\nREADME:\n%s\nactual:\n%s",
					c.line, c.expect.line, c.text, want, got)
			}
			if c.mustFail {
				w.seen["error"] = true
			}
		}
		if c.mustFail {
			continue
		}
		w.check(c, r.stdout)
	}
	for _, what := range []string{
		"list", "health", "describe", "CreateEnvelope", "ListEnvelopes", "echo", "Commit", "Release", "error",
		"GetEnvelope", "ListCommitments", "ListJournalEntries", "MoveAllocation",
		"CreatePayment", "ListPayments", "CloseCommitment",
	} {
		if !w.seen[what] {
			t.Errorf("README.md: the walkthrough no longer has a %s command that this test knows; update the test with the README", what)
		}
	}
}

// check checks the output of one command that succeeded.
func (w *walk) check(c command, out string) {
	t := w.t
	where := fmt.Sprintf("README.md:%d", c.line)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %s\ncommand:\n%s\noutput:\n%s", where, fmt.Sprintf(format, args...), c.text, out)
	}
	switch {
	case strings.HasPrefix(c.text, "grpcurl() "):
		return
	case regexp.MustCompile(`\slist\s*$`).MatchString(c.text):
		w.seen["list"] = true
		services := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			services[strings.TrimSpace(l)] = true
		}
		for _, s := range []string{"budgetledger.v1.CommitmentService", "budgetledger.v1.EnvelopeService",
			"budgetledger.v1.JournalService", "grpc.health.v1.Health"} {
			if !services[s] {
				fail("list does not list %s", s)
			}
		}
		return
	case strings.Contains(c.text, "grpc.health.v1.Health/Check"):
		w.seen["health"] = true
		if got := str(decode(t, where, out), "status"); got != "SERVING" {
			fail("health status %q, want SERVING", got)
		}
		return
	case describeArg.MatchString(c.text):
		w.seen["describe"] = true
		sym := describeArg.FindStringSubmatch(c.text)[1]
		first, _, _ := strings.Cut(out, "\n")
		if first != sym+" is a service:" && first != sym+" is a message:" {
			fail("describe %s does not describe it", sym)
		}
		return
	case strings.HasPrefix(c.text, `echo "$C"`):
		w.seen["echo"] = true
		w.commitment = strings.TrimSpace(out)
		if !commitName.MatchString(w.commitment) {
			fail("$C is %q, not the name of a commitment: the sed of the README did not find it in Commit's output", w.commitment)
		}
		return
	}
	m := rpcMethod.FindStringSubmatch(c.text)
	if m == nil {
		fail("a command this test does not know; update the test with the README")
		return
	}
	method := m[2]
	w.seen[method] = true
	var payload map[string]any
	if p := payloadArg.FindStringSubmatch(c.text); p != nil {
		if err := json.Unmarshal([]byte(p[1]), &payload); err != nil {
			fail("the -d payload is not JSON: %v", err)
			return
		}
	}
	captured := strings.HasPrefix(c.text, "C=$(")
	var resp map[string]any
	if !captured {
		resp = decode(t, where, out)
	}

	switch method {
	case "CreateEnvelope":
		name := "envelopes/" + str(payload, "envelope_id")
		alloc := num(payload, "allocation")
		parent := str(payload, "parent")
		w.allocation[name], w.available[name] = alloc, alloc
		if str(resp, "envelope.name") != name || i64(resp, "envelope.allocation") != alloc ||
			i64(resp, "envelope.available") != alloc || str(resp, "envelope.parent") != parent ||
			str(resp, "envelope.displayName") != str(payload, "display_name") || str(resp, "envelope.currencyCode") != "EUR" {
			fail("the envelope created is not %s with %d EUR cents under %q", name, alloc, parent)
		}
		if parent != "" {
			// "Each axis's allocation is taken from the fund."
			w.children[parent] = append(w.children[parent], name)
			w.available[parent] -= alloc
			if str(resp, "parent.name") != parent || i64(resp, "parent.available") != w.available[parent] {
				fail("the parent %s should have %d available after giving %d", parent, w.available[parent], alloc)
			}
		}
	case "ListEnvelopes":
		parent := str(payload, "parent")
		want := append([]string(nil), w.children[parent]...)
		sort.Strings(want)
		var got []string
		for _, e := range list(resp, "envelopes") {
			got = append(got, str(e, "name"))
			if i64(e, "allocation") != w.allocation[str(e, "name")] {
				fail("%s has allocation %d, created with %d", str(e, "name"), i64(e, "allocation"), w.allocation[str(e, "name")])
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			fail("the children of %s are %v, want %v", parent, got, want)
		}
	case "Commit":
		env, amount := str(payload, "envelope"), num(payload, "amount")
		w.available[env] -= amount
		w.commits[env]++
		if captured {
			return // its output went into $C, checked by the echo that follows
		}
		if str(resp, "commitment.envelope") != env || str(resp, "commitment.beneficiary") != str(payload, "beneficiary") ||
			str(resp, "commitment.project") != str(payload, "project") || i64(resp, "commitment.amount") != amount ||
			i64(resp, "commitment.remaining") != amount || !commitName.MatchString(str(resp, "commitment.name")) {
			fail("the commitment is not the award of %d on %s requested", amount, env)
		}
		if str(resp, "envelope.name") != env || i64(resp, "envelope.available") != w.available[env] {
			fail("%s should have %d available after the award", env, w.available[env])
		}
	case "Release":
		// "release 50,000 € of the first award"
		env := str(resp, "commitment.envelope")
		w.available[env] += releasedAmount
		if str(resp, "commitment.name") != w.commitment || i64(resp, "commitment.released") != releasedAmount ||
			i64(resp, "commitment.remaining") != i64(resp, "commitment.amount")-releasedAmount {
			fail("the release is not %d of %s", releasedAmount, w.commitment)
		}
		if i64(resp, "envelope.available") != w.available[env] {
			fail("%s should have %d available after the release", env, w.available[env])
		}
	case "GetEnvelope":
		name := str(payload, "name")
		e := obj(resp, "envelope")
		if str(e, "name") != name || i64(e, "available") != w.available[name] ||
			i64(e, "allocation") != i64(e, "committed")+i64(e, "allocatedToChildren")+i64(e, "available") ||
			i64(e, "commitmentCount") != int64(w.commits[name]) {
			fail("%s should have %d available after %d awards, and allocation = committed + allocated_to_children + available",
				name, w.available[name], w.commits[name])
		}
		if name == axis1 {
			// The figure of the error shown above; and "grpcurl prints 64-bit integers as strings".
			if w.available[name] != axis1Available || !strings.Contains(out, fmt.Sprintf(`"available": "%d"`, axis1Available)) ||
				!strings.Contains(out, `"allocation": "3000000000"`) || i64(e, "released") != releasedAmount {
				fail(`axis 1 should show "allocation": "3000000000", "available": "%d" and %d released`, axis1Available, releasedAmount)
			}
		}
	case "ListCommitments":
		env := str(payload, "envelope")
		cs := list(resp, "commitments")
		if len(cs) != w.commits[env] {
			fail("%d commitments on %s, want %d (the refused award must post nothing)", len(cs), env, w.commits[env])
		}
		for _, c := range cs {
			if str(c, "project") == "too-big" {
				fail("the refused award was recorded")
			}
			if str(c, "name") == w.commitment && i64(c, "released") != releasedAmount {
				fail("%s should show %d released", w.commitment, releasedAmount)
			}
		}
	case "ListJournalEntries":
		entries := list(resp, "journalEntries")
		ids := map[string]bool{}
		for _, e := range entries {
			ids[str(e, "requestId")] = true
			// "each entry's postings sum to zero"
			var sum int64
			for _, p := range list(e, "postings") {
				sum += i64(p, "amount")
			}
			if sum != 0 || len(list(e, "postings")) < 2 {
				fail("journal entry %s: its postings sum to %d", str(e, "name"), sum)
			}
		}
		for _, id := range []string{"create-axis-1", "award-0001", "award-0002", "release-0001"} {
			if !ids[id] {
				fail("no journal entry of request %s", id)
			}
		}
		if ids["award-0003"] {
			fail("the refused award-0003 was posted")
		}
	case "MoveAllocation":
		src, dst, amount := str(payload, "source"), str(payload, "destination"), num(payload, "amount")
		w.allocation[src] -= amount
		w.allocation[dst] += amount
		w.available[src] -= amount
		w.available[dst] += amount
		if str(resp, "source.name") != src || i64(resp, "source.allocation") != w.allocation[src] ||
			i64(resp, "source.available") != w.available[src] || str(resp, "destination.name") != dst ||
			i64(resp, "destination.allocation") != w.allocation[dst] || i64(resp, "destination.available") != w.available[dst] {
			fail("%d should have moved from %s to %s", amount, src, dst)
		}
	case "GetFundingReport":
		// "The funding report as of an effective date counts what took effect by then": on 30
		// June 2021, the awards of March and May, not the release of November.
		asOf := str(payload, "as_of_time")
		if str(resp, "asOfTime") != asOf {
			fail("the report is as of %s, asked %s", str(resp, "asOfTime"), asOf)
		}
		var fund map[string]any
		for _, e := range list(resp, "envelopes") {
			if str(e, "envelope") == "envelopes/fund" {
				fund = e
			}
		}
		if fund == nil || i64(fund, "total.awarded") != 150_000_000 || i64(fund, "total.committed") != 150_000_000 ||
			i64(fund, "total.released") != 0 || i64(fund, "total.awardCount") != 2 {
			fail("as of %s the fund should show the two awards of 2021 (150000000 awarded and committed) and no release", asOf)
		}
	case "CreatePayment":
		// "Paid money leaves the ledger for good ... but stays committed".
		env := str(resp, "commitment.envelope")
		amount := i64(resp, "payment.amount")
		w.paid += amount
		w.payments++
		if !strings.HasPrefix(str(resp, "payment.name"), w.commitment+"/payments/") || amount <= 0 ||
			i64(resp, "commitment.paid") != w.paid ||
			i64(resp, "commitment.remainingToPay") != i64(resp, "commitment.remaining")-w.paid {
			fail("the payment is not one of %s, paid %d in all", w.commitment, w.paid)
		}
		if i64(resp, "envelope.available") != w.available[env] || i64(resp, "envelope.paid") != w.paid ||
			i64(resp, "envelope.remainingToPay") != i64(resp, "envelope.committed")-w.paid {
			fail("%s should keep %d available and show %d paid", env, w.available[env], w.paid)
		}
	case "ListPayments":
		var sum int64
		ps := list(resp, "payments")
		for _, p := range ps {
			sum += i64(p, "amount")
		}
		if int64(len(ps)) != w.payments || sum != w.paid {
			fail("%d payments of %d in all, want %d of %d", len(ps), sum, w.payments, w.paid)
		}
	case "CloseCommitment":
		// "the 25,000 € left unpaid return to axis 1 in one journal entry"
		env := str(resp, "commitment.envelope")
		returned := i64(resp, "returned")
		w.available[env] += returned
		if returned != i64(resp, "commitment.amount")-releasedAmount-w.paid || str(resp, "commitment.state") != "COMMITMENT_STATE_CLOSED" ||
			i64(resp, "commitment.remainingToPay") != 0 || i64(resp, "commitment.paid") != w.paid {
			fail("the closing should return what remained to pay of %s and close it", w.commitment)
		}
		if i64(resp, "envelope.available") != w.available[env] {
			fail("%s should have %d available after the closing", env, w.available[env])
		}
	default:
		fail("a call this test does not know; update the test with the README")
	}
	// What took effect when the README says: the effective_time asked is the one recorded.
	if eff := str(payload, "effective_time"); eff != "" && !captured {
		got := str(resp, "envelope.effectiveTime")
		if method == "Commit" {
			got = str(resp, "commitment.effectiveTime")
		}
		if method == "Release" {
			got = str(resp, "effectiveTime")
		}
		if got != eff {
			fail("%s took effect at %q, the README asked %q", method, got, eff)
		}
	}
}

// decode parses grpcurl's JSON output of one response.
func decode(t *testing.T, where, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: the output is not one JSON response: %v\n%s", where, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: the output has more than one JSON response:\n%s", where, out)
	}
	return m
}

// get follows a dotted path of JSON object keys.
func get(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func obj(m map[string]any, path string) map[string]any {
	o, _ := get(m, path).(map[string]any)
	return o
}

func list(m map[string]any, path string) []map[string]any {
	var l []map[string]any
	vs, _ := get(m, path).([]any)
	for _, v := range vs {
		o, _ := v.(map[string]any)
		l = append(l, o)
	}
	return l
}

func str(m map[string]any, path string) string {
	s, _ := get(m, path).(string)
	return s
}

// i64 reads a 64-bit integer as grpcurl prints it, a string; absent (zero) is 0, unreadable -1.
func i64(m map[string]any, path string) int64 {
	switch v := get(m, path).(type) {
	case nil:
		return 0
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1
		}
		return n
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// num reads a number of a request payload (json.Unmarshal: float64, exact below 2^53).
func num(m map[string]any, path string) int64 {
	f, ok := get(m, path).(float64)
	if !ok {
		return -1
	}
	return int64(f)
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
