package model_test

// The model tests: the same random operations go to the reference model and to the real ledger
// (group commit on, SQLite always, PostgreSQL when LEDGER_TEST_POSTGRES_URL is set), and every
// answer and every balance must agree.
//
//	go test -race -run Model ./internal/model/                      # what CI runs
//	go test -race -run Model ./internal/model/ -model.seed=N        # replay a failure
//	go test -run Model ./internal/model/ -model.duration=10m -timeout 0  # run for as long as one wants
//	go test -run Model ./internal/model/ -model.ops=20000           # a longer single run

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/budgetledger/budgetledger/internal/model"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

var (
	flagSeed     = flag.Uint64("model.seed", 0, "seed of the model tests (0: a random one, printed)")
	flagOps      = flag.Int("model.ops", 0, "operations per engine and test (0: the default, a few thousand)")
	flagDuration = flag.Duration("model.duration", 0, "keep running new seeds until this much time has passed")
)

const (
	defaultSequentialOps = 2000
	checkEvery           = 100 // compare every balance after this many operations
)

// seeds returns the seed of each run: the flag's, or a random one; with -model.duration, more
// seeds until the duration has passed.
func seeds(t *testing.T) func(yield func(int, uint64) bool) {
	t.Helper()
	seed := *flagSeed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:]) >> 12 // short enough to type
	}
	start := time.Now()
	return func(yield func(int, uint64) bool) {
		for run := 0; ; run++ {
			if !yield(run, seed+uint64(run)) {
				return
			}
			if *flagDuration <= 0 || time.Since(start) >= *flagDuration || t.Failed() {
				return
			}
		}
	}
}

func opsPerRun(def int) int {
	if *flagOps > 0 {
		return *flagOps
	}
	return def
}

// openLedgerWith opens the real ledger with cfg's settings (DisableBatching, say; group commit
// on by default) and a transaction timeout long enough for a busy machine: the tests never depend
// on speed.
func openLedgerWith(t *testing.T, database string, cfg ledger.Config) *ledger.Ledger {
	t.Helper()
	cfg.TxTimeout, cfg.Log = 10*time.Minute, modelLogConfig()
	l, err := ledger.Open(t.Context(), database, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

// newSpan returns the span of a run starting now: decisions are made after From (with a margin
// for clocks that round) and before To, far in the future.
func newSpan() model.Span {
	return model.Span{From: time.Now().UTC().Add(-time.Minute), To: spanEnd}
}

// reproduce is the command that runs a failed run again.
func reproduce(t *testing.T, seed uint64, ops int) string {
	return fmt.Sprintf("reproduce: go test -race -run '^%s$' ./internal/model/ -model.seed=%d -model.ops=%d",
		strings.ReplaceAll(t.Name(), "/", "$/^"), seed, ops)
}

// doUntilDecided sends o until the ledger decides it: a transient failure records nothing, and
// the same request is sent again, as a client would.
func doUntilDecided(ctx context.Context, l *ledger.Ledger, o op, span model.Span) (answer, error) {
	for attempt := 1; ; attempt++ {
		a, err := do(ctx, l, o, span)
		if err != nil || a.Retryable == "" {
			return a, err
		}
		if attempt == maxAttempts {
			return a, fmt.Errorf("%s: still %s after %d attempts; the last: %w", o, a.Retryable, attempt, causes(a.rawErr))
		}
	}
}

// maxAttempts bounds how often one request is sent again after a transient failure: a ledger
// that never decides must fail the test, not hang it. The ledger retries conflicts itself, so a
// client rarely sees one at all.
const maxAttempts = 100

// modelView shows the generator the model's state.
type modelView struct{ m *model.Ledger }

func (v modelView) envelopes() []model.Envelope {
	var out []model.Envelope
	for _, id := range v.m.EnvelopeIDs() {
		e, _ := v.m.Envelope(id)
		out = append(out, e)
	}
	return out
}

func (v modelView) commitments() []model.Commitment {
	var out []model.Commitment
	for _, id := range v.m.CommitmentIDs() {
		c, _ := v.m.Commitment(id)
		out = append(out, c)
	}
	return out
}

// TestModelSequential sends random operations one at a time to the ledger and to the model and
// compares every answer, every replay with the first answer, every balance every checkEvery
// operations and at the end, and runs Verify (invariants 1–7 of DESIGN.md §2). It runs with
// group commit on (awards, releases, payments and closings in their envelope's batch) and off
// (one transaction each): both paths must agree with the model.
func TestModelSequential(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		for _, batching := range []bool{true, false} {
			t.Run(fmt.Sprintf("batching=%t", batching), func(t *testing.T) {
				cfg := ledger.Config{DisableBatching: !batching}
				l := openLedgerWith(t, database, cfg)
				ops := opsPerRun(defaultSequentialOps)
				start := time.Now()
				total := 0
				type recorded struct {
					first map[string]step
					span  model.Span
				}
				var runs []recorded
				for run, seed := range seeds(t) {
					t.Logf("run %d: seed %d, %d operations", run, seed, ops)
					kind := "s"
					if !batching {
						kind = "s1" // another namespace on the same database
					}
					first, span := runSequential(t, l, kind, seed, ops, false)
					runs = append(runs, recorded{first, span})
					total += ops
				}
				verify(t, l, "")
				// Invariant 5 across a restart: every recorded request of every kind, sent again to
				// a ledger reopened on the same database, gets its first answer (the request log's
				// rows, compact since migration 18, rebuilt from the commitments and envelopes as
				// they are now).
				l.Close()
				reopened := openLedgerWith(t, database, cfg)
				replays := 0
				for _, run := range runs {
					for _, f := range run.first {
						got, err := doUntilDecided(t.Context(), reopened, f.op, run.span)
						if err != nil {
							t.Fatalf("%s after reopening: %v", f.op, err)
						}
						if d := diffReplay(f.got, got); d != "" {
							t.Errorf("%s: a replay after reopening differs from the first answer (-first +replay):\n%s", f.op, d)
						}
						replays++
					}
				}
				t.Logf("%d recorded requests replayed after reopening", replays)
				verify(t, reopened, "after the replays")
				t.Logf("%s: %d operations in %v", reopened.Engine(), total, time.Since(start).Round(time.Millisecond))
			})
		}
	})
}

// TestModelSequentialDated is TestModelSequential's comparison (without the replays after
// reopening) with nearly every request dated: envelopes and their subtrees keep only dates for
// long, so that rule sets given past dates are often kept at them (after the latest effective
// time of the envelope and its descendants) and judge awards, bulk awards and later rule sets
// dated on both sides of them, and those of the run (funding rules by effective date).
func TestModelSequentialDated(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		for _, batching := range []bool{true, false} {
			t.Run(fmt.Sprintf("batching=%t", batching), func(t *testing.T) {
				l := openLedgerWith(t, database, ledger.Config{DisableBatching: !batching})
				for run, seed := range seeds(t) {
					ops := opsPerRun(1000)
					t.Logf("run %d: seed %d, %d operations", run, seed, ops)
					kind := "d"
					if !batching {
						kind = "d1" // another namespace on the same database
					}
					runSequential(t, l, kind, seed, ops, true)
				}
				verify(t, l, "")
			})
		}
	})
}

// names returns the envelope ids a run may create: its namespace keeps runs on one database
// apart.
func runPrefix(kind string, seed uint64) string { return kind + strconv.FormatUint(seed, 36) + "-" }

type step struct {
	op  op
	got answer
}

// runSequential returns the ledger's first answer to each request it recorded, by caller and
// request id, and the span of its decisions.
func runSequential(t *testing.T, l *ledger.Ledger, kind string, seed uint64, ops int, dated bool) (map[string]step, model.Span) {
	t.Helper()
	ctx := t.Context()
	span := newSpan()
	m := model.New(span)
	prefix := runPrefix(kind, seed)
	var names []string
	for i := range 4 {
		names = append(names, fmt.Sprintf("%sr%d", prefix, i))
	}
	for i := range 30 {
		names = append(names, fmt.Sprintf("%sc%d", prefix, i))
	}
	g := newGenerator(seed, modelView{m}, prefix, names)
	g.roots = true
	g.etags = true
	g.dated = dated
	seen := map[string]etagPair{} // etags read so far, for ops that send an old one
	// The first operations fund two roots, so that the run does not start with refusals only.
	g.sent = nil
	var recent []step
	tally := newTally()
	defer func() { t.Logf("outcomes: %s", tally) }()
	first := map[string]step{} // the ledger's first answer to each recorded request id
	fail := func(i int, format string, args ...any) {
		t.Helper()
		var b strings.Builder
		for _, s := range recent {
			fmt.Fprintf(&b, "\n    %s -> %s", s.op, s.got)
		}
		t.Fatalf("seed %d, operation %d: %s\n  last operations:%s\n  %s", seed, i, fmt.Sprintf(format, args...),
			b.String(), reproduce(t, seed, ops))
	}
	for i := range ops {
		var o op
		switch i {
		case 0, 1:
			o = op{create: &model.CreateEnvelope{RequestID: g.requestID(), Caller: "admin:model",
				EnvelopeID: names[i], DisplayName: "root", Allocation: 1_000_000_000}}
			if dated {
				o.create.Effective = backdatedFrom
			}
		default:
			o = g.next()
		}
		rid := o.requestID()
		key := o.caller() + "\t" + rid // request ids belong to their caller
		wasRecorded := rid != "" && m.Requested(o.caller(), rid)
		resolveETags(ctx, l, m, o, seen)
		got, err := doUntilDecided(ctx, l, o, span)
		if err != nil {
			fail(i, "%v", err)
		}
		tally.add(o, got)
		recent = append(recent, step{o, got})
		if len(recent) > 12 {
			recent = recent[1:]
		}
		want := expect(m, o, got)
		if d := diffAnswers(want, got); d != "" {
			fail(i, "%s: the ledger answered %s, the model %s (-model +ledger):\n%s", o, got, want, d)
		}
		if rid != "" {
			if f, ok := first[key]; ok && reflect.DeepEqual(f.op, o) {
				tally["(replays of a recorded request)"]++
				if d := diffReplay(f.got, got); d != "" {
					fail(i, "%s: a replay differs from the first answer (-first +replay):\n%s", o, d)
				}
			} else if !wasRecorded && m.Requested(o.caller(), rid) {
				first[key] = step{o, got}
			}
		}
		if (i+1)%checkEvery == 0 || i == ops-1 {
			if err := compareState(ctx, l, m, names); err != nil {
				fail(i, "after %s: %v", o, err)
			}
		}
	}
	return first, span
}

// compareState compares every envelope (those the model knows, and the names it does not) and
// every commitment of them with the ledger's.
func compareState(ctx context.Context, l *ledger.Ledger, m *model.Ledger, names []string) error {
	known := map[string]bool{}
	for _, id := range m.EnvelopeIDs() {
		known[id] = true
		want, _ := m.Envelope(id)
		got, err := l.GetEnvelope(ctx, id)
		if err != nil {
			return fmt.Errorf("GetEnvelope(%s): %w", id, err)
		}
		if d := cmp.Diff(want, fromEnvelope(got)); d != "" {
			return fmt.Errorf("envelope %s differs (-model +ledger):\n%s", id, d)
		}
		wantC := map[string]model.Commitment{}
		for _, cid := range m.CommitmentIDs() {
			if c, _ := m.Commitment(cid); c.EnvelopeID == id {
				wantC[cid] = c
			}
		}
		gotC := map[string]model.Commitment{}
		page := ledger.Page{Size: 1000}
		for {
			cs, next, err := l.ListCommitments(ctx, ledger.CommitmentFilter{EnvelopeID: id}, page)
			if err != nil {
				return fmt.Errorf("ListCommitments(%s): %w", id, err)
			}
			for _, c := range cs {
				gotC[c.ID] = fromCommitment(c)
			}
			if next == "" {
				break
			}
			page.Token = next
		}
		if d := cmp.Diff(wantC, gotC); d != "" {
			return fmt.Errorf("commitments of envelope %s differ (-model +ledger):\n%s", id, d)
		}
	}
	for _, id := range names {
		if known[id] {
			continue
		}
		if e, err := l.GetEnvelope(ctx, id); err == nil {
			return fmt.Errorf("envelope %s exists in the ledger (%+v), not in the model", id, e)
		}
	}
	return nil
}

// verify runs the ledger's auditor: it must find nothing.
func verify(t *testing.T, l *ledger.Ledger, context string) {
	t.Helper()
	rep, err := l.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		var b strings.Builder
		for _, d := range rep.Discrepancies {
			fmt.Fprintf(&b, "\n  %s", d)
		}
		t.Fatalf("Verify found %d discrepancies%s:%s", len(rep.Discrepancies), context, b.String())
	}
	verifyLog(t, l, context)
}
