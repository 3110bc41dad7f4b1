package ledger

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// ReasonStreamOverflow ends a journal stream that fell too far behind.
const ReasonStreamOverflow = core.ReasonStreamOverflow

// WatchConfig bounds one journal stream.
type WatchConfig struct {
	// EnvelopeID keeps only the entries that post to this envelope ("" keeps all).
	EnvelopeID string
	// Buffer is how many entries may wait, read from the database, for send (default 10,000).
	// The database is read no faster than send takes them; when a reader lets the buffer stay
	// full for Stall, the stream ends with STREAM_OVERFLOW, whose metadata
	// resume_after_sequence is the last sequence sent.
	Buffer int
	// Stall is how long a full buffer may wait for the reader (default 1 minute; negative: not
	// at all).
	Stall time.Duration
	// overflowed, set by tests only, is called when the buffer overflows.
	overflowed func()
	// MaxBatch is the most entries given to one send (default 100).
	MaxBatch int
}

// watchPoll is how often a stream looks for entries positioned by other processes when nothing
// woke it (entries positioned by this process wake it at once).
const watchPoll = sequencePoll

// WatchJournal calls send with the journal's entries after position after, in the journal's order,
// each exactly once, in batches: first those that exist, then new ones as they are positioned,
// until ctx ends (its error is returned) or send fails (its error is returned). Memory is bounded
// by cfg.Buffer: a reader that lets it fill ends the stream with STREAM_OVERFLOW.
func (l *Ledger) WatchJournal(ctx context.Context, after int64, cfg WatchConfig, send func([]Entry) error) error {
	if cfg.EnvelopeID != "" {
		if err := core.CheckEnvelopeID("envelope", cfg.EnvelopeID); err != nil {
			return err
		}
	}
	if after < 0 {
		return core.InvalidArgument("after_sequence", "must not be negative")
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10_000
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 100
	}
	if cfg.Stall == 0 {
		cfg.Stall = time.Minute
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []Entry, max(1, cfg.Buffer/cfg.MaxBatch))
	var sent atomic.Int64
	sent.Store(after)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		err := l.followJournal(ctx, after, cfg, batches)
		if err == errOverflow && cfg.overflowed != nil {
			cfg.overflowed()
		}
		readErr <- err
	}()
	for batch := range batches {
		// Once ctx ends (the caller left, the server shuts down), what is still buffered is not
		// sent: a slow reader would hold the stream open for all of it.
		err := ctx.Err()
		if err == nil {
			err = send(batch)
		}
		if err != nil {
			cancel()
			for range batches { // let the reader end
			}
			return err
		}
		sent.Store(batch[len(batch)-1].Sequence)
	}
	err := <-readErr
	if err == errOverflow {
		// Everything read before the overflow was sent: resume after the last of it.
		resume := strconv.FormatInt(sent.Load(), 10)
		return &Error{Reason: ReasonStreamOverflow,
			Message:  "the stream fell too far behind the journal and was ended; open a new one with after_sequence " + resume,
			Metadata: map[string]string{"resume_after_sequence": resume}}
	}
	return err
}

var errOverflow = errors.New("the stream's buffer is full")

// followJournal reads the journal after after into batches until ctx ends or batches is full.
func (l *Ledger) followJournal(ctx context.Context, after int64, cfg WatchConfig, batches chan<- []Entry) error {
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	const pageSize = 1000
	for {
		moved := l.journalMovedChan()
		entries, _, err := l.ListEntries(ctx, EntryFilter{EnvelopeID: cfg.EnvelopeID, AfterSequence: after}, Page{Size: pageSize})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for start := 0; start < len(entries); start += cfg.MaxBatch {
			batch := entries[start:min(start+cfg.MaxBatch, len(entries))]
			if err := push(ctx, batches, batch, cfg.Stall); err != nil {
				return err
			}
			after = batch[len(batch)-1].Sequence
		}
		if len(entries) == pageSize {
			continue // more may follow at once
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-moved:
		case <-tick.C:
		}
	}
}

// push puts batch in batches, waiting at most stall while they are full.
func push(ctx context.Context, batches chan<- []Entry, batch []Entry, stall time.Duration) error {
	select {
	case batches <- batch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	if stall < 0 {
		return errOverflow
	}
	timer := time.NewTimer(stall)
	defer timer.Stop()
	select {
	case batches <- batch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		// The reader is too slow: end the stream rather than wait for it forever.
		return errOverflow
	}
}
