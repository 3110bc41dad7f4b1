package ledger

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// TestEnvelopeDepthLimit protects the bound on envelope trees (so that every award's chain of
// parents is short and readable): an envelope at level MaxEnvelopeDepth (a root is level 1) can
// have no child; the refusal ENVELOPE_TOO_DEEP names the parent, posts nothing, and is the
// request's recorded outcome.
func TestEnvelopeDepthLimit(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		parent := ""
		for level := 1; level <= MaxEnvelopeDepth; level++ {
			id := "level-" + strconv.Itoa(level)
			mustCreateEnvelope(t, l, id, parent, int64(1000-level))
			parent = id
		}
		entries := entryCount(t, l)
		cmd := CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "too-deep", ParentID: parent, Allocation: 1}
		_, err := l.CreateEnvelope(ctx, cmd)
		e := requireError(t, err, ErrEnvelopeTooDeep)
		requireMetadata(t, e, map[string]string{"parent": EnvelopeName(parent), "max_depth": strconv.Itoa(MaxEnvelopeDepth)})
		_, err = l.CreateEnvelope(ctx, cmd)
		requireError(t, err, ErrEnvelopeTooDeep)
		if got := entryCount(t, l); got != entries {
			t.Errorf("a refused creation posted %d entries", got-entries)
		}
		if _, err := l.GetEnvelope(ctx, "too-deep"); !errors.Is(err, ErrEnvelopeNotFound) {
			t.Errorf("the refused envelope: %v, want ENVELOPE_NOT_FOUND", err)
		}
		requireVerifyOK(t, l)
	})
}

// TestFailingRequestFailsAlone protects "one request's failure stays its own" end to end: an
// award on an envelope nested deeper than the ledger can read (65 levels, as a ledger made before
// the depth limit may hold) fails with INTERNAL and records nothing, while the awards on another
// envelope batched in the same group-commit transaction are made.
func TestFailingRequestFailsAlone(t *testing.T) {
	t.Parallel()
	l, path := openBatched(t)
	ctx := t.Context()
	// The deep tree, written as an old ledger could hold it (the ledger itself refuses it now).
	mustCreateEnvelope(t, l, "deep-0", "", 1000)
	parent := "deep-0"
	for i := 1; i <= 65; i++ {
		id := fmt.Sprint("deep-", i)
		if err := rawExec(ctx, l, `INSERT INTO envelopes (id, parent_id, display_name, currency, allocation, committed,
			children_allocated, released, commitment_count, created_at, updated_at) VALUES ($1, $2, '', 'EUR', 1000, 0, 0, 0, 0, 0, 0)`,
			id, parent); err != nil {
			t.Fatal(err)
		}
		parent = id
	}
	deep := commitCmd(parent, "deep", 10)
	if _, err := l.Commit(ctx, deep); !errors.Is(err, ErrInternal) {
		t.Fatalf("an award on the deep envelope alone: %v, want INTERNAL", err)
	}

	release := writeLock(t, path)
	first := blockWorker(t, l, func() error { _, err := l.Commit(t.Context(), commitCmd("hot", "first", 10)); return err })
	errs := make([]error, 3)
	done := make(chan int, 3)
	for i, cmd := range []Commit{commitCmd("hot", "before", 10), deep, commitCmd("hot", "after", 10)} {
		go func() { _, errs[i] = l.Commit(t.Context(), cmd); done <- i }()
		waitUntil(t, "the request queued", func() bool { ops, _ := queueState(l); return ops == i+1 })
	}
	before := l.Stats()
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-done
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("awards batched with a failing one: %v, %v; want both made", errs[0], errs[2])
	}
	if !errors.Is(errs[1], ErrInternal) {
		t.Errorf("the award on the deep envelope: %v, want INTERNAL", errs[1])
	}
	if after := l.Stats(); after.Batches-before.Batches != 2 {
		t.Fatalf("%d transactions decided the first award and the three queued behind it, want 2 (the three together): the test lost its point",
			after.Batches-before.Batches)
	}
	if env := mustGetEnvelope(t, l, "hot"); env.CommitmentCount != 3 {
		t.Errorf("hot holds %d awards, want 3", env.CommitmentCount)
	}
	// Nothing of the failed request was recorded: it fails again rather than replaying.
	if _, err := l.Commit(ctx, deep); !errors.Is(err, ErrInternal) {
		t.Errorf("the deep award sent again: %v, want INTERNAL again", err)
	}
}
