package ledger

import "sync"

// homesPerGeneration bounds the commitments homes remembers: between one and two generations of
// this many (a few MB).
const homesPerGeneration = 50_000

// homes remembers the envelope of recent commitments, so that a release, payment or closing is
// routed to its envelope's batch without first reading the commitment outside any transaction: a
// statement and a round trip per operation, which cost a release run on PostgreSQL about as much
// CPU as the batch's own share of the release (docs/benchmarks.md). A commitment never changes
// envelope, and none is deleted, so what homes holds is never stale; the batch reads the
// commitment again under its envelope's lock and decides on that (core: a commitment of another
// envelope is not found there). It learns a commitment's envelope when a batch of this process
// committed it, or when it was read to route an operation. Bounded: when the current generation
// is full it becomes the old one, and the old one is forgotten.
type homes struct {
	mu       sync.Mutex
	cur, old map[string]string
}

// envelope returns the envelope of commitment id, if remembered.
func (h *homes) envelope(id string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.cur[id]; ok {
		return e, true
	}
	e, ok := h.old[id]
	return e, ok
}

// learn remembers that commitment id belongs to envelope.
func (h *homes) learn(id, envelope string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cur) >= homesPerGeneration {
		h.old, h.cur = h.cur, nil
	}
	if h.cur == nil {
		h.cur = make(map[string]string, min(homesPerGeneration, 1024))
	}
	h.cur[id] = envelope
}
