package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/budgetledger/budgetledger/internal/gcpercent"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/translog"
	"github.com/budgetledger/budgetledger/server"
)

// The ledgerd of a run: in this process (--server inprocess, the default), or in a child process
// (--server process, `ledgerbench serve`), whose CPU time is then read from its own counters,
// apart from the load generator's.

// ledgerdOptions configure the ledgerd of a phase.
type ledgerdOptions struct {
	database    string
	batching    string // on or off
	batchQueues int
	txTimeout   time.Duration // 0: the ledger's default
	log         string        // on or off
	cpuProfile  string        // child only: profile of the ledgerd alone
}

// runningLedgerd is a ledgerd serving on addr, in this process or in a child.
type runningLedgerd struct {
	addr, engine string
	pid          int                          // the child's, 0 in-process
	stats        func() (ledger.Stats, error) // its counters since it started
	stop         func() error
	command      func(string) error // a child's: profile-start, profile-stop
	ledger       *ledger.Ledger     // in-process only
}

// startInProcess opens the ledger and serves it on a loopback port, as ledgerd does.
func startInProcess(ctx context.Context, o ledgerdOptions) (*runningLedgerd, error) {
	lcfg := ledger.Config{DisableBatching: o.batching == "off", BatchQueues: o.batchQueues, TxTimeout: o.txTimeout}
	if o.log == "on" {
		skey, _, err := translog.GenerateKey("ledgerbench.invalid/log")
		if err != nil {
			return nil, err
		}
		signer, err := translog.NewSigner(skey)
		if err != nil {
			return nil, err
		}
		lcfg.Log = ledger.LogConfig{Signer: signer, CheckpointEvery: 1000, CheckpointInterval: 10 * time.Second}
	}
	l, err := ledger.Open(ctx, o.database, lcfg)
	if err != nil {
		return nil, err
	}
	// As ledgerd with --log-level warn: a log line per call is not what is measured here.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(l, server.Config{Logger: quiet})
	if err != nil {
		l.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	return &runningLedgerd{
		addr: lis.Addr().String(), engine: l.Engine(), ledger: l,
		stats: func() (ledger.Stats, error) { return l.Stats(), nil },
		stop: func() error {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv.Shutdown(stopCtx)
			l.Close()
			return nil
		},
	}, nil
}

// childHello is the first line a `ledgerbench serve` child prints.
type childHello struct {
	Addr   string `json:"addr"`
	Engine string `json:"engine"`
}

// serveChild is `ledgerbench serve`: it runs a ledgerd as startInProcess does, prints its address
// as a JSON line, then answers each line "stats" on its standard input with the ledger's counters
// as a JSON line, and stops at the end of its input.
func serveChild(ctx context.Context, args []string, out io.Writer) (bool, error) {
	var o ledgerdOptions
	fs := flag.NewFlagSet("ledgerbench serve", flag.ContinueOnError)
	fs.StringVar(&o.database, "database", "", "database")
	fs.StringVar(&o.batching, "batching", "on", "on or off")
	fs.IntVar(&o.batchQueues, "batch-queues", 0, "group-commit queues (0: the ledger's default)")
	fs.DurationVar(&o.txTimeout, "tx-timeout", 0, "deadline of every transaction (0: the ledger's default)")
	fs.StringVar(&o.log, "log", "off", "on or off")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this ledgerd to this file")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if o.database == "" {
		return false, errors.New("--database is required")
	}
	gcpercent.Apply() // as ledgerd does
	d, err := startInProcess(ctx, o)
	if err != nil {
		return false, err
	}
	defer d.stop()
	enc := json.NewEncoder(out)
	if err := enc.Encode(childHello{Addr: d.addr, Engine: d.engine}); err != nil {
		return false, err
	}
	in := bufio.NewScanner(os.Stdin)
	var profile *os.File
	// The first phase makes the profile and its .allocs new (the parent refused existing files);
	// a later phase replaces only what this run wrote (the files are of the last phase).
	madeProfile, madeAllocs := false, false
	defer func() {
		if profile != nil {
			pprof.StopCPUProfile()
			profile.Close()
		}
	}()
	for in.Scan() {
		switch in.Text() {
		case "stats":
			if err := enc.Encode(d.ledger.Stats()); err != nil {
				return false, err
			}
		case "profile-start": // the awards phase only: not the set-up, the empty RPCs or the check
			if o.cpuProfile == "" || profile != nil {
				continue
			}
			if madeProfile {
				profile, err = os.Create(o.cpuProfile)
			} else {
				profile, err = createNew("--ledgerd-cpuprofile", o.cpuProfile)
			}
			if err != nil {
				return false, err
			}
			madeProfile = true
			if err := pprof.StartCPUProfile(profile); err != nil {
				return false, err
			}
		case "profile-stop":
			if profile != nil {
				pprof.StopCPUProfile()
				if err := profile.Close(); err != nil {
					return false, err
				}
				profile = nil
				// Beside it, the allocations since the start (go tool pprof -sample_index=alloc_objects).
				if err := writeAllocs(o.cpuProfile+".allocs", madeAllocs); err != nil {
					return false, err
				}
				madeAllocs = true
			}
		}
	}
	return true, in.Err()
}

// writeAllocs writes the allocations profile to path: a new file, unless this run made it (again).
func writeAllocs(path string, again bool) error {
	create := func() (*os.File, error) { return createNew("--ledgerd-cpuprofile", path) }
	if again {
		create = func() (*os.File, error) { return os.Create(path) }
	}
	f, err := create()
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startChild runs `ledgerbench serve` in a child process (this executable) and waits for its
// address.
func startChild(ctx context.Context, o ledgerdOptions) (*runningLedgerd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--database", o.database, "--batching", o.batching, "--batch-queues", strconv.Itoa(o.batchQueues),
		"--tx-timeout", o.txTimeout.String(), "--log", o.log}
	if o.cpuProfile != "" {
		args = append(args, "--cpuprofile", o.cpuProfile)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := bufio.NewScanner(stdout)
	stop := func() error {
		stdin.Close()
		return cmd.Wait()
	}
	var hello childHello
	if !lines.Scan() {
		stop()
		return nil, fmt.Errorf("the ledgerd child stopped before serving: %v", lines.Err())
	}
	if err := json.Unmarshal(lines.Bytes(), &hello); err != nil {
		stop()
		return nil, fmt.Errorf("the ledgerd child's first line: %w", err)
	}
	return &runningLedgerd{
		addr: hello.Addr, engine: hello.Engine, pid: cmd.Process.Pid, stop: stop,
		command: func(c string) error {
			_, err := io.WriteString(stdin, c+"\n")
			return err
		},
		stats: func() (ledger.Stats, error) {
			var s ledger.Stats
			if _, err := io.WriteString(stdin, "stats\n"); err != nil {
				return s, err
			}
			if !lines.Scan() {
				return s, fmt.Errorf("the ledgerd child's stats: %v", lines.Err())
			}
			return s, json.Unmarshal(lines.Bytes(), &s)
		},
	}, nil
}

// childEnv marks the environment of a ledgerd child, so that a test binary re-executed as one
// runs serveChild (see main_test.go).
const childEnv = "LEDGERBENCH_CHILD"
