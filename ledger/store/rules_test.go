package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// TestEffectiveRulesOfSeveralEnvelopes protects the rules a batch on several envelopes decides
// with (EffectiveRules; on PostgreSQL one statement for all the envelopes of their chains): for
// each envelope, at each time, the rule set in force on each envelope of its chain is the one of
// latest effective time not after it, the greatest id among those of that time, merged nearest
// first. Times before, at, between and after the rule sets' effective times; a rule set taking
// effect in the future; two of the same time; an envelope without rules; a parent's rules. On
// PostgreSQL the rules are read through their key, never by a sequential scan.
func TestEffectiveRulesOfSeveralEnvelopes(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		at := func(days int) time.Time { return t0.AddDate(0, 0, days) }
		bps := func(v int64) *int64 { return &v }
		envs := []core.Envelope{
			{ID: "root", DisplayName: "Root", Currency: "EUR", Allocation: 100, CreatedAt: t0, UpdatedAt: t0},
			{ID: "axis-a", ParentID: "root", DisplayName: "A", Currency: "EUR", CreatedAt: t0, UpdatedAt: t0},
			{ID: "axis-b", DisplayName: "B", Currency: "EUR", CreatedAt: t0, UpdatedAt: t0},
			{ID: "axis-c", DisplayName: "C", Currency: "EUR", CreatedAt: t0, UpdatedAt: t0},
		}
		sets := []core.RuleSet{
			{ID: "rs-1", EnvelopeID: "root", EffectiveFrom: at(0), Rules: core.Rules{MaxFundingShareBPS: bps(5_000)}},
			{ID: "rs-2", EnvelopeID: "root", EffectiveFrom: at(20), Rules: core.Rules{MinPopulation: bps(1_000)}},
			{ID: "rs-3", EnvelopeID: "axis-a", EffectiveFrom: at(10), Rules: core.Rules{MaxFundingShareBPS: bps(7_500)}},
			{ID: "rs-4", EnvelopeID: "axis-a", EffectiveFrom: at(10), Rules: core.Rules{MaxFundingShareBPS: bps(8_000)}},
			{ID: "rs-5", EnvelopeID: "axis-a", EffectiveFrom: at(30), Rules: core.Rules{MinPopulation: bps(300)}},
			{ID: "rs-6", EnvelopeID: "axis-b", EffectiveFrom: at(10), Rules: core.Rules{MinPopulation: bps(500_000)}},
		}
		if err := db.ReadWrite(ctx, func(q Querier) error {
			for i := range envs {
				if err := InsertEnvelope(ctx, q, &envs[i]); err != nil {
					return err
				}
			}
			for i := range sets {
				sets[i].Call, sets[i].Caller, sets[i].RequestID = "call", "alice", fmt.Sprintf("r-%d", i)
				sets[i].CreatedAt = t0
				if err := InsertRuleSet(ctx, q, &sets[i]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		chains := map[string][]string{"root": {"root"}, "axis-a": {"axis-a", "root"}, "axis-b": {"axis-b"}, "axis-c": {"axis-c"}}
		want := func(when time.Time) map[string]*core.EffectiveRules {
			inForce := map[string]*core.RuleSet{}
			for i := range sets {
				rs := &sets[i]
				cur := inForce[rs.EnvelopeID]
				if !rs.EffectiveFrom.After(when) && (cur == nil || rs.EffectiveFrom.After(cur.EffectiveFrom) ||
					rs.EffectiveFrom.Equal(cur.EffectiveFrom) && rs.ID > cur.ID) {
					inForce[rs.EnvelopeID] = rs
				}
			}
			out := map[string]*core.EffectiveRules{}
			for id, chain := range chains {
				out[id] = core.Effective(chain, inForce)
			}
			return out
		}
		var parents ParentCache
		for _, days := range []int{-1, 0, 5, 10, 15, 20, 29, 30, 40} {
			when := at(days)
			var got map[string]*core.EffectiveRules
			var seqScans int64
			err := db.ReadWrite(ctx, func(q Querier) error {
				count := func() (n int64, err error) {
					if db.Name() == "postgres" {
						err = q.QueryRow(ctx, `SELECT COALESCE(sum(seq_scan), 0) FROM pg_stat_xact_user_tables
							WHERE relname = 'envelope_rules'`).Scan(&n)
					}
					return n, err
				}
				before, err := count()
				if err != nil {
					return err
				}
				if got, err = parents.EffectiveRules(ctx, q, envs, when); err != nil {
					return err
				}
				after, err := count()
				seqScans = after - before
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if w := want(when); !reflect.DeepEqual(got, w) {
				t.Errorf("day %d: effective rules\n%s\nwant\n%s", days, describeRules(got), describeRules(w))
			}
			if seqScans != 0 {
				t.Errorf("day %d: reading the rules of 4 envelopes made %d sequential scans; want them read by their key", days, seqScans)
			}
		}
	})
}

func describeRules(m map[string]*core.EffectiveRules) string {
	s := ""
	for _, id := range []string{"root", "axis-a", "axis-b", "axis-c"} {
		r := m[id]
		if r == nil {
			s += fmt.Sprintf("  %s: none\n", id)
			continue
		}
		name := func(rs *core.RuleSet) string {
			if rs == nil {
				return "-"
			}
			return rs.ID
		}
		s += fmt.Sprintf("  %s: share %d (%s), population %d (%s)\n", id, r.MaxFundingShareBPS, name(r.MaxFundingShareSet),
			r.MinPopulation, name(r.MinPopulationSet))
	}
	return s
}
