package ledger

import (
	"sync"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// testClock is a clock the test moves by hand (Config.Clock), so that holds expire when the test
// says, never by waiting.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now().UTC()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openClocked opens a ledger on db with the test's clock and no background sweeper: the test
// sweeps when it means to.
func openClocked(t *testing.T, db testDB, clock *testClock) *Ledger {
	t.Helper()
	l, err := Open(t.Context(), db.dsn, Config{TxTimeout: testdb.TxTimeout, Clock: clock.Now, HoldSweepInterval: -1})
	if err != nil {
		t.Fatalf("Open(%s): %v", db.engine, err)
	}
	t.Cleanup(l.Close)
	return l
}

func holdCmd(envelope, beneficiary string, amount int64) CreateHold {
	return CreateHold{RequestID: newRequestID(), Caller: "service:test", EnvelopeID: envelope,
		Beneficiary: beneficiary, Project: "project of " + beneficiary, Amount: amount}
}

func mustHold(t *testing.T, l *Ledger, cmd CreateHold) CreateHoldResult {
	t.Helper()
	res, err := l.CreateHold(t.Context(), cmd)
	if err != nil {
		t.Fatalf("CreateHold(%+v): %v", cmd, err)
	}
	return res
}

type heldBalances struct{ Allocation, Available, Held, Committed, CommitmentCount int64 }

func checkHeld(t *testing.T, l *Ledger, id string, want heldBalances) {
	t.Helper()
	e := mustGetEnvelope(t, l, id)
	got := heldBalances{e.Allocation, e.Available(), e.Held, e.Committed, e.CommitmentCount}
	if got != want {
		t.Errorf("envelope %s: got %+v, want %+v", id, got, want)
	}
	// Invariant 10: allocation = available + held + committed + allocated to children.
	if e.Allocation != e.Available()+e.Held+e.Committed+e.ChildrenAllocated || e.Available() < 0 {
		t.Errorf("envelope %s breaks allocation = available + held + committed + children: %+v", id, e)
	}
}

// TestHoldLifecycle: a hold moves its amount out of available into held; a confirmation at a lower
// amount commits it and returns the rest at once; a cancellation returns it all; each movement is
// one balanced journal entry and the verifier finds every hold settled once (invariants 1, 4, 10).
func TestHoldLifecycle(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		clock := newTestClock()
		l := openClocked(t, db, clock)
		ctx := t.Context()
		mustCreateEnvelope(t, l, "axis-3", "", 1_000_000)
		h := mustHold(t, l, holdCmd("axis-3", "siren:1", 300_000))
		if h.Hold.State != HoldHeld || h.Hold.Amount != 300_000 || h.Envelope.Held != 300_000 || h.Envelope.Available() != 700_000 {
			t.Fatalf("CreateHold = %+v", h)
		}
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 700_000, 300_000, 0, 0})

		confirm := ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID, Amount: 200_000}
		c, err := l.ConfirmHold(ctx, confirm)
		if err != nil {
			t.Fatalf("ConfirmHold: %v", err)
		}
		if c.Hold.State != HoldConfirmed || c.Hold.ConfirmedAmount != 200_000 || c.Commitment.Amount != 200_000 ||
			c.Hold.CommitmentID != c.Commitment.ID || c.Commitment.Project != "project of siren:1" {
			t.Fatalf("ConfirmHold = %+v", c)
		}
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 800_000, 0, 200_000, 1})
		// Invariant 5: the same request replays its first outcome and posts nothing.
		n := entryCount(t, l)
		again, err := l.ConfirmHold(ctx, confirm)
		if err != nil || again.Commitment.ID != c.Commitment.ID || entryCount(t, l) != n {
			t.Fatalf("replayed ConfirmHold = %+v, %v; entries %d, want %d", again, err, entryCount(t, l), n)
		}
		// A confirmed hold ends once.
		_, err = l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID})
		requireMetadata(t, requireError(t, err, ErrHoldNotHeld), map[string]string{"state": "CONFIRMED"})
		_, err = l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID, Reason: "late"})
		requireError(t, err, ErrHoldNotHeld)

		h2 := mustHold(t, l, holdCmd("axis-3", "siren:2", 500_000))
		_, err = l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h2.Hold.ID, Amount: 500_001})
		requireMetadata(t, requireError(t, err, ErrConfirmExceedsHeld), map[string]string{"held": "500000", "requested": "500001"})
		_, err = l.CreateHold(ctx, holdCmd("axis-3", "siren:3", 300_001))
		requireMetadata(t, requireError(t, err, ErrInsufficientFunds), map[string]string{"available": "300000"})
		cancelled, err := l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h2.Hold.ID, Reason: "withdrawn"})
		if err != nil || cancelled.Hold.State != HoldCancelled || cancelled.Hold.Reason != "withdrawn" {
			t.Fatalf("CancelHold = %+v, %v", cancelled, err)
		}
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 800_000, 0, 200_000, 1})
		_, err = l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: newID()})
		requireError(t, err, ErrHoldNotFound)
		_, err = l.CreateHold(ctx, holdCmd("nowhere", "siren:4", 1))
		requireError(t, err, ErrEnvelopeNotFound)

		got, err := l.GetHold(ctx, h2.Hold.ID)
		if err != nil || got.State != HoldCancelled {
			t.Fatalf("GetHold = %+v, %v", got, err)
		}
		list, _, err := l.ListHolds(ctx, HoldFilter{EnvelopeID: "axis-3", State: HoldConfirmed}, Page{})
		if err != nil || len(list) != 1 || list[0].ID != h.Hold.ID {
			t.Fatalf("ListHolds(CONFIRMED) = %+v, %v", list, err)
		}
		kinds := map[EntryKind]int{}
		for _, e := range allEntries(t, l, EntryFilter{}) {
			kinds[e.Kind]++
		}
		if kinds[KindHoldCreated] != 2 || kinds[KindHoldConfirmed] != 1 || kinds[KindHoldCancelled] != 1 {
			t.Errorf("entry kinds = %v", kinds)
		}
		requireVerifyOK(t, l)
	})
}

// TestHoldExpiry: a hold past its expire time can no longer be confirmed or cancelled, swept or
// not, and the sweeper returns its amount exactly once, however many times it runs (invariant 10).
func TestHoldExpiry(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		clock := newTestClock()
		l := openClocked(t, db, clock)
		// A second process on the same database, with the same clock.
		other := openClocked(t, db, clock)
		ctx := t.Context()
		mustCreateEnvelope(t, l, "axis-3", "", 1_000_000)
		cmd := holdCmd("axis-3", "siren:1", 400_000)
		cmd.ExpireTime = clock.Now().Add(time.Hour)
		h := mustHold(t, l, cmd)
		keep := holdCmd("axis-3", "siren:2", 100_000)
		keep.ExpireTime = clock.Now().Add(3 * time.Hour)
		kept := mustHold(t, l, keep)
		if n, err := l.SweepExpiredHolds(ctx); err != nil || n != 0 {
			t.Fatalf("SweepExpiredHolds before any expiry = %d, %v", n, err)
		}
		clock.Advance(time.Hour)
		// Past its expire time, not swept yet: refused.
		_, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID})
		requireError(t, err, ErrHoldExpired)
		_, err = l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID, Reason: "r"})
		requireError(t, err, ErrHoldExpired)
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 500_000, 500_000, 0, 0})
		for _, sweeper := range []*Ledger{l, other, l} {
			if _, err := sweeper.SweepExpiredHolds(ctx); err != nil {
				t.Fatal(err)
			}
		}
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 900_000, 100_000, 0, 0})
		got, err := l.GetHold(ctx, h.Hold.ID)
		if err != nil || got.State != HoldExpired {
			t.Fatalf("GetHold = %+v, %v", got, err)
		}
		// Swept, the same refusal.
		_, err = other.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID})
		requireError(t, err, ErrHoldExpired)
		// The other hold is confirmed before its time.
		if _, err := other.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: kept.Hold.ID}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(3 * time.Hour)
		if n, err := l.SweepExpiredHolds(ctx); err != nil || n != 0 {
			t.Fatalf("SweepExpiredHolds after the last hold was confirmed = %d, %v", n, err)
		}
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 900_000, 0, 100_000, 1})
		// An expire time not after now is refused.
		past := holdCmd("axis-3", "siren:3", 1)
		past.ExpireTime = clock.Now()
		_, err = l.CreateHold(ctx, past)
		requireError(t, err, ErrInvalidArgument)
		requireVerifyOK(t, l)
	})
}

// TestHoldExpiryRacesConfirmation: sweepers of two processes and confirmations run at once on the
// same holds at their expire time; each hold ends in exactly one state and returns its amount at
// most once (invariant 10, checked by the verifier and the envelope's balances).
func TestHoldExpiryRacesConfirmation(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		clock := newTestClock()
		a, b := openClocked(t, db, clock), openClocked(t, db, clock)
		ctx := t.Context()
		mustCreateEnvelope(t, a, "axis-3", "", 10_000_000)
		const n = 60
		var ids []string
		for i := range n {
			cmd := holdCmd("axis-3", "siren:"+string(rune('a'+i%26)), 1000)
			cmd.ExpireTime = clock.Now().Add(time.Minute)
			ids = append(ids, mustHold(t, a, cmd).Hold.ID)
		}
		clock.Advance(time.Minute - time.Microsecond)
		var wg sync.WaitGroup
		confirmed := make([]bool, n)
		for i, id := range ids {
			wg.Go(func() {
				l := a
				if i%2 == 1 {
					l = b
				}
				if i == n/2 {
					clock.Advance(time.Microsecond) // from here on, every hold has expired
				}
				_, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: id})
				confirmed[i] = err == nil
			})
		}
		for _, l := range []*Ledger{a, b} {
			wg.Go(func() {
				for range 3 {
					_, _ = l.SweepExpiredHolds(ctx)
				}
			})
		}
		wg.Wait()
		clock.Advance(time.Minute)
		if _, err := a.SweepExpiredHolds(ctx); err != nil {
			t.Fatal(err)
		}
		var committed int64
		for i, id := range ids {
			h, err := a.GetHold(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case confirmed[i] && h.State != HoldConfirmed, !confirmed[i] && h.State != HoldExpired:
				t.Errorf("hold %d: confirmed %v, state %s", i, confirmed[i], h.State)
			}
			if h.State == HoldConfirmed {
				committed += h.Amount
			}
		}
		e := mustGetEnvelope(t, a, "axis-3")
		if e.Held != 0 || e.Committed != committed || e.Available() != 10_000_000-committed {
			t.Errorf("envelope after the race: %+v, committed by confirmations %d", e, committed)
		}
		requireVerifyOK(t, a)
	})
}

// TestHoldsInReport: the funding report shows what holds reserve, per envelope and rolled up, and
// counts a confirmed hold as an award of the confirmed amount; allocation = available + held +
// committed + allocated to children holds in the report too (invariant 10).
func TestHoldsInReport(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		clock := newTestClock()
		l := openClocked(t, db, clock)
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-3", "fund", 600_000)
		mustHold(t, l, holdCmd("axis-3", "siren:1", 100_000))
		h := mustHold(t, l, holdCmd("axis-3", "siren:2", 50_000))
		mustHold(t, l, holdCmd("fund", "siren:3", 7_000))
		if _, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID, Amount: 30_000}); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Report(ctx, "fund", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]ReportLine{}
		for _, line := range rep.Lines {
			byID[line.EnvelopeID] = line
		}
		axis, fund := byID["axis-3"], byID["fund"]
		if axis.Own.Held != 100_000 || axis.Own.Awarded != 30_000 || axis.Own.AwardCount != 1 || axis.Own.Committed != 30_000 ||
			axis.Own.Available != 470_000 || axis.Own.Allocation != 600_000 {
			t.Errorf("axis-3 own figures: %+v", axis.Own)
		}
		if fund.Own.Held != 7_000 || fund.Total.Held != 107_000 || fund.Own.Allocation != 1_000_000 || fund.Own.Available != 393_000 {
			t.Errorf("fund figures: own %+v, total %+v", fund.Own, fund.Total)
		}
	})
}

// TestHoldsRefuseBadInput: below the gRPC boundary, the ledger's own validation refuses malformed
// hold requests with the field named, whoever calls it, and records nothing (invariant 7).
func TestHoldsRefuseBadInput(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "axis-3", "", 1_000_000)
		h := mustHold(t, l, holdCmd("axis-3", "b", 10))
		before := entryCount(t, l)
		invalid := func(name, field string, err error) {
			t.Helper()
			if e := requireError(t, err, ErrInvalidArgument); e.Field != field {
				t.Errorf("%s: refused on field %q, want %q", name, e.Field, field)
			}
		}
		year10000 := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		for name, c := range map[string]struct {
			mod   func(*CreateHold)
			field string
		}{
			"amount zero":             {func(c *CreateHold) { c.Amount = 0 }, "amount"},
			"amount negative":         {func(c *CreateHold) { c.Amount = -1 }, "amount"},
			"envelope malformed":      {func(c *CreateHold) { c.EnvelopeID = "Axis 3" }, "envelope"},
			"beneficiary empty":       {func(c *CreateHold) { c.Beneficiary = "" }, "beneficiary"},
			"project with a NUL":      {func(c *CreateHold) { c.Project = "p\x00" }, "project"},
			"caller with a NUL":       {func(c *CreateHold) { c.Caller = "s\x00" }, "caller"},
			"request id with a space": {func(c *CreateHold) { c.RequestID = "a b" }, "request_id"},
			"eligible cost negative":  {func(c *CreateHold) { c.EligibleCost = -1 }, "eligible_cost"},
			"expire time year 10000":  {func(c *CreateHold) { c.ExpireTime = year10000 }, "expire_time"},
			"effective time year 0":   {func(c *CreateHold) { c.Effective = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) }, "effective_time"},
		} {
			cmd := holdCmd("axis-3", "b", 10)
			c.mod(&cmd)
			_, err := l.CreateHold(ctx, cmd)
			invalid("CreateHold "+name, c.field, err)
		}
		_, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "s", HoldID: "42"})
		invalid("ConfirmHold hold not a UUID", "hold", err)
		_, err = l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "s", HoldID: h.Hold.ID, Amount: -5})
		invalid("ConfirmHold amount negative", "amount", err)
		_, err = l.CancelHold(ctx, CancelHold{RequestID: newRequestID(), Caller: "s", HoldID: h.Hold.ID})
		invalid("CancelHold without a reason", "reason", err)
		_, _, err = l.ListHolds(ctx, HoldFilter{State: "PENDING"}, Page{})
		invalid("ListHolds unknown state", "state", err)
		_, err = l.GetHold(ctx, "holds/"+h.Hold.ID)
		invalid("GetHold by resource name", "name", err)
		if n := entryCount(t, l); n != before {
			t.Errorf("refused requests posted %d entries", n-before)
		}
		checkHeld(t, l, "axis-3", heldBalances{1_000_000, 999_990, 10, 0, 0})
		requireVerifyOK(t, l)
	})
}

// TestVerifyFindsAHoldReturnedTwice: the verifier catches a hold whose amount was returned a
// second time (an expiry entry written again behind the ledger's back, as a double sweep would),
// and a hold row edited back to HELD after it ended (invariant 20).
func TestVerifyFindsAHoldReturnedTwice(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDB) {
		clock := newTestClock()
		l := openClocked(t, db, clock)
		ctx := t.Context()
		mustCreateEnvelope(t, l, "axis-3", "", 1_000_000)
		cmd := holdCmd("axis-3", "b", 700)
		cmd.ExpireTime = clock.Now().Add(time.Minute)
		h := mustHold(t, l, cmd)
		clock.Advance(time.Hour)
		if n, err := l.SweepExpiredHolds(ctx); err != nil || n != 1 {
			t.Fatalf("SweepExpiredHolds = %d, %v", n, err)
		}
		requireVerifyOK(t, l)
		entry := newID()
		for _, stmt := range []struct {
			q    string
			args []any
		}{
			{"INSERT INTO journal_entries (id, kind, currency, caller, request_id, memo, created_at) VALUES ($1, 'HOLD_EXPIRED', 'EUR', $2, $3, '', 1)",
				[]any{entry, "ledger:hold-expiry", "expire-again/" + h.Hold.ID}},
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 0, $2, -700)", []any{entry, HoldName(h.Hold.ID)}},
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 1, 'envelopes/axis-3', 700)", []any{entry}},
		} {
			if err := rawExec(ctx, l, stmt.q, stmt.args...); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range rep.Discrepancies {
			found = found || (d.Invariant == 20 && d.Subject == HoldName(h.Hold.ID))
		}
		if !found {
			t.Errorf("Verify did not find the hold returned twice: %v", rep.Discrepancies)
		}
		// The database refuses to bring an ended hold back to HELD.
		if err := rawExec(ctx, l, "UPDATE holds SET state = 'HELD' WHERE id = $1", h.Hold.ID); err == nil {
			t.Error("an EXPIRED hold was set back to HELD")
		}
	})
}
