package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testpki"
	"github.com/budgetledger/budgetledger/server"
)

// TestRefusesToListenBeyondLoopback checks that ledgerd will not serve beyond loopback without
// authentication and TLS, says what is missing and why, and stops before it creates a database.
func TestRefusesToListenBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	database := filepath.Join(dir, "ledger.db")
	_, line, err := server.MintToken("alice", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := testpki.NewCA(t, "ledger test CA").Server(t).WriteFiles(t, dir, "server")
	cases := []struct {
		args    []string
		env     map[string]string
		want    []string
		notWant string
	}{
		{args: []string{"--listen", "0.0.0.0:0"},
			want: []string{"refusing to listen on 0.0.0.0:0", "--tokens-file", "--tls-cert", "--insecure", "docs/security.md"}},
		{args: []string{"--listen", ":0"}, want: []string{"refusing to listen on :0"}},
		{args: []string{"--listen", "[::]:0"}, want: []string{"refusing to listen on [::]:0"}},
		{args: []string{"--listen", "ledger.example:50051"}, want: []string{"refusing to listen on ledger.example:50051"}},
		{env: map[string]string{"LEDGER_LISTEN": "0.0.0.0:0"}, want: []string{"refusing to listen on 0.0.0.0:0"}},
		{args: []string{"--listen", "0.0.0.0:0", "--tokens-file", tokens},
			want: []string{"without TLS", "in clear"}, notWant: "--tokens-file"},
		{args: []string{"--listen", "0.0.0.0:0", "--tls-cert", cert, "--tls-key", key},
			want: []string{"without authentication (--tokens-file)", "anyone who reaches the port"}, notWant: "--tls-cert"},
		{env: map[string]string{"LEDGER_INSECURE": "maybe"}, want: []string{"LEDGER_INSECURE"}},
	}
	for _, tc := range cases {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		err := realMain(context.Background(), append(tc.args, "--database", database), io.Discard)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ledgerd %v (env %v): error %v, want one mentioning %q", tc.args, tc.env, err, want)
			}
		}
		if tc.notWant != "" && err != nil && strings.Contains(err.Error(), tc.notWant) {
			t.Errorf("ledgerd %v: error %v asks for %s, which was given", tc.args, err, tc.notWant)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
	if _, err := os.Stat(database); err == nil {
		t.Error("a refused configuration created the database")
	}
}

// TestRejectsBadSecurityFlags checks the security flags that do not go together.
func TestRejectsBadSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	database := filepath.Join(dir, "ledger.db")
	ca := testpki.NewCA(t, "ledger test CA")
	cert, key := ca.Server(t).WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir)
	rawToken, _, err := server.MintToken("alice", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	pasted := filepath.Join(dir, "pasted")
	if err := os.WriteFile(pasted, []byte(rawToken+" alice admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--tls-cert", cert}, want: "--tls-cert and --tls-key go together"},
		{args: []string{"--tls-key", key}, want: "--tls-cert and --tls-key go together"},
		{args: []string{"--tls-client-ca", caFile}, want: "--tls-client-ca (mutual TLS) needs TLS"},
		{args: []string{"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", caFile}, want: "--tls-client-ca needs --tokens-file"},
		{args: []string{"--tls-cert", cert, "--tls-key", cert}, want: "--tls-cert/--tls-key"},
		{args: []string{"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", notPEM, "--tokens-file", pasted}, want: "--tls-client-ca: no PEM certificate"},
		{args: []string{"--tokens-file", filepath.Join(dir, "missing")}, want: "--tokens-file"},
		{args: []string{"--tokens-file", pasted}, want: "line 1: a credential starts with sha256:"},
		{args: []string{"--rate-limit", "-1"}, want: "--rate-limit must be"},
		{args: []string{"--rate-burst", "5"}, want: "--rate-burst needs --rate-limit"},
		{args: []string{"--rate-limit", "5", "--rate-burst", "-1"}, want: "--rate-burst must not be negative"},
		{env: map[string]string{"LEDGER_RATE_LIMIT": "fast"}, want: "LEDGER_RATE_LIMIT"},
		{env: map[string]string{"LEDGER_RATE_BURST": "lots"}, want: "LEDGER_RATE_BURST"},
	}
	for _, tc := range cases {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		err := realMain(context.Background(), append(tc.args, "--listen", "127.0.0.1:0", "--database", database), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ledgerd %v (env %v): error %v, want one mentioning %q", tc.args, tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), rawToken) {
			t.Errorf("ledgerd %v: the error quotes a token: %v", tc.args, err)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
	if _, err := os.Stat(database); err == nil {
		t.Error("a refused configuration created the database")
	}
}

// TestInsecureListensBeyondLoopback checks that --insecure lets ledgerd serve on every interface
// without authentication or TLS.
func TestInsecureListensBeyondLoopback(t *testing.T) {
	addr, _ := runLedgerd(t, "--listen", "0.0.0.0:0", "--insecure", "--database", filepath.Join(t.TempDir(), "ledger.db"))
	c, err := client.Dial(context.Background(), addr, client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateEnvelope(context.Background(), client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: 1}); err != nil {
		t.Fatalf("CreateEnvelope on an --insecure ledgerd: %v", err)
	}
}

// TestSecureLedgerd runs ledgerd as deployed beyond loopback: on every interface, with a tokens
// file, TLS and mutual TLS, and a rate limit, through its flags; the Go client authenticates by
// token and by certificate; SIGHUP takes a new tokens file and a new server certificate in.
func TestSecureLedgerd(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ledger test CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	adminToken, adminLine, err := server.MintToken("alice", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	tokensFile := filepath.Join(dir, "tokens")
	writeFile(t, tokensFile, adminLine+"\ncert:URI=spiffe://ledger.test/payments payments service\n")
	t.Setenv("LEDGER_TOKENS_FILE", tokensFile) // the variable works as the flag does
	addr, _ := runLedgerd(t, "--listen", "0.0.0.0:0", "--database", filepath.Join(dir, "ledger.db"),
		"--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", ca.WriteFile(t, dir),
		"--rate-limit", "1000", "--rate-burst", "1000")
	ctx := context.Background()
	dial := func(roots *testpki.CA, opts ...client.Option) *client.Client {
		t.Helper()
		c, err := client.Dial(ctx, addr, append([]client.Option{client.WithTLSConfig(trusting(roots)), client.WithRetry(1, 0)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	admin := dial(ca, client.WithToken(adminToken))
	if _, err := admin.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: 30_000_000_00}); err != nil {
		t.Fatalf("CreateEnvelope as admin: %v", err)
	}
	paymentsTLS := trusting(ca)
	paymentsTLS.Certificates = []tls.Certificate{ca.Client(t, "payments", "spiffe://ledger.test/payments").TLS}
	payments, err := client.Dial(ctx, addr, client.WithTLSConfig(paymentsTLS), client.WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer payments.Close()
	award, err := payments.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "guichet-numerique", Amount: 250_000_00})
	if err != nil {
		t.Fatalf("Commit with the payments certificate: %v", err)
	}
	for e, err := range admin.ListJournalEntries(ctx, client.JournalFilter{Commitment: award.GetCommitment().GetName()}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.GetCaller() != "payments" {
			t.Errorf("the award's journal entry has caller %q, want payments", e.GetCaller())
		}
	}
	if _, err := dial(ca).GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("GetEnvelope without a credential: %v, want ErrUnauthenticated", err)
	}

	// SIGHUP: bob's token is added, and the server certificate is replaced by one of a new CA.
	bobToken, bobLine, err := server.MintToken("bob", server.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(ca, client.WithToken(bobToken)).GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("bob before SIGHUP: %v, want ErrUnauthenticated", err)
	}
	writeFile(t, tokensFile, adminLine+"\n"+bobLine+"\n")
	newCA := testpki.NewCA(t, "renewed CA")
	newCert := newCA.Server(t)
	writeFile(t, certFile, string(newCert.CertPEM))
	writeFile(t, keyFile, string(newCert.KeyPEM))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute) // a bound for a hung reload, not a speed
	for {
		_, err := dial(newCA, client.WithToken(bobToken)).GetEnvelope(ctx, "envelopes/axis-1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob, trusting the new CA, after SIGHUP: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func trusting(ca *testpki.CA) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
