// Package faults holds the budget ledger's fault-injection tests. They build the real ledgerd
// binary, run it as a child process against SQLite and PostgreSQL, and inject faults while clients
// make awards, releases and allocation moves through the Go client with retries:
//
//   - ledgerd killed with SIGKILL and restarted on the same port and database (TestSIGKILL);
//   - a PostgreSQL server of the test's own stopped in immediate mode and started again
//     (TestPostgresRestart);
//   - ledgerd stopped with SIGTERM under load (TestSIGTERM);
//   - calls that time out on the client side and are retried with the same request id
//     (TestClientTimeouts);
//   - two ledgerd processes on one database killed in turn while holds expire and are confirmed
//     and cancelled (TestHoldsSIGKILL): every hold ends in one final state, once;
//   - a bank-style conservation check with concurrent moves, awards and releases, with ledgerd
//     killed along the way (TestBank).
//
// After every fault they check that every acknowledged operation is in the ledger exactly once,
// that nothing unacknowledged is half-applied, and that ledger.Verify finds no discrepancy.
//
// The tests sit behind the build tag faults, bounded in count and time:
//
//	LEDGER_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	    go test -tags faults -race -count=1 ./internal/faults/
//
// FAULTS_FIGURES=path writes the figures of the run as a Markdown table (see docs/reliability.md).
package faults
