// Command ledgerbench measures the ledger over gRPC: awards per second and their latency, on one
// hot envelope or spread over several, with group commit on or off, then checks the ledger's
// invariants.
//
//	go run ./cmd/ledgerbench --clients 64 --duration 10s --batching both
//	go run ./cmd/ledgerbench --database 'postgres://postgres@127.0.0.1:5432/bench?sslmode=disable' --envelopes 30
//	go run ./cmd/ledgerbench --bulk 1000 --clients 4
//	go run ./cmd/ledgerbench --target 127.0.0.1:50051 --database ledger.db
//	go run ./cmd/ledgerbench holds-expiry --holds 100000     # 100,000 holds expiring together (holds.go)
//	go run ./cmd/ledgerbench --server process --hold-ratio 0.3 --payment-ratio 0.5 --database postgres://…
//
// With --server process the ledgerd runs in a child process (`ledgerbench serve`, serve.go) and
// each run reports CPU time per award for ledgerd, PostgreSQL's backends and the load generator
// apart, from the processes' own counters, with an empty RPC's beside it; on PostgreSQL, the
// bytes per award of every table after VACUUM FULL (cost.go).
//
// Without --target it runs a ledgerd in-process, on --database (default: a new SQLite file in a
// temporary directory), served on a loopback TCP port: the calls go through the whole gRPC stack.
// With --json the last line printed is a JSON object of the figures; the exit status is non-zero
// when the invariants do not hold after the run. `ledgerbench table < results.jsonl` turns such
// lines into a Markdown table (cmd/ledgerbench/matrix.sh runs the whole matrix).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/gcpercent"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

func main() {
	ctx, done := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer done()
	if len(os.Args) > 1 && os.Args[1] == "table" {
		if err := printTable(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "ledgerbench table:", err)
			os.Exit(2)
		}
		return
	}
	run := realMain
	args := os.Args[1:]
	switch {
	case len(args) > 0 && args[0] == "holds-expiry":
		run, args = holdsExpiry, args[1:]
	case len(args) > 0 && args[0] == "serve":
		run, args = serveChild, args[1:]
	}
	ok, err := run(ctx, args, os.Stdout)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		}
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type config struct {
	target       string
	targetPID    int
	database     string
	clients      int
	conns        int
	duration     time.Duration
	minCalls     int
	envelopes    int
	batching     string
	batchQueues  int
	txTimeout    time.Duration
	releaseRatio float64
	holdRatio    float64
	paymentRatio float64
	projects     string // --projects: shared or own
	bulk         int
	preload      int
	json         bool
	cpuProfile   string
	log          string // --log: the transparency log, on or off
	server       string // --server: inprocess or process
	ledgerdProf  string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("ledgerbench", flag.ContinueOnError)
	fs.StringVar(&c.target, "target", "", "address of a running ledgerd; empty runs one in-process")
	fs.IntVar(&c.targetPID, "target-pid", 0, "process id of the --target ledgerd, on this machine, to measure its CPU time")
	fs.StringVar(&c.database, "database", "", "database of the in-process ledgerd (default: a new SQLite file), or of --target, to check the invariants after the run")
	fs.IntVar(&c.clients, "clients", 64, "concurrent callers")
	fs.IntVar(&c.conns, "conns", 4, "gRPC connections the callers share")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to drive each phase")
	fs.IntVar(&c.minCalls, "min-calls", 0, "each client makes at least this many calls, however long they take (tests: a run whose work does not depend on the machine's speed)")
	fs.IntVar(&c.envelopes, "envelopes", 1, "envelopes the awards are spread over (1: one hot envelope)")
	fs.StringVar(&c.batching, "batching", "on", "group commit of the in-process ledgerd: on, off, or both (off then on, in the same run)")
	fs.IntVar(&c.batchQueues, "batch-queues", 0, "group-commit queues of the in-process ledgerd (0: the ledger's default)")
	fs.DurationVar(&c.txTimeout, "tx-timeout", 0, "deadline of every transaction of the ledgerd it starts (0: the ledger's default, 5s); a --preload of 1,000-award calls on a loaded machine may need more")
	fs.Float64Var(&c.releaseRatio, "release-ratio", 0, "after an award, the probability of releasing part of it (a Commit/Release mix)")
	fs.Float64Var(&c.holdRatio, "hold-ratio", 0, "the probability that an award is made as a hold then its confirmation (CreateHold + ConfirmHold) instead of a Commit")
	fs.Float64Var(&c.paymentRatio, "payment-ratio", 0, "after an award, the probability of paying part of it (CreatePayment)")
	fs.StringVar(&c.server, "server", "inprocess", "where the ledgerd runs without --target: inprocess (this process) or process (a child process, whose CPU time is then measured apart)")
	fs.StringVar(&c.ledgerdProf, "ledgerd-cpuprofile", "", "with --server process: write a CPU profile of the ledgerd alone, while the awards are made, to this file (of the last phase)")
	fs.StringVar(&c.projects, "projects", "shared", "projects the awards name: shared (a client's i-th call names project p<i>, as every other client's does: a project total per call number) or own (every award its own project, as in a call for projects: a project total per award)")
	fs.IntVar(&c.bulk, "bulk", 0, "awards per BatchCommit call; 0 sends single Commit calls")
	fs.IntVar(&c.preload, "preload", 0, "awards to store before the run (on an envelope of their own), to measure a non-empty ledger")
	fs.BoolVar(&c.json, "json", false, "print the figures as a JSON object on the last line")
	fs.StringVar(&c.log, "log", "off", "transparency log of the in-process ledgerd (issue 14): on (a fresh signing key, checkpoints every 1000 entries or 10s) or off")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (client and in-process server) to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.clients < 1 || c.conns < 1 || c.envelopes < 1 || c.duration <= 0:
		return c, errors.New("--clients, --conns, --envelopes and --duration must be positive")
	case c.batching != "on" && c.batching != "off" && c.batching != "both":
		return c, fmt.Errorf("--batching must be on, off or both, not %q", c.batching)
	case c.target != "" && c.batching != "on":
		return c, errors.New("--batching is set on the ledgerd itself when --target is given")
	case c.target != "" && c.database == "":
		return c, errors.New("--target needs --database to check the invariants after the run")
	case c.bulk < 0 || c.bulk > ledger.MaxBulkItems:
		return c, fmt.Errorf("--bulk must be 0 to %d", ledger.MaxBulkItems)
	case c.log != "on" && c.log != "off":
		return c, fmt.Errorf("--log must be on or off, not %q", c.log)
	case c.releaseRatio < 0 || c.releaseRatio > 1 || c.holdRatio < 0 || c.holdRatio > 1 || c.paymentRatio < 0 || c.paymentRatio > 1:
		return c, errors.New("--release-ratio, --hold-ratio and --payment-ratio must be between 0 and 1")
	case c.bulk > 0 && (c.holdRatio > 0 || c.paymentRatio > 0 || c.releaseRatio > 0):
		return c, errors.New("--bulk sends BatchCommit calls only: no --release-ratio, --hold-ratio or --payment-ratio")
	case c.projects != "shared" && c.projects != "own":
		return c, fmt.Errorf("--projects must be shared or own, not %q", c.projects)
	case c.server != "inprocess" && c.server != "process":
		return c, fmt.Errorf("--server must be inprocess or process, not %q", c.server)
	case c.ledgerdProf != "" && c.server != "process":
		return c, errors.New("--ledgerd-cpuprofile needs --server process (--cpuprofile profiles an in-process ledgerd with the load generator)")
	}
	// Told before the run; the files themselves are made new (createNew), never over another.
	for _, p := range []struct{ flag, path string }{{"--cpuprofile", c.cpuProfile}, {"--ledgerd-cpuprofile", c.ledgerdProf},
		{"--ledgerd-cpuprofile", c.ledgerdProf + ".allocs"}} {
		if err := refuseExisting(p.flag, p.path); err != nil {
			return c, err
		}
	}
	return c, nil
}

// refuseExisting refuses a profile path (of flag) that names an existing file: a profile is
// written to a new file only, so a mistyped path never destroys one (a ledger, a key).
func refuseExisting(flag, path string) error {
	if path == "" || path == ".allocs" {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %s already exists; profiles are written to new files only", flag, path)
	}
	return nil
}

// createNew makes the new file path for a profile (O_EXCL): one made since refuseExisting looked
// is refused too, not replaced.
func createNew(flag, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return f, nil
}

// project names the project of client c's i-th call (of its k-th item, in a BatchCommit call).
func (c config) project(client, i, k int) string {
	if c.projects == "own" {
		return fmt.Sprintf("p%d-%d-%d", client, i, k)
	}
	if c.bulk > 0 {
		return fmt.Sprintf("p%d-%d", i, k)
	}
	return fmt.Sprintf("p%d", i)
}

// result holds the figures of one phase.
type result struct {
	Engine          string  `json:"engine"`
	Batching        string  `json:"batching"`
	Log             string  `json:"log,omitempty"`
	Clients         int     `json:"clients"`
	Envelopes       int     `json:"envelopes"`
	Bulk            int     `json:"bulk,omitempty"`
	Projects        string  `json:"projects,omitempty"` // "own" when every award has its own project
	Preloaded       int     `json:"preloaded,omitempty"`
	DurationSec     float64 `json:"duration_sec"`
	Commits         int64   `json:"commits"`
	CommitsPerSec   float64 `json:"commits_per_sec"`
	Releases        int64   `json:"releases"`
	Holds           int64   `json:"holds,omitempty"` // awards made as CreateHold + ConfirmHold (counted in commits)
	Payments        int64   `json:"payments,omitempty"`
	Refused         int64   `json:"refused"`
	ClientRetries   int64   `json:"client_retries"`
	Failed          int64   `json:"failed"`
	P50ms           float64 `json:"p50_ms"`
	P95ms           float64 `json:"p95_ms"`
	P99ms           float64 `json:"p99_ms"`
	Batches         int64   `json:"batches,omitempty"`
	TxRetries       int64   `json:"tx_retries"`
	RetriesPerBatch float64 `json:"retries_per_batch"`
	// The mean time of a batch in each of its phases (ledger.BatchPhases), in microseconds.
	PhaseLookupUs  float64 `json:"batch_lookup_us,omitempty"`
	PhaseLoadUs    float64 `json:"batch_load_us,omitempty"`
	PhaseDecideUs  float64 `json:"batch_decide_us,omitempty"`
	PhaseWriteUs   float64 `json:"batch_write_us,omitempty"`
	EmptyRPCPerSec float64 `json:"empty_rpc_per_sec"`
	InvariantsOK   bool    `json:"invariants_ok"`

	BatchingOffCommitsPerSec float64 `json:"batching_off_commits_per_sec,omitempty"`
	BatchingOffP99ms         float64 `json:"batching_off_p99_ms,omitempty"`
	Speedup                  float64 `json:"speedup,omitempty"`
	CommitsPerEmptyRPC       float64 `json:"commits_per_empty_rpc"`

	// CPU time in microseconds per award (every call of the mix included), from the processes'
	// own counters (cost.go), and per empty RPC in the health-check phase. Server is "inprocess"
	// (the load generator's figure includes ledgerd's) or "process" (ledgerd's is apart).
	Server               string  `json:"server"`
	CPUBenchUs           float64 `json:"cpu_bench_us_per_award"`
	CPULedgerdUs         float64 `json:"cpu_ledgerd_us_per_award,omitempty"`
	CPUPostgresUs        float64 `json:"cpu_postgres_us_per_award,omitempty"`
	EmptyRPCCPUBenchUs   float64 `json:"empty_rpc_cpu_bench_us"`
	EmptyRPCCPULedgerdUs float64 `json:"empty_rpc_cpu_ledgerd_us,omitempty"`

	// PostgreSQL's storage after the run (every phase's awards), after VACUUM FULL.
	Storage       []tableSize `json:"storage,omitempty"`
	StoredAwards  int64       `json:"stored_awards,omitempty"`
	BytesPerAward float64     `json:"bytes_per_award,omitempty"`
}

func realMain(ctx context.Context, args []string, out io.Writer) (bool, error) {
	cfg, err := parseFlags(args)
	if err != nil {
		return false, err
	}
	if cfg.target == "" && cfg.database == "" {
		dir, err := os.MkdirTemp("", "ledgerbench-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		cfg.database = filepath.Join(dir, "bench.db")
	}
	if cfg.cpuProfile != "" {
		f, err := createNew("--cpuprofile", cfg.cpuProfile)
		if err != nil {
			return false, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return false, err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.target == "" && cfg.server == "inprocess" {
		gcpercent.Apply() // as ledgerd does, for the ledgerd in this process
	}
	phases := []string{cfg.batching}
	if cfg.batching == "both" {
		phases = []string{"off", "on"}
	}
	var results []*result
	for i, batching := range phases {
		r, err := runPhase(ctx, cfg, batching, i == 0)
		if err != nil {
			return false, err
		}
		results = append(results, r)
		printHuman(out, r)
	}
	final := results[len(results)-1]
	if len(results) == 2 {
		off := results[0]
		final.BatchingOffCommitsPerSec, final.BatchingOffP99ms = off.CommitsPerSec, off.P99ms
		if off.CommitsPerSec > 0 {
			final.Speedup = final.CommitsPerSec / off.CommitsPerSec
		}
		final.InvariantsOK = final.InvariantsOK && off.InvariantsOK
		fmt.Fprintf(out, "group commit: %.1f× the awards/s of one transaction per award\n", final.Speedup)
	}
	if isPostgres(cfg.database) {
		sizes, awards, err := measureStorage(ctx, cfg.database)
		if err != nil {
			return false, fmt.Errorf("measuring the storage: %w", err)
		}
		final.Storage, final.StoredAwards = sizes, awards
		var total int64
		for _, s := range sizes {
			total += s.Bytes + s.IndexBytes
		}
		if awards > 0 {
			final.BytesPerAward = float64(total) / float64(awards)
		}
		printStorage(out, final)
	}
	if cfg.json {
		line, err := json.Marshal(final)
		if err != nil {
			return false, err
		}
		fmt.Fprintln(out, string(line))
	}
	return final.InvariantsOK, nil
}

// runPhase starts (or reaches) a ledgerd, prepares fresh envelopes, drives it, and checks the
// invariants.
func runPhase(ctx context.Context, cfg config, batching string, first bool) (*result, error) {
	r := &result{Batching: batching, Clients: cfg.clients, Envelopes: cfg.envelopes, Bulk: cfg.bulk, Log: cfg.log}
	if cfg.projects == "own" {
		r.Projects = "own"
	}
	target := cfg.target
	var meter cpuMeter
	var d *runningLedgerd
	if target == "" {
		o := ledgerdOptions{database: cfg.database, batching: batching, batchQueues: cfg.batchQueues, txTimeout: cfg.txTimeout, log: cfg.log}
		var err error
		if cfg.server == "process" {
			o.cpuProfile = cfg.ledgerdProf
			d, err = startChild(ctx, o)
		} else {
			d, err = startInProcess(ctx, o)
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := d.stop(); err != nil {
				fmt.Fprintln(os.Stderr, "ledgerbench: stopping ledgerd:", err)
			}
		}()
		target, r.Engine, meter.ledgerdPID = d.addr, d.engine, d.pid
	} else {
		r.Engine = "remote"
		meter.ledgerdPID = cfg.targetPID
	}
	r.Server = cfg.server
	if cfg.target != "" {
		r.Server = "target"
	}
	if isPostgres(cfg.database) {
		pg, err := openPGBackends(ctx, cfg.database)
		if err != nil {
			return nil, err
		}
		defer pg.Close()
		meter.pg = pg
	}

	conns := make([]*grpc.ClientConn, cfg.conns)
	for i := range conns {
		c, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = c
	}
	run := fmt.Sprintf("b%x", time.Now().UnixNano())
	envelopes, err := prepare(ctx, conns[0], cfg, run)
	if err != nil {
		return nil, err
	}
	if first && cfg.preload > 0 {
		if err := preload(ctx, conns[0], cfg.preload, run); err != nil {
			return nil, err
		}
		r.Preloaded = cfg.preload
	}
	var before ledger.Stats
	if d != nil {
		if before, err = d.stats(); err != nil {
			return nil, err
		}
	}

	profiling := d != nil && d.command != nil && cfg.ledgerdProf != ""
	if profiling {
		if err := d.command("profile-start"); err != nil {
			return nil, err
		}
	}
	cpu0 := meter.sample(ctx)
	drive(ctx, cfg, conns, envelopes, run, r)
	cpu1 := meter.sample(ctx)
	if profiling {
		if err := d.command("profile-stop"); err != nil {
			return nil, err
		}
	}
	c := meter.cost(cpu0, cpu1, r.Commits)
	r.CPUBenchUs, r.CPULedgerdUs, r.CPUPostgresUs = c.Self, c.Ledgerd, c.Postgres

	if d != nil {
		after, err := d.stats()
		if err != nil {
			return nil, err
		}
		r.Batches = after.Batches - before.Batches
		r.TxRetries = after.Retries - before.Retries
		if r.Batches > 0 {
			r.RetriesPerBatch = float64(r.TxRetries) / float64(r.Batches)
			perBatch := func(a, b time.Duration) float64 { return float64((a - b).Microseconds()) / float64(r.Batches) }
			r.PhaseLookupUs = perBatch(after.Phases.Lookup, before.Phases.Lookup)
			r.PhaseLoadUs = perBatch(after.Phases.Load, before.Phases.Load)
			r.PhaseDecideUs = perBatch(after.Phases.Decide, before.Phases.Decide)
			r.PhaseWriteUs = perBatch(after.Phases.Write, before.Phases.Write)
		}
	}
	var calls int64
	r.EmptyRPCPerSec, calls = emptyRPCRate(ctx, cfg, conns)
	if r.EmptyRPCPerSec > 0 {
		r.CommitsPerEmptyRPC = r.CommitsPerSec / r.EmptyRPCPerSec
	}
	c = meter.cost(cpu1, meter.sample(ctx), calls)
	r.EmptyRPCCPUBenchUs, r.EmptyRPCCPULedgerdUs = c.Self, c.Ledgerd

	var check *ledger.Ledger
	if d != nil {
		check = d.ledger
	}
	if check == nil {
		// The check reads the whole ledger in one transaction: not the measured path, so no
		// production deadline (a million awards take minutes to verify).
		check, err = ledger.Open(ctx, cfg.database, ledger.Config{TxTimeout: time.Hour})
		if err != nil {
			return nil, err
		}
		defer check.Close()
	}
	rep, err := check.Verify(ctx)
	if err != nil {
		return nil, err
	}
	r.InvariantsOK = rep.OK()
	for _, d := range rep.Discrepancies {
		fmt.Fprintln(os.Stderr, "invariant broken:", d)
	}
	return r, nil
}

// prepare creates the run's envelopes, large enough that awards are not refused.
func prepare(ctx context.Context, conn *grpc.ClientConn, cfg config, run string) ([]string, error) {
	envs := pb.NewEnvelopeServiceClient(conn)
	names := make([]string, cfg.envelopes)
	for i := range names {
		id := fmt.Sprintf("%s-%d", run, i)
		if _, err := envs.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: id, DisplayName: "ledgerbench",
			Allocation: 1 << 60, RequestId: "create-" + id}); err != nil {
			return nil, fmt.Errorf("creating envelope %s: %w", id, err)
		}
		names[i] = "envelopes/" + id
	}
	return names, nil
}

// preload stores n awards on an envelope of their own, 1,000 per call.
func preload(ctx context.Context, conn *grpc.ClientConn, n int, run string) error {
	id := run + "-preload"
	if _, err := pb.NewEnvelopeServiceClient(conn).CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: id,
		Allocation: 1 << 60, RequestId: "create-" + id}); err != nil {
		return err
	}
	cs := pb.NewCommitmentServiceClient(conn)
	for done := 0; done < n; {
		k := min(1000, n-done)
		items := make([]*pb.BatchCommitItem, k)
		for i := range items {
			items[i] = &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("preload-%d", (done+i)%5000), Project: fmt.Sprintf("p%d", done+i), Amount: 100}
		}
		if _, err := cs.BatchCommit(ctx, &pb.BatchCommitRequest{Envelope: "envelopes/" + id, Items: items,
			RequestId: fmt.Sprintf("%s-%d", id, done)}); err != nil {
			return fmt.Errorf("preloading: %w", err)
		}
		done += k
	}
	return nil
}

// drive runs the callers for cfg.duration and fills r.
// With --min-calls, each client makes at least that many calls, none cut by the end of the phase.
func drive(parent context.Context, cfg config, conns []*grpc.ClientConn, envelopes []string, run string, r *result) {
	phase, cancel := context.WithTimeout(parent, cfg.duration)
	defer cancel()
	ctx := phase // the calls' context
	if cfg.minCalls > 0 {
		ctx = parent
	}
	var (
		commits, releases, refused, retries, failed atomic.Int64
		holds, payments                             atomic.Int64
		mu                                          sync.Mutex
		latencies                                   []time.Duration
		wg                                          sync.WaitGroup
	)
	started := time.Now()
	for c := range cfg.clients {
		wg.Go(func() {
			cs := pb.NewCommitmentServiceClient(conns[c%len(conns)])
			rng := rand.New(rand.NewPCG(uint64(c), uint64(started.UnixNano())))
			var mine []time.Duration
			defer func() {
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			}()
			for i := 0; ctx.Err() == nil && (i < cfg.minCalls || phase.Err() == nil); i++ {
				envelope := envelopes[(c+i)%len(envelopes)]
				rid := fmt.Sprintf("%s-c%d-%d", run, c, i)
				t0 := time.Now()
				var (
					name     string
					accepted int64
					err      error
				)
				if cfg.bulk > 0 {
					items := make([]*pb.BatchCommitItem, cfg.bulk)
					for k := range items {
						items[k] = &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("b%d", c), Project: cfg.project(c, i, k), Amount: 100}
					}
					var resp *pb.BatchCommitResponse
					err = sendWithRetry(ctx, &retries, func(ctx context.Context) error {
						var err error
						resp, err = cs.BatchCommit(ctx, &pb.BatchCommitRequest{Envelope: envelope, Items: items, RequestId: rid})
						return err
					})
					if err == nil {
						accepted = int64(resp.GetAcceptedCount())
						refused.Add(int64(resp.GetRefusedCount()))
					}
				} else if cfg.holdRatio > 0 && rng.Float64() < cfg.holdRatio {
					name, err = holdAndConfirm(ctx, cs, &retries, envelope, c, cfg.project(c, i, 0), rid)
					if err == nil {
						accepted = 1
						holds.Add(1)
					}
				} else {
					var resp *pb.CommitResponse
					err = sendWithRetry(ctx, &retries, func(ctx context.Context) error {
						var err error
						resp, err = cs.Commit(ctx, &pb.CommitRequest{Envelope: envelope, Beneficiary: fmt.Sprintf("b%d", c),
							Project: cfg.project(c, i, 0), Amount: 100, RequestId: rid})
						return err
					})
					if err == nil {
						accepted, name = 1, resp.GetCommitment().GetName()
					}
				}
				switch {
				case ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded:
					return // the phase ended during the call: not counted
				case status.Code(err) == codes.FailedPrecondition:
					refused.Add(1)
				case err != nil:
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "ledgerbench: first failed call:", err)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
				commits.Add(accepted)
				if name != "" && rng.Float64() < cfg.releaseRatio {
					err := sendWithRetry(ctx, &retries, func(ctx context.Context) error {
						_, err := cs.Release(ctx, &pb.ReleaseRequest{Commitment: name, Amount: 40, Reason: "ledgerbench", RequestId: rid + "-r"})
						return err
					})
					if err == nil {
						releases.Add(1)
					}
				}
				if name != "" && rng.Float64() < cfg.paymentRatio {
					err := sendWithRetry(ctx, &retries, func(ctx context.Context) error {
						_, err := cs.CreatePayment(ctx, &pb.CreatePaymentRequest{Parent: name, Amount: 30, RequestId: rid + "-p"})
						return err
					})
					if err == nil {
						payments.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	r.DurationSec = elapsed
	r.Commits, r.Releases, r.Refused, r.ClientRetries, r.Failed = commits.Load(), releases.Load(), refused.Load(), retries.Load(), failed.Load()
	r.Holds, r.Payments = holds.Load(), payments.Load()
	r.CommitsPerSec = float64(r.Commits) / elapsed
	slices.Sort(latencies)
	r.P50ms, r.P95ms, r.P99ms = percentile(latencies, 0.50), percentile(latencies, 0.95), percentile(latencies, 0.99)
}

// holdAndConfirm makes one award as a hold and its confirmation in full, and returns the
// commitment's name.
func holdAndConfirm(ctx context.Context, cs pb.CommitmentServiceClient, retries *atomic.Int64, envelope string, c int, project, rid string) (string, error) {
	var hold *pb.CreateHoldResponse
	err := sendWithRetry(ctx, retries, func(ctx context.Context) error {
		var err error
		hold, err = cs.CreateHold(ctx, &pb.CreateHoldRequest{Envelope: envelope, Beneficiary: fmt.Sprintf("b%d", c),
			Project: project, Amount: 100, RequestId: rid})
		return err
	})
	if err != nil {
		return "", err
	}
	var confirmed *pb.ConfirmHoldResponse
	err = sendWithRetry(ctx, retries, func(ctx context.Context) error {
		var err error
		confirmed, err = cs.ConfirmHold(ctx, &pb.ConfirmHoldRequest{Hold: hold.GetHold().GetName(), RequestId: rid + "-c"})
		return err
	})
	return confirmed.GetCommitment().GetName(), err
}

// sendWithRetry resends a call told to retry (ABORTED, UNAVAILABLE) with the same request id, as
// a well-behaved client does.
func sendWithRetry(ctx context.Context, retries *atomic.Int64, call func(context.Context) error) error {
	for {
		err := call(ctx)
		code := status.Code(err)
		if err == nil || (code != codes.Aborted && code != codes.Unavailable) || ctx.Err() != nil {
			return err
		}
		retries.Add(1)
	}
}

// emptyRPCRate measures the health check, an RPC that does no work, with the same callers and
// connections, for min(duration, 5s).
func emptyRPCRate(ctx context.Context, cfg config, conns []*grpc.ClientConn) (float64, int64) {
	ctx, cancel := context.WithTimeout(ctx, min(cfg.duration, 5*time.Second))
	defer cancel()
	var calls atomic.Int64
	var wg sync.WaitGroup
	started := time.Now()
	for c := range cfg.clients {
		wg.Go(func() {
			hc := healthpb.NewHealthClient(conns[c%len(conns)])
			for ctx.Err() == nil {
				if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
					calls.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(calls.Load()) / time.Since(started).Seconds(), calls.Load()
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*p), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

func printHuman(w io.Writer, r *result) {
	kind := "Commit"
	if r.Bulk > 0 {
		kind = fmt.Sprintf("BatchCommit ×%d", r.Bulk)
	}
	if r.Projects == "own" {
		kind += ", a project per award"
	}
	fmt.Fprintf(w, "ledgerbench: %s, %s, %d clients, %.1fs, %d envelope(s), batching %s%s\n", r.Engine, kind, r.Clients,
		r.DurationSec, r.Envelopes, r.Batching, map[bool]string{true: fmt.Sprintf(", %d awards preloaded", r.Preloaded)}[r.Preloaded > 0])
	fmt.Fprintf(w, "  awards/s          %.0f (%d awards, %d releases)\n", r.CommitsPerSec, r.Commits, r.Releases)
	fmt.Fprintf(w, "  latency per call  p50 %.2f ms, p95 %.2f ms, p99 %.2f ms\n", r.P50ms, r.P95ms, r.P99ms)
	fmt.Fprintf(w, "  refused           %d\n", r.Refused)
	fmt.Fprintf(w, "  retries           %d told to retry by the server; %d transaction retries in the ledger (%.3f per batch)\n",
		r.ClientRetries, r.TxRetries, r.RetriesPerBatch)
	if r.Batches > 0 {
		fmt.Fprintf(w, "  transactions      %d (%.1f operations each)\n", r.Batches, float64(r.Commits+r.Releases)/float64(r.Batches))
		fmt.Fprintf(w, "  batch phases      lookup %.0f µs, load %.0f, decide %.0f, write and COMMIT %.0f (mean per batch)\n",
			r.PhaseLookupUs, r.PhaseLoadUs, r.PhaseDecideUs, r.PhaseWriteUs)
	}
	if r.Failed > 0 {
		fmt.Fprintf(w, "  failed calls      %d\n", r.Failed)
	}
	fmt.Fprintf(w, "  empty RPC/s       %.0f (awards/s = %.0f%% of it)\n", r.EmptyRPCPerSec, 100*r.CommitsPerEmptyRPC)
	if r.Holds > 0 || r.Payments > 0 {
		fmt.Fprintf(w, "  mix               %d awards as hold + confirm, %d payments\n", r.Holds, r.Payments)
	}
	switch r.Server {
	case "inprocess":
		fmt.Fprintf(w, "  CPU per award     %.0f µs load generator + ledgerd (one process); empty RPC %.0f µs\n", r.CPUBenchUs, r.EmptyRPCCPUBenchUs)
	default:
		fmt.Fprintf(w, "  CPU per award     %.0f µs ledgerd, %.0f µs load generator; empty RPC %.0f µs ledgerd, %.0f µs load generator\n",
			r.CPULedgerdUs, r.CPUBenchUs, r.EmptyRPCCPULedgerdUs, r.EmptyRPCCPUBenchUs)
	}
	if r.CPUPostgresUs > 0 {
		fmt.Fprintf(w, "  CPU per award     %.0f µs PostgreSQL (its backends for this database)\n", r.CPUPostgresUs)
	}
	fmt.Fprintf(w, "  invariants        %s\n", map[bool]string{true: "ok", false: "BROKEN"}[r.InvariantsOK])
}

// printStorage prints the storage of the run, per table and per award.
func printStorage(w io.Writer, r *result) {
	var total int64
	for _, s := range r.Storage {
		total += s.Bytes + s.IndexBytes
	}
	fmt.Fprintf(w, "  storage           %.0f bytes per award after VACUUM FULL (%d bytes, %d commitments)\n", r.BytesPerAward, total, r.StoredAwards)
	for _, s := range r.Storage {
		if s.Bytes+s.IndexBytes < 8192*4 {
			continue
		}
		fmt.Fprintf(w, "    %-22s %8.0f + %5.0f bytes per award (table + indexes), %d rows\n", s.Table,
			float64(s.Bytes)/float64(max(1, r.StoredAwards)), float64(s.IndexBytes)/float64(max(1, r.StoredAwards)), s.Rows)
	}
}

// printTable reads JSON result lines (other lines are skipped) and writes two Markdown tables:
// throughput and latency, then CPU time and storage per award.
func printTable(in io.Reader, out io.Writer) error {
	var results []result
	dec := json.NewDecoder(in)
	for {
		var r result
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	ok := map[bool]string{true: "ok", false: "BROKEN"}
	fmt.Fprintln(out, "| engine | call | envelopes | clients | batching | awards/s | p50 ms | p99 ms | off: awards/s | off: p99 ms | on/off | tx retries per batch | empty RPC/s | awards / empty RPC | preloaded | invariants |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		off, offP99, ratio := "", "", ""
		if r.BatchingOffCommitsPerSec > 0 {
			off, offP99, ratio = fmt.Sprintf("%.0f", r.BatchingOffCommitsPerSec), fmt.Sprintf("%.1f", r.BatchingOffP99ms), fmt.Sprintf("%.1f×", r.Speedup)
		}
		batching := r.Batching
		if r.BatchingOffCommitsPerSec > 0 {
			batching = "off → on"
		}
		fmt.Fprintf(out, "| %s | %s | %d | %d | %s | %.0f | %.1f | %.1f | %s | %s | %s | %.3f | %.0f | %.0f%% | %d | %v |\n",
			r.Engine, callName(r), r.Envelopes, r.Clients, batching, r.CommitsPerSec, r.P50ms, r.P99ms, off, offP99, ratio,
			r.RetriesPerBatch, r.EmptyRPCPerSec, 100*r.CommitsPerEmptyRPC, r.Preloaded, ok[r.InvariantsOK])
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| engine | call | envelopes | clients | ledgerd | µs CPU per award: ledgerd | PostgreSQL | load generator | µs CPU per empty RPC: ledgerd | load generator | bytes per award (VACUUM FULL) | largest tables, bytes per award (table + indexes) |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		ledgerd, empty := fmt.Sprintf("%.0f", r.CPULedgerdUs), fmt.Sprintf("%.0f", r.EmptyRPCCPULedgerdUs)
		if r.Server == "inprocess" {
			ledgerd, empty = "(in the load generator's)", "(in the load generator's)"
		}
		pg, bytes, tables := "", "", ""
		if r.CPUPostgresUs > 0 {
			pg = fmt.Sprintf("%.0f", r.CPUPostgresUs)
		}
		if r.StoredAwards > 0 {
			bytes = fmt.Sprintf("%.0f", r.BytesPerAward)
			var parts []string
			for _, t := range r.Storage {
				if len(parts) == 5 {
					break
				}
				parts = append(parts, fmt.Sprintf("%s %.0f + %.0f", t.Table, float64(t.Bytes)/float64(r.StoredAwards), float64(t.IndexBytes)/float64(r.StoredAwards)))
			}
			tables = strings.Join(parts, "; ")
		}
		fmt.Fprintf(out, "| %s | %s | %d | %d | %s | %s | %s | %.0f | %s | %.0f | %s | %s |\n", r.Engine, callName(r), r.Envelopes, r.Clients,
			r.Server, ledgerd, pg, r.CPUBenchUs, empty, r.EmptyRPCCPUBenchUs, bytes, tables)
	}
	return nil
}

// callName names the calls of a run in the tables.
func callName(r result) string {
	call := "Commit"
	switch {
	case r.Bulk > 0:
		call = fmt.Sprintf("BatchCommit ×%d", r.Bulk)
	case r.Holds > 0 && r.Holds == r.Commits:
		call = "CreateHold + ConfirmHold"
	case r.Holds > 0:
		call = fmt.Sprintf("Commit or hold + confirm (%d holds)", r.Holds)
	}
	if r.Releases > 0 {
		call += fmt.Sprintf(" + Release (%d)", r.Releases)
	}
	if r.Payments > 0 {
		call += fmt.Sprintf(" + CreatePayment (%d)", r.Payments)
	}
	if r.Log == "on" {
		call += ", log on"
	}
	return call
}
