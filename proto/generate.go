// Package proto holds the API contract of the budget ledger; the Go code generated from it lives
// in proto/budgetledger/v1. Regenerate with `go generate ./proto/`.
package proto

//go:generate sh -c "cd .. && go tool -modfile=tools/go.mod buf generate"
