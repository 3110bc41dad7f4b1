package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// TestWatchJournalOverflowResumesExactly protects the journal stream's bound: a reader that lets
// the buffer fill ends its stream with STREAM_OVERFLOW instead of growing memory, after every
// entry read before was sent; its resume_after_sequence is the last sequence sent, so that a new
// stream from it continues with the next entry, none lost, none twice.
func TestWatchJournalOverflowResumesExactly(t *testing.T) {
	t.Parallel()
	l := journalOf31Entries(t)
	release := make(chan struct{})
	var got []int64
	collect := func(entries []Entry) error {
		for _, e := range entries {
			got = append(got, e.Sequence)
		}
		return nil
	}
	cfg := WatchConfig{Buffer: 5, MaxBatch: 1, Stall: -1, overflowed: func() { close(release) }}
	err := l.WatchJournal(t.Context(), 0, cfg, func(entries []Entry) error {
		if len(got) == 0 {
			<-release // the reader stalls on its first message until the buffer overflows
		}
		return collect(entries)
	})
	var le *Error
	if !errors.As(err, &le) || le.Reason != ReasonStreamOverflow {
		t.Fatalf("a stalled stream ended with %v, want STREAM_OVERFLOW", err)
	}
	resume, perr := strconv.ParseInt(le.Metadata["resume_after_sequence"], 10, 64)
	if perr != nil || len(got) == 0 || resume != got[len(got)-1] {
		t.Fatalf("resume_after_sequence %q after receiving %v", le.Metadata["resume_after_sequence"], got)
	}
	if len(got) >= 31 {
		t.Fatalf("the stalled stream sent all %d entries: it never overflowed", len(got))
	}
	// Resume: the rest, once each, in order; the watch is ended once it has the journal.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err = l.WatchJournal(ctx, resume, WatchConfig{}, func(entries []Entry) error {
		if err := collect(entries); err != nil {
			return err
		}
		if len(got) >= 31 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("resumed watch: %v", err)
	}
	for i, seq := range got {
		if seq != int64(i+1) {
			t.Fatalf("received positions %v, want 1…31 each once", got)
		}
	}
	if len(got) != 31 {
		t.Fatalf("received %d entries, want 31", len(got))
	}
}

// TestWatchJournalStopsSendingOnceEnded: once the watch's context ends (the server shutting down,
// the caller gone), what is still buffered is not sent: a slow reader held a server's graceful
// stop for every buffered batch (found by an outside probe).
func TestWatchJournalStopsSendingOnceEnded(t *testing.T) {
	t.Parallel()
	l := journalOf31Entries(t)
	full := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sends := 0
	cfg := WatchConfig{Buffer: 5, MaxBatch: 1, Stall: -1, overflowed: func() { close(full) }}
	err := l.WatchJournal(ctx, 0, cfg, func([]Entry) error {
		sends++
		if sends == 1 {
			<-full   // the buffer holds batches not sent yet
			cancel() // ... when the stream is ended
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || sends != 1 {
		t.Fatalf("a watch ended with batches buffered: %v after %d sends; want context.Canceled after the one in progress", err, sends)
	}
}

// journalOf31Entries is a SQLite ledger whose journal holds 31 entries: an envelope's funding and
// 30 awards.
func journalOf31Entries(t *testing.T) *Ledger {
	t.Helper()
	l := newSQLiteDB(t).open(t)
	mustCreateEnvelope(t, l, "fund", "", 1_000_000)
	for i := range 30 {
		if _, err := l.Commit(t.Context(), commitCmd("fund", fmt.Sprintf("siren:%d", i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}
