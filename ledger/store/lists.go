package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Lists, keyset-paginated: a page token holds the key of the last item returned and a digest of
// the filters it was made for (see pagetoken.go).

// Page is what a List call asks for: at most Size items (0 means 50, more than 1000 means 1000)
// after the position a Token from a previous page points to.
type Page struct {
	Size  int
	Token string
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func (p Page) limit() int {
	switch {
	case p.Size <= 0:
		return defaultPageSize
	case p.Size > maxPageSize:
		return maxPageSize
	}
	return p.Size
}

// EnvelopeFilter selects envelopes for ListEnvelopes.
type EnvelopeFilter struct {
	// ParentID keeps only the direct children of this envelope; empty keeps every envelope.
	ParentID string
}

// ListEnvelopes returns envelopes in id order and the token of the next page ("" at the end).
func ListEnvelopes(ctx context.Context, q Querier, f EnvelopeFilter, page Page) ([]core.Envelope, string, error) {
	filterKey := "envelopes\x00" + f.ParentID
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	args := []any{after}
	query := SelectEnvelopes + " WHERE id > $1"
	if f.ParentID != "" {
		args = append(args, f.ParentID)
		query += " AND parent_id = $2"
	}
	return listPage(ctx, q, query+" ORDER BY id", args, page.limit(), filterKey, ScanEnvelope,
		func(e core.Envelope) string { return e.ID })
}

// CommitmentFilter selects commitments for ListCommitments; empty fields select everything.
type CommitmentFilter struct {
	EnvelopeID  string
	Beneficiary string
}

// ListCommitments returns commitments oldest first and the token of the next page.
func ListCommitments(ctx context.Context, q Querier, f CommitmentFilter, page Page) ([]core.Commitment, string, error) {
	filterKey := "commitments\x00" + f.EnvelopeID + "\x00" + f.Beneficiary
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	// Commitment ids are UUIDs (native ones on CockroachDB, where "" is no UUID): the first page
	// has no lower bound, and a token must hold a commitment id.
	args := []any{}
	query := SelectCommitments + " WHERE true"
	if after != "" {
		if core.CheckCommitmentID("page_token", after) != nil {
			return nil, "", badPageToken()
		}
		args = append(args, after)
		query += " AND id > $1"
	}
	if f.EnvelopeID != "" {
		args = append(args, f.EnvelopeID)
		query += fmt.Sprintf(" AND envelope_id = $%d", len(args))
	}
	if f.Beneficiary != "" {
		args = append(args, f.Beneficiary)
		query += fmt.Sprintf(" AND beneficiary = $%d", len(args))
	}
	return listPage(ctx, q, query+" ORDER BY id", args, page.limit(), filterKey, ScanCommitment,
		func(c core.Commitment) string { return c.ID })
}

// EntryFilter selects journal entries that post to an envelope and/or a commitment, after a
// position of the journal.
type EntryFilter struct {
	EnvelopeID   string
	CommitmentID string
	// AfterSequence starts the list after this position (0: from the start).
	AfterSequence int64
}

// ListEntries returns journal entries in the journal's order (by sequence), with their postings,
// and the token of the next page. Only entries that have their position are listed (see
// sequence.go).
func ListEntries(ctx context.Context, q Querier, f EntryFilter, page Page) ([]core.Entry, string, error) {
	filterKey := fmt.Sprintf("entries by sequence\x00%s\x00%s\x00%d", f.EnvelopeID, f.CommitmentID, f.AfterSequence)
	token, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	after := f.AfterSequence
	if token != "" {
		if after, err = strconv.ParseInt(token, 10, 64); err != nil || after < 0 {
			return nil, "", badPageToken()
		}
	}
	args := []any{after}
	query := "SELECT " + SelectEntryColumns + ", " + SelectEntryLegs + " FROM journal_entries e WHERE e.seq > $1"
	var accounts []string
	if f.EnvelopeID != "" {
		accounts = append(accounts, core.EnvelopeName(f.EnvelopeID))
	}
	if f.CommitmentID != "" {
		accounts = append(accounts, core.CommitmentName(f.CommitmentID))
	}
	for _, account := range accounts {
		args = append(args, account)
		query += fmt.Sprintf(" AND e.id IN (SELECT p.entry_id FROM entry_postings p WHERE p.account = $%d)", len(args))
	}
	type listed struct {
		core.Entry
		legged bool
	}
	rows, next, err := listPage(ctx, q, query+" ORDER BY e.seq",
		args, page.limit(), filterKey, func(s Scanner) (listed, error) {
			var legs entryLegs
			e, err := ScanEntry(withTargets{s, legs.targets()})
			return listed{e, legs.add(&e)}, err
		},
		func(l listed) string { return strconv.FormatInt(l.Sequence, 10) })
	entries, legged := make([]core.Entry, len(rows)), make([]bool, len(rows))
	for i, r := range rows {
		entries[i], legged[i] = r.Entry, r.legged
	}
	if err != nil || len(entries) == 0 {
		return entries, next, err
	}
	// Entries are immutable, so their postings can be read in a second statement.
	return entries, next, readPostingRows(ctx, q, entries, legged)
}

// listPage runs a keyset-paginated query: it asks for one row more than the page to know whether
// another page follows.
func listPage[T any](ctx context.Context, q Querier, query string, args []any, limit int, filterKey string,
	scan func(Scanner) (T, error), key func(T) string) ([]T, string, error) {
	args = append(args, limit+1)
	rs, err := q.Query(ctx, fmt.Sprintf("%s LIMIT $%d", query, len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	defer rs.Close()
	items := make([]T, 0, limit)
	for rs.Next() {
		item, err := scan(rs)
		if err != nil {
			return nil, "", err
		}
		items = append(items, item)
	}
	if err := rs.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodePageToken(key(items[limit-1]), filterKey)
	}
	return items, next, nil
}
