package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// holdsExpiry is the mode `ledgerbench holds-expiry`: it makes --holds holds that expire at the
// same instant, moves the ledger's clock past it, and measures how long the ledger's own sweeper
// takes to return them all, while --clients callers keep awarding on the same envelopes (their
// latency during the sweep shows whether expiry stalls awards). It runs the ledger in-process,
// without gRPC (the sweeper is inside the ledger), then checks the invariants. The holds are made
// by makeHolds, thousands per transaction through the ledger's own decision and storage code, to
// keep the setup short: CreateHold decides one hold per transaction.
//
//	go run ./cmd/ledgerbench holds-expiry --holds 100000
//	go run ./cmd/ledgerbench holds-expiry --holds 100000 --database 'postgres://postgres@127.0.0.1:5432/bench?sslmode=disable'
func holdsExpiry(ctx context.Context, args []string, out io.Writer) (bool, error) {
	fs := flag.NewFlagSet("ledgerbench holds-expiry", flag.ContinueOnError)
	database := fs.String("database", "", "database (default: a new SQLite file)")
	holds := fs.Int("holds", 100_000, "holds that expire together")
	envelopes := fs.Int("envelopes", 1, "envelopes the holds are spread over (1: one hot envelope)")
	clients := fs.Int("clients", 8, "concurrent callers awarding during the sweep")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the sweep to this file")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *holds < 1 || *envelopes < 1 || *clients < 0 {
		return false, errors.New("--holds and --envelopes must be positive, --clients not negative")
	}
	if *cpuProfile != "" {
		if err := refuseExisting("--cpuprofile", *cpuProfile); err != nil {
			return false, err
		}
	}
	if *database == "" {
		dir, err := os.MkdirTemp("", "ledgerbench-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		*database = filepath.Join(dir, "bench.db")
	}
	// The ledger's clock runs with the system's, plus an offset the benchmark moves forward to
	// make every hold expire at once.
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	l, err := ledger.Open(ctx, *database, ledger.Config{Clock: clock, TxTimeout: time.Minute})
	if err != nil {
		return false, err
	}
	defer l.Close()
	run := fmt.Sprintf("x%x", time.Now().UnixNano())
	var envs []string
	for i := range *envelopes {
		id := fmt.Sprintf("%s-%d", run, i)
		if _, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: "create-" + id, Caller: "bench", EnvelopeID: id,
			Allocation: 1 << 60}); err != nil {
			return false, err
		}
		envs = append(envs, id)
	}
	expire := clock().Add(time.Hour)
	fmt.Fprintf(out, "making %d holds on %d envelope(s), %s, all expiring at %s...\n", *holds, *envelopes, l.Engine(), expire.Format(time.RFC3339))
	started := time.Now()
	if err := makeHolds(ctx, *database, clock, envs, *holds, expire, run); err != nil {
		return false, err
	}
	var wg sync.WaitGroup
	fmt.Fprintf(out, "made in %v (%.0f holds/s)\n", time.Since(started).Round(time.Millisecond),
		float64(*holds)/time.Since(started).Seconds())

	// Awards during the sweep, and the latency of each.
	awardCtx, stopAwards := context.WithCancel(ctx)
	defer stopAwards()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		awarded   atomic.Int64
	)
	for c := range *clients {
		wg.Go(func() {
			for i := 0; awardCtx.Err() == nil; i++ {
				t0 := time.Now()
				_, err := l.Commit(awardCtx, ledger.Commit{RequestID: fmt.Sprintf("%s-c%d-%d", run, c, i), Caller: "bench",
					EnvelopeID: envs[(c+i)%len(envs)], Beneficiary: "b", Project: "p", Amount: 1})
				if err == nil {
					awarded.Add(1)
					mu.Lock()
					latencies = append(latencies, time.Since(t0))
					mu.Unlock()
				}
			}
		})
	}
	if *cpuProfile != "" {
		f, err := createNew("--cpuprofile", *cpuProfile)
		if err != nil {
			return false, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return false, err
		}
		defer pprof.StopCPUProfile()
	}
	// Every hold expires now; the sweeper is woken by its ticker (200 ms at most).
	t0 := time.Now()
	offset.Store(int64(time.Hour + time.Second))
	var lastHeld int64
	for {
		var held int64
		for _, id := range envs {
			env, err := l.GetEnvelope(ctx, id)
			if err != nil {
				stopAwards()
				return false, err
			}
			held += env.Held
		}
		lastHeld = held
		if held == 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	stopAwards()
	wg.Wait()
	if lastHeld != 0 {
		return false, ctx.Err()
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	fmt.Fprintf(out, "%d holds returned by the sweeper in %v (%.0f holds/s); %d awards meanwhile by %d callers, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		*holds, elapsed.Round(time.Millisecond), float64(*holds)/elapsed.Seconds(), awarded.Load(), *clients,
		pct(0.50), pct(0.99), pct(1))
	rep, err := l.Verify(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range rep.Discrepancies {
		fmt.Fprintln(os.Stderr, "invariant broken:", d)
	}
	fmt.Fprintf(out, "invariants: %v\n", rep.OK())
	return rep.OK(), nil
}

// makeHolds makes n holds of 100 on envs (in turn), expiring at expire, 2,000 per transaction:
// each decided by core.DecideCreateHold and written with its journal entry and request log row,
// exactly as CreateHold writes them, so that the verifier checks them like any other.
func makeHolds(ctx context.Context, database string, clock func() time.Time, envs []string, n int, expire time.Time, run string) error {
	db, err := store.Open(ctx, database, store.Config{TxTimeout: time.Minute})
	if err != nil {
		return err
	}
	defer db.Close()
	const perTx = 2000
	for start := 0; start < n; start += perTx {
		envID := envs[(start/perTx)%len(envs)]
		err := db.ReadWrite(ctx, func(q store.Querier) error {
			locked, err := store.LockEnvelopes(ctx, q, db.ForUpdate(), []string{envID})
			if err != nil {
				return err
			}
			env, ok := locked[envID]
			if !ok {
				return fmt.Errorf("envelope %s not found", envID)
			}
			at := clock().UTC().Truncate(time.Microsecond)
			if !env.UpdatedAt.Before(at) {
				at = env.UpdatedAt.Add(time.Microsecond)
			}
			st := core.Stamp{At: at, NewID: func() string { return uuid.Must(uuid.NewV7()).String() }}
			w := &core.HoldWrites{}
			var entries []core.Entry
			for i := start; i < min(start+perTx, n); i++ {
				cmd := core.CreateHold{RequestID: fmt.Sprintf("%s-h%d", run, i), Caller: "bench", EnvelopeID: envID,
					Beneficiary: "b", Project: "p", Amount: 100, ExpireTime: expire}
				res, eff, err := core.DecideCreateHold(st, cmd, &env, nil, 0)
				if err != nil {
					return err
				}
				env = res.Envelope
				outcome, err := core.Settle(res, nil)
				if err != nil {
					return err
				}
				w.New = append(w.New, eff.Holds.New...)
				w.Requests = append(w.Requests, core.RequestRow{Key: core.RequestKey(cmd.Caller, cmd.RequestID),
					Fingerprint: cmd.Fingerprint().Current, Outcome: outcome})
				entries = append(entries, eff.Entries...)
			}
			if err := store.WriteEffects(ctx, q, core.Effects{Updated: []core.Envelope{env}, Entries: entries, Holds: w}, at); err != nil {
				return err
			}
			for db.InlineSequence() {
				assigned, _, err := store.AssignSequences(ctx, q, "", store.MaxSequenceBatch)
				if err != nil || assigned < store.MaxSequenceBatch {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
