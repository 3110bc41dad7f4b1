package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/server"
)

// TestPublicRefusalsLogged protects the log's promise that every refused request leaves a line
// (docs/http.md, "http request refused"), for the page and the open data too: an unknown
// envelope, a date that does not exist, a method other than GET. A page served leaves none.
func TestPublicRefusalsLogged(t *testing.T) {
	t.Parallel()
	l, err := ledger.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := server.New(l, server.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpHandler(l, srv, nil, false, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/opendata/subventions.csv?envelope=envelopes/nope", http.StatusNotFound},
		{"GET", "/opendata/subventions.csv?envelope=envelopes/x&as_of=2021-02-30", http.StatusBadRequest},
		{"POST", "/opendata/subventions.csv?envelope=envelopes/x", http.StatusMethodNotAllowed},
		{"GET", "/?as_of=bad", http.StatusBadRequest},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
		path, _, _ := strings.Cut(tc.target, "?")
		if rec.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, rec.Code, tc.want)
		}
		logged := false
		for _, line := range strings.Split(logs.String(), "\n") {
			logged = logged || strings.Contains(line, `msg="http request refused" path=`+path+" ") &&
				strings.Contains(line, "http.status="+strconv.Itoa(tc.want))
		}
		if !logged {
			t.Errorf("%s %s: no line says it was refused %d:\n%s", tc.method, tc.target, tc.want, logs)
		}
	}
	before := strings.Count(logs.String(), "http request refused")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK || strings.Count(logs.String(), "http request refused") != before {
		t.Errorf("the page served: %d, and a refusal logged:\n%s", rec.Code, logs)
	}
}
