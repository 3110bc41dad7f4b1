package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testpki"
	"github.com/budgetledger/budgetledger/server"
)

// TestMetricsListenBindRule protects the metrics endpoint as --listen is protected: beyond
// loopback it needs authentication and TLS, or --insecure, since it shows every envelope's
// available amount.
func TestMetricsListenBindRule(t *testing.T) {
	dir := t.TempDir()
	_, line, err := server.MintToken("prometheus", server.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	writeFile(t, tokens, line+"\n")
	cert, key := testpki.NewCA(t, "ledger test CA").Server(t).WriteFiles(t, dir, "server")
	for _, tc := range []struct {
		args    []string
		refused bool
	}{
		{args: []string{"--metrics-listen", "0.0.0.0:9090"}, refused: true},
		{args: []string{"--metrics-listen", ":9090", "--tokens-file", tokens}, refused: true},
		{args: []string{"--metrics-listen", "0.0.0.0:9090", "--insecure"}},
		{args: []string{"--metrics-listen", "127.0.0.1:9090"}},
		{args: []string{"--metrics-listen", "0.0.0.0:9090", "--tokens-file", tokens, "--tls-cert", cert, "--tls-key", key}},
	} {
		_, err := parseFlags(append([]string{"--listen", "127.0.0.1:0"}, tc.args...), io.Discard)
		switch {
		case tc.refused && (err == nil || !strings.Contains(err.Error(), "--metrics-listen") || !strings.Contains(err.Error(), "available amount")):
			t.Errorf("%q: %v, want a refusal naming --metrics-listen and what it would expose", tc.args, err)
		case !tc.refused && err != nil:
			t.Errorf("%q: %v, want it accepted", tc.args, err)
		}
	}
}

// TestMetricsNeedCredential protects the metrics endpoint's authentication: with a tokens file,
// a scrape needs a bearer token or a client certificate of that file, as a call does; without
// one, or with an unknown token, it is refused 401 and logged.
func TestMetricsNeedCredential(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ledger test CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	token, line, err := server.MintToken("prometheus", server.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	writeFile(t, tokens, line+"\ncert:CN=scraper scraper auditor\n")
	_, logged := runLedgerd(t, "--listen", "127.0.0.1:0", "--database", filepath.Join(dir, "ledger.db"),
		"--metrics-listen", "127.0.0.1:0", "--tokens-file", tokens,
		"--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", ca.WriteFile(t, dir))
	m := metricsLine.FindStringSubmatch(logged)
	if m == nil || !strings.HasPrefix(m[1], "https://") {
		t.Fatalf("ledgerd did not log an https metrics address:\n%s", logged)
	}
	scrape := func(header string, certs ...tls.Certificate) (int, string) {
		t.Helper()
		tc := trusting(ca)
		tc.Certificates = certs
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		defer c.CloseIdleConnections()
		req, err := http.NewRequest("GET", m[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	stranger, _, _ := server.MintToken("mallory", server.RoleAdmin)
	if code, body := scrape(""); code != http.StatusUnauthorized || strings.Contains(body, "go_goroutines") {
		t.Errorf("scrape without a credential: %d, want 401 and no metrics", code)
	}
	if code, _ := scrape("Bearer " + stranger); code != http.StatusUnauthorized {
		t.Errorf("scrape with an unknown token: %d, want 401", code)
	}
	if code, body := scrape("Bearer " + token); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("scrape with a token of the file: %d, want 200 and the metrics", code)
	}
	if code, body := scrape("", ca.Client(t, "scraper").TLS); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("scrape with a client certificate of the file: %d, want 200 and the metrics", code)
	}
}

// TestVersion protects --version: it prints the module version and the commit of the build,
// read from the build information (the real binary is built as go build does, with VCS stamping).
func TestVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "f6606eb0"}, {Key: "vcs.time", Value: "2026-12-01T06:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := formatVersion(bi), "ledgerd v1.2.3 commit f6606eb0 (modified) 2026-12-01T06:00:00Z go1.26.0"; got != want {
		t.Errorf("formatVersion = %q, want %q", got, want)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !st.IsDir() {
		t.Skip("a git worktree (.git is a file): the go command stamps no VCS information there; a clone (as in CI) has it")
	}
	bin := filepath.Join(t.TempDir(), "ledgerd")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("ledgerd --version: %v", err)
	}
	if !strings.Contains(string(out), "commit "+strings.TrimSpace(string(head))) {
		t.Errorf("ledgerd --version = %q, want the commit %s", out, head)
	}
}
