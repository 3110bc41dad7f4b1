package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// What an award costs, from deterministic counters rather than the clock: CPU time from the
// processes' own counters (getrusage for this process, /proc/PID/stat for a ledgerd child and for
// PostgreSQL's backends) and storage from PostgreSQL's relation sizes after VACUUM FULL. On a
// shared machine awards/s move with the neighbours' load; CPU per award and bytes per award
// much less.

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// selfCPU is the user+system CPU time of this process (the load generator, and the in-process
// ledgerd if there is one).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user+system CPU time of process pid, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(raw))
}

// parseProcStat reads utime and stime (fields 14 and 15) from a /proc/PID/stat line. The command
// name (field 2, in parentheses) may hold spaces and parentheses: fields are counted from the
// last ')'.
func parseProcStat(line string) (time.Duration, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	fields := strings.Fields(line[end+1:]) // fields[0] is field 3, the state
	if len(fields) < 13 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// pgBackends samples the CPU time of the PostgreSQL backends serving the benchmark's database
// (the client backends of pg_stat_activity on that database, other than its own connection).
// PostgreSQL must run on this machine, under a user whose /proc entries are readable. The
// server's shared processes (WAL writer, checkpointer) are not counted: other databases of the
// same server use them too.
type pgBackends struct{ conn *pgx.Conn }

func openPGBackends(ctx context.Context, dsn string) (*pgBackends, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &pgBackends{conn: conn}, nil
}

func (p *pgBackends) Close() { p.conn.Close(context.Background()) }

// sample returns the CPU time of each backend by pid; backends whose /proc entry cannot be read
// are left out.
func (p *pgBackends) sample(ctx context.Context) (map[int]time.Duration, error) {
	rows, err := p.conn.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if cpu, err := procCPU(int(pid)); err == nil {
			out[int(pid)] = cpu
		}
	}
	return out, nil
}

// cpuSpent is the CPU the backends of after spent since before: a backend started in between is
// counted whole (it did nothing before), one gone in between is lost (a pooled connection closed
// during the run: rare).
func cpuSpent(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid]
	}
	return d
}

// cpuMeter samples, at the start and end of a phase, this process, the ledgerd child (when
// ledgerdPID is set) and PostgreSQL's backends (when pg is set).
type cpuMeter struct {
	ledgerdPID int
	pg         *pgBackends
}

type cpuSample struct {
	self, ledgerd time.Duration
	pg            map[int]time.Duration
}

func (m cpuMeter) sample(ctx context.Context) cpuSample {
	s := cpuSample{self: selfCPU()}
	if m.ledgerdPID > 0 {
		s.ledgerd, _ = procCPU(m.ledgerdPID)
	}
	if m.pg != nil {
		s.pg, _ = m.pg.sample(ctx)
	}
	return s
}

// cpuCost is the CPU spent between two samples, in microseconds per operation.
type cpuCost struct {
	Self, Ledgerd, Postgres float64
}

func (m cpuMeter) cost(before, after cpuSample, ops int64) cpuCost {
	if ops <= 0 {
		return cpuCost{}
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(ops) }
	c := cpuCost{Self: per(after.self - before.self)}
	if m.ledgerdPID > 0 {
		c.Ledgerd = per(after.ledgerd - before.ledgerd)
	}
	if m.pg != nil {
		c.Postgres = per(cpuSpent(before.pg, after.pg))
	}
	return c
}

// tableSize is one table's share of the storage, after VACUUM FULL.
type tableSize struct {
	Table      string `json:"table"`
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`       // heap and TOAST
	IndexBytes int64  `json:"index_bytes"` // every index of the table
}

// measureStorage runs VACUUM FULL on every table of the database's current schema and returns
// their sizes, largest first, and the number of commitments (awards) they hold.
func measureStorage(ctx context.Context, dsn string) ([]tableSize, int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY 1`)
	if err != nil {
		return nil, 0, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, 0, err
	}
	var sizes []tableSize
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "VACUUM FULL "+pgx.Identifier{t}.Sanitize()); err != nil {
			return nil, 0, fmt.Errorf("VACUUM FULL %s: %w", t, err)
		}
		s := tableSize{Table: t}
		if err := conn.QueryRow(ctx, `SELECT pg_relation_size(c.oid) + coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
			pg_indexes_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = $1 AND n.nspname = current_schema()`, t).Scan(&s.Bytes, &s.IndexBytes); err != nil {
			return nil, 0, err
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&s.Rows); err != nil {
			return nil, 0, err
		}
		sizes = append(sizes, s)
	}
	var awards int64
	for _, s := range sizes {
		if s.Table == "commitments" {
			awards = s.Rows
		}
	}
	slices.SortStableFunc(sizes, func(a, b tableSize) int {
		return cmp.Compare(b.Bytes+b.IndexBytes, a.Bytes+a.IndexBytes)
	})
	return sizes, awards, nil
}

// isPostgres reports whether a --database value names a PostgreSQL server.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
