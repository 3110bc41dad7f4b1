package ledger

import (
	"sync"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// homesPerGeneration bounds what a homes remembers: between one and two generations of this many
// (a few MB).
const homesPerGeneration = 50_000

// homes remembers where recent commitments or holds belong (V: what of them never changes), so
// that an operation on one is routed to its envelope's batch without first reading it outside
// any transaction: a statement and a round trip per operation, which cost a release or payment
// run on PostgreSQL about as much CPU as the batch's own share of the operation
// (docs/benchmarks.md). A commitment or hold never changes envelope (nor a hold its project or
// policy), and none is deleted, so what homes holds is never stale; the batch reads the row again
// under its envelope's lock and decides on that (core: a commitment or hold of another envelope
// is not found there). A ledger learns where one belongs when a batch of its own committed it, or
// when it read it to route an operation. Bounded: when the current generation is full it becomes
// the old one, and the old one is forgotten.
type homes[V any] struct {
	mu       sync.Mutex
	cur, old map[string]V
}

// get returns what is remembered of id.
func (h *homes[V]) get(id string) (V, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.cur[id]; ok {
		return v, true
	}
	v, ok := h.old[id]
	return v, ok
}

// learn remembers v of id.
func (h *homes[V]) learn(id string, v V) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cur) >= homesPerGeneration {
		h.old, h.cur = h.cur, nil
	}
	if h.cur == nil {
		h.cur = make(map[string]V, min(homesPerGeneration, 1024))
	}
	h.cur[id] = v
}

// holdHome is what never changes of a hold: what routes its confirmation or cancellation
// (core.Op.Seen).
func holdHome(h *core.Hold) *core.Hold {
	return &core.Hold{ID: h.ID, EnvelopeID: h.EnvelopeID, Project: h.Project, Policy: h.Policy}
}
