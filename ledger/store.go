package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The statements below are the same on SQLite, PostgreSQL and CockroachDB. Every write touches
// rows by primary key or appends, so that transactions on different envelopes do not read each
// other's rows.

func micros(t time.Time) int64     { return t.UnixMicro() }
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// placeholders returns "($n+1, $n+2, …)" for one row of width columns starting after n.
func placeholders(n, width int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i := range width {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", n+i+1)
	}
	b.WriteByte(')')
	return b.String()
}

// maxRowsPerInsert keeps every statement under SQLite's and PostgreSQL's limits on bound
// parameters (32,766 and 65,535).
const maxRowsPerInsert = 500

// maxParamsPerInsert bounds the bound parameters of one multi-row INSERT (see bulkInsert).
const maxParamsPerInsert = 1000

// copyThreshold is the row count from which an engine that can COPY rows in (PostgreSQL) does so
// instead of INSERT: parsing and binding thousands of parameters costs more than the round trip.
const copyThreshold = 100

// copier is a querier that can COPY rows into a table (PostgreSQL).
type copier interface {
	copyRows(ctx context.Context, table string, columns []string, rows [][]any) (bool, error)
}

// bulkInsert writes rows with multi-row INSERT statements (or COPY, for many rows where the engine
// can); a statement that inserts fewer rows than it was given fails the transaction with onShort.
func bulkInsert(ctx context.Context, q querier, table string, columns []string, rows [][]any, suffix string, onShort error) error {
	if c, ok := q.(copier); ok && suffix == "" && len(rows) >= copyThreshold {
		if done, err := c.copyRows(ctx, table, columns, rows); done || err != nil {
			return err
		}
	}
	// SQLite resolves each $N parameter by a linear search of those already seen, so a statement's
	// parse time grows with the square of its parameters: keep each statement to about
	// maxParamsPerInsert of them.
	perStatement := max(1, min(maxRowsPerInsert, maxParamsPerInsert/max(1, len(columns))))
	for start := 0; start < len(rows); start += perStatement {
		chunk := rows[start:min(start+perStatement, len(rows))]
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(columns, ", "))
		args := make([]any, 0, len(chunk)*len(columns))
		for i, row := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(placeholders(len(args), len(columns)))
			args = append(args, row...)
		}
		b.WriteString(suffix)
		want := int64(len(chunk))
		if err := q.write(ctx, b.String(), args, func(n int64) error {
			if n != want {
				return onShort
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// inList returns "$n+1, $n+2, …" and the args for a list of strings.
func inList(n int, values []string) (string, []any) {
	ph := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		ph[i] = fmt.Sprintf("$%d", n+i+1)
		args[i] = v
	}
	return strings.Join(ph, ", "), args
}

// Request log.

type requestRow struct {
	id          string
	fingerprint string
	outcome     outcome
}

func loadRequests(ctx context.Context, q querier, ids []string) (map[string]priorRequest, error) {
	found := map[string]priorRequest{}
	if len(ids) == 0 {
		return found, nil
	}
	list, args := inList(0, ids)
	rs, err := q.query(ctx, "SELECT request_id, fingerprint, outcome FROM requests WHERE request_id IN ("+list+")", args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var id, fp, raw string
		if err := rs.Scan(&id, &fp, &raw); err != nil {
			return nil, err
		}
		var o outcome
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			return nil, internal("request %s has an unreadable outcome: %w", id, err)
		}
		found[id] = priorRequest{fingerprint: fp, outcome: o}
	}
	return found, rs.Err()
}

// insertRequests records decided requests. If another transaction recorded one of the same ids
// first, the insert fails on the primary key (the engines report errRequestRecorded): the
// transaction is rolled back and run again after a fresh look at the request log, so that the
// first outcome is replayed instead of a second decision being made.
func insertRequests(ctx context.Context, q querier, at time.Time, reqs []requestRow) error {
	rows := make([][]any, 0, len(reqs))
	for _, r := range reqs {
		raw, err := r.outcome.encode()
		if err != nil {
			return err
		}
		op := "result"
		if r.outcome.Refusal != nil {
			op = string(r.outcome.Refusal.Reason)
		}
		rows = append(rows, []any{r.id, op, r.fingerprint, string(raw), micros(at)})
	}
	return bulkInsert(ctx, q, "requests", []string{"request_id", "operation", "fingerprint", "outcome", "created_at"},
		rows, "", errRequestRecorded)
}

// Envelopes.

const envelopeColumns = "id, parent_id, display_name, currency, allocation, committed, children_allocated, " +
	"released, commitment_count, created_at, updated_at"

func scanEnvelope(s scanner) (Envelope, error) {
	var (
		e                Envelope
		parent           *string
		created, updated int64
	)
	err := s.Scan(&e.ID, &parent, &e.DisplayName, &e.Currency, &e.Allocation, &e.Committed,
		&e.ChildrenAllocated, &e.Released, &e.CommitmentCount, &created, &updated)
	if parent != nil {
		e.ParentID = *parent
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	return e, err
}

// loadEnvelope reads one envelope, locking its row for the transaction when lock is set.
func (l *Ledger) loadEnvelope(ctx context.Context, q querier, id string, lock bool) (Envelope, error) {
	query := "SELECT " + envelopeColumns + " FROM envelopes WHERE id = $1"
	if lock {
		query += l.eng.forUpdate()
	}
	env, err := scanEnvelope(q.queryRow(ctx, query, id))
	if errors.Is(err, errNoRows) {
		return env, envelopeNotFound(id)
	}
	return env, err
}

// lockEnvelopes reads envelopes and locks their rows for the transaction, in id order, so that
// batches and moves never wait on each other in a cycle. Missing ids are absent from the result.
//
// Each envelope is read by its own primary-key lookup (sent together, one round trip): a query
// for several ids at once is planned as a sequential scan on a small table, and under
// SERIALIZABLE a sequential scan locks the whole table for conflict detection, so every other
// batch's balance update would conflict with it.
func (l *Ledger) lockEnvelopes(ctx context.Context, q querier, ids []string) (map[string]Envelope, error) {
	found := map[string]Envelope{}
	sorted := slices.Sorted(slices.Values(ids))
	argsList := make([][]any, len(sorted))
	for i, id := range sorted {
		argsList[i] = []any{id}
	}
	err := q.queryEach(ctx, "SELECT "+envelopeColumns+" FROM envelopes WHERE id = $1"+l.eng.forUpdate(), argsList,
		func(s scanner) error {
			e, err := scanEnvelope(s)
			if errors.Is(err, errNoRows) {
				return nil
			}
			if err == nil {
				found[e.ID] = e
			}
			return err
		})
	return found, err
}

func insertEnvelope(ctx context.Context, q querier, e *Envelope) error {
	var parent any
	if e.ParentID != "" {
		parent = e.ParentID
	}
	return q.write(ctx, "INSERT INTO envelopes ("+envelopeColumns+") VALUES "+placeholders(0, 11),
		[]any{e.ID, parent, e.DisplayName, e.Currency, e.Allocation, e.Committed, e.ChildrenAllocated,
			e.Released, e.CommitmentCount, micros(e.CreatedAt), micros(e.UpdatedAt)}, nil)
}

func updateEnvelope(ctx context.Context, q querier, e *Envelope) error {
	return q.write(ctx, `UPDATE envelopes SET allocation = $2, committed = $3, children_allocated = $4,
		released = $5, commitment_count = $6, updated_at = $7 WHERE id = $1`,
		[]any{e.ID, e.Allocation, e.Committed, e.ChildrenAllocated, e.Released, e.CommitmentCount, micros(e.UpdatedAt)},
		func(n int64) error {
			if n != 1 {
				return internal("updating envelope %s touched %d rows", e.ID, n)
			}
			return nil
		})
}

// Commitments.

const commitmentColumns = "id, envelope_id, beneficiary, project, currency, amount, released, description, created_at, updated_at, " +
	"eligible_cost, territory, population"

func scanCommitment(s scanner) (Commitment, error) {
	var (
		c                Commitment
		created, updated int64
	)
	err := s.Scan(&c.ID, &c.EnvelopeID, &c.Beneficiary, &c.Project, &c.Currency, &c.Amount, &c.Released,
		&c.Description, &created, &updated, &c.EligibleCost, &c.Territory, &c.Population)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, err
}

func loadCommitments(ctx context.Context, q querier, ids []string) (map[string]*Commitment, error) {
	found := map[string]*Commitment{}
	if len(ids) == 0 {
		return found, nil
	}
	list, args := inList(0, ids)
	rs, err := q.query(ctx, "SELECT "+commitmentColumns+" FROM commitments WHERE id IN ("+list+")", args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		c, err := scanCommitment(rs)
		if err != nil {
			return nil, err
		}
		found[c.ID] = &c
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			return found, commitmentNotFound(id)
		}
	}
	return found, nil
}

func insertCommitments(ctx context.Context, q querier, cs []*Commitment) error {
	rows := make([][]any, 0, len(cs))
	for _, c := range cs {
		rows = append(rows, []any{c.ID, c.EnvelopeID, c.Beneficiary, c.Project, c.Currency, c.Amount, c.Released,
			c.Description, micros(c.CreatedAt), micros(c.UpdatedAt), c.EligibleCost, c.Territory, c.Population})
	}
	return bulkInsert(ctx, q, "commitments", strings.Split(commitmentColumns, ", "), rows, "",
		internal("a commitment was not inserted"))
}

func updateCommitment(ctx context.Context, q querier, c *Commitment) error {
	return q.write(ctx, "UPDATE commitments SET released = $2, updated_at = $3 WHERE id = $1",
		[]any{c.ID, c.Released, micros(c.UpdatedAt)}, func(n int64) error {
			if n != 1 {
				return internal("updating commitment %s touched %d rows", c.ID, n)
			}
			return nil
		})
}

// Journal.

func insertEntries(ctx context.Context, q querier, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rows := make([][]any, 0, len(entries))
	var postings [][]any
	for _, e := range entries {
		// Invariant 1, asserted before anything is written: the postings sum to zero.
		var sum int64
		for i, p := range e.Postings {
			var err error
			if sum, err = addAmount("an entry's postings", sum, p.Amount); err != nil {
				return err
			}
			postings = append(postings, []any{e.ID, i, p.Account, p.Amount})
		}
		if e.Kind == KindRulesChanged {
			if len(e.Postings) != 0 {
				return internal("entry %s changes rules but has postings", e.ID)
			}
		} else if sum != 0 || len(e.Postings) < 2 {
			return internal("entry %s is unbalanced: %d postings summing to %d", e.ID, len(e.Postings), sum)
		}
		rows = append(rows, []any{e.ID, string(e.Kind), e.Currency, e.Caller, e.RequestID, e.Memo, micros(e.CreatedAt)})
	}
	if err := bulkInsert(ctx, q, "journal_entries",
		[]string{"id", "kind", "currency", "caller", "request_id", "memo", "created_at"}, rows, "",
		internal("a journal entry was not inserted")); err != nil {
		return err
	}
	return bulkInsert(ctx, q, "postings", []string{"entry_id", "seq", "account", "amount"}, postings, "",
		internal("a posting was not inserted"))
}

// Reads.

// GetEnvelope returns one envelope.
func (l *Ledger) GetEnvelope(ctx context.Context, id string) (Envelope, error) {
	if err := checkEnvelopeID("name", id); err != nil {
		return Envelope{}, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	env, err := l.loadEnvelope(ctx, l.eng.reader(), id, false)
	return env, l.classify(ctx, err)
}

// GetCommitment returns one commitment.
func (l *Ledger) GetCommitment(ctx context.Context, id string) (Commitment, error) {
	if !commitmentIDPattern.MatchString(id) {
		return Commitment{}, invalidArgument("name", "must name a commitment, commitments/{uuid}")
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	c, err := scanCommitment(l.eng.reader().queryRow(ctx, "SELECT "+commitmentColumns+" FROM commitments WHERE id = $1", id))
	if errors.Is(err, errNoRows) {
		return c, commitmentNotFound(id)
	}
	return c, l.classify(ctx, err)
}

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
func (l *Ledger) ListEnvelopes(ctx context.Context, f EnvelopeFilter, page Page) ([]Envelope, string, error) {
	if f.ParentID != "" {
		if err := checkEnvelopeID("parent", f.ParentID); err != nil {
			return nil, "", err
		}
	}
	filterKey := "envelopes\x00" + f.ParentID
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	args := []any{after}
	query := "SELECT " + envelopeColumns + " FROM envelopes WHERE id > $1"
	if f.ParentID != "" {
		args = append(args, f.ParentID)
		query += " AND parent_id = $2"
	}
	return listPage(ctx, l, query+" ORDER BY id", args, page.limit(), filterKey, scanEnvelope,
		func(e Envelope) string { return e.ID })
}

// CommitmentFilter selects commitments for ListCommitments; empty fields select everything.
type CommitmentFilter struct {
	EnvelopeID  string
	Beneficiary string
}

// ListCommitments returns commitments oldest first and the token of the next page.
func (l *Ledger) ListCommitments(ctx context.Context, f CommitmentFilter, page Page) ([]Commitment, string, error) {
	if f.EnvelopeID != "" {
		if err := checkEnvelopeID("envelope", f.EnvelopeID); err != nil {
			return nil, "", err
		}
	}
	filterKey := "commitments\x00" + f.EnvelopeID + "\x00" + f.Beneficiary
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	args := []any{after}
	query := "SELECT " + commitmentColumns + " FROM commitments WHERE id > $1"
	if f.EnvelopeID != "" {
		args = append(args, f.EnvelopeID)
		query += fmt.Sprintf(" AND envelope_id = $%d", len(args))
	}
	if f.Beneficiary != "" {
		args = append(args, f.Beneficiary)
		query += fmt.Sprintf(" AND beneficiary = $%d", len(args))
	}
	return listPage(ctx, l, query+" ORDER BY id", args, page.limit(), filterKey, scanCommitment,
		func(c Commitment) string { return c.ID })
}

// EntryFilter selects journal entries that post to an envelope and/or a commitment.
type EntryFilter struct {
	EnvelopeID   string
	CommitmentID string
}

// ListEntries returns journal entries oldest first, with their postings, and the token of the
// next page.
func (l *Ledger) ListEntries(ctx context.Context, f EntryFilter, page Page) ([]Entry, string, error) {
	if f.EnvelopeID != "" {
		if err := checkEnvelopeID("envelope", f.EnvelopeID); err != nil {
			return nil, "", err
		}
	}
	if f.CommitmentID != "" && !commitmentIDPattern.MatchString(f.CommitmentID) {
		return nil, "", invalidArgument("commitment", "must name a commitment, commitments/{uuid}")
	}
	filterKey := "entries\x00" + f.EnvelopeID + "\x00" + f.CommitmentID
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	args := []any{after}
	query := "SELECT e.id, e.kind, e.currency, e.caller, e.request_id, e.memo, e.created_at FROM journal_entries e WHERE e.id > $1"
	var accounts []string
	if f.EnvelopeID != "" {
		accounts = append(accounts, EnvelopeName(f.EnvelopeID))
	}
	if f.CommitmentID != "" {
		accounts = append(accounts, CommitmentName(f.CommitmentID))
	}
	for _, account := range accounts {
		args = append(args, account)
		query += fmt.Sprintf(" AND EXISTS (SELECT 1 FROM postings p WHERE p.entry_id = e.id AND p.account = $%d)", len(args))
	}
	scan := func(s scanner) (Entry, error) {
		var (
			e       Entry
			kind    string
			created int64
		)
		err := s.Scan(&e.ID, &kind, &e.Currency, &e.Caller, &e.RequestID, &e.Memo, &created)
		e.Kind, e.CreatedAt = EntryKind(kind), fromMicros(created)
		return e, err
	}
	entries, next, err := listPage(ctx, l, query+" ORDER BY e.id", args, page.limit(), filterKey, scan,
		func(e Entry) string { return e.ID })
	if err != nil || len(entries) == 0 {
		return entries, next, err
	}
	// Entries are immutable, so their postings can be read in a second statement.
	ids := make([]string, len(entries))
	index := map[string]int{}
	for i, e := range entries {
		ids[i] = e.ID
		index[e.ID] = i
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	list, pargs := inList(0, ids)
	rs, err := l.eng.reader().query(ctx, "SELECT entry_id, account, amount FROM postings WHERE entry_id IN ("+list+") ORDER BY entry_id, seq", pargs...)
	if err != nil {
		return nil, "", l.classify(ctx, err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			id string
			p  Posting
		)
		if err := rs.Scan(&id, &p.Account, &p.Amount); err != nil {
			return nil, "", l.classify(ctx, err)
		}
		entries[index[id]].Postings = append(entries[index[id]].Postings, p)
	}
	return entries, next, l.classify(ctx, rs.Err())
}

// listPage runs a keyset-paginated query: it asks for one row more than the page to know whether
// another page follows.
func listPage[T any](ctx context.Context, l *Ledger, query string, args []any, limit int, filterKey string,
	scan func(scanner) (T, error), key func(T) string) ([]T, string, error) {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	args = append(args, limit+1)
	rs, err := l.eng.reader().query(ctx, fmt.Sprintf("%s LIMIT $%d", query, len(args)), args...)
	if err != nil {
		return nil, "", l.classify(ctx, err)
	}
	defer rs.Close()
	items := make([]T, 0, limit)
	for rs.Next() {
		item, err := scan(rs)
		if err != nil {
			return nil, "", l.classify(ctx, err)
		}
		items = append(items, item)
	}
	if err := rs.Err(); err != nil {
		return nil, "", l.classify(ctx, err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodePageToken(key(items[limit-1]), filterKey)
	}
	return items, next, nil
}
