package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testpki"
	"github.com/budgetledger/budgetledger/server"
)

// dialClient connects the repository's Go client, without retries so that a refused handshake
// fails at once.
func dialClient(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, append([]client.Option{client.WithRetry(1, 0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func trusting(ca *testpki.CA, certs ...testpki.Cert) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	for _, c := range certs {
		cfg.Certificates = append(cfg.Certificates, c.TLS)
	}
	return cfg
}

// journalCallers lists the callers of the journal entries of an envelope.
func journalCallers(t *testing.T, c *client.Client, envelope string) []string {
	t.Helper()
	var callers []string
	for e, err := range c.ListJournalEntries(context.Background(), client.JournalFilter{Envelope: envelope}) {
		if err != nil {
			t.Fatalf("ListJournalEntries: %v", err)
		}
		callers = append(callers, e.GetCaller())
	}
	return callers
}

// TestTLSWithTokens runs the Go client over TLS (a test CA, a server certificate for 127.0.0.1)
// with bearer tokens: the tokens authenticate and authorize; a call without one, a plaintext
// client and a client that does not trust the server's CA are all refused.
func TestTLSWithTokens(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ledger test CA")
	a := startAuth(t, server.Config{TLS: &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, MinVersion: tls.VersionTLS12}})
	ctx := context.Background()

	admin := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca)), client.WithToken(a.tokens[server.RoleAdmin]))
	if _, err := admin.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: 30 * million}); err != nil {
		t.Fatalf("CreateEnvelope as admin over TLS: %v", err)
	}
	service := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca)), client.WithToken(a.tokens[server.RoleService]))
	if _, err := service.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "guichet-numerique", Amount: 250_000_00}); err != nil {
		t.Fatalf("Commit as service over TLS: %v", err)
	}
	if _, err := service.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-2", Allocation: 1}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("CreateEnvelope as service: %v, want ErrPermissionDenied", err)
	}
	auditor := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca)), client.WithToken(a.tokens[server.RoleAuditor]))
	if got := journalCallers(t, auditor, "envelopes/axis-1"); len(got) != 2 || got[0] != "alice" || got[1] != "billing" {
		t.Errorf("journal callers = %v, want [alice billing]", got)
	}

	anonymous := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca)))
	if _, err := anonymous.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("GetEnvelope without a token: %v, want ErrUnauthenticated", err)
	}
	plaintext := dialClient(t, a.addr, client.WithInsecure(), client.WithToken(a.tokens[server.RoleAdmin]))
	if _, err := plaintext.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("GetEnvelope in plaintext from a TLS server: %v, want ErrUnavailable", err)
	}
	distrustful := dialClient(t, a.addr, client.WithTLSConfig(trusting(testpki.NewCA(t, "another CA"))),
		client.WithToken(a.tokens[server.RoleAdmin]))
	if _, err := distrustful.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("GetEnvelope from a client that does not trust the server's CA: %v, want ErrUnavailable", err)
	}
}

// TestMutualTLS runs the Go client with client certificates: a URI SAN (SPIFFE ID) or a common
// name maps to a principal through the tokens file, the URI SAN first; the principal is the
// journal's caller; a certificate the file does not know is UNAUTHENTICATED, one from another
// CA fails the handshake; a bearer token sent with a certificate wins over it.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ledger clients CA")
	a := startAuth(t, server.Config{TLS: &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t).TLS},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}},
		"cert:URI=spiffe://ledger.test/payments payments service",
		"cert:CN=reporting reports auditor",
	)
	ctx := context.Background()

	// Token holders still come in without a certificate.
	admin := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca)), client.WithToken(a.tokens[server.RoleAdmin]))
	if _, err := admin.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Allocation: 30 * million}); err != nil {
		t.Fatalf("CreateEnvelope as admin (token, no certificate): %v", err)
	}

	// The URI SAN names the principal, though the CN is another known one.
	payments := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca, ca.Client(t, "reporting", "spiffe://ledger.test/payments"))))
	if _, err := payments.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "guichet-numerique", Amount: 250_000_00}); err != nil {
		t.Fatalf("Commit with the payments certificate: %v", err)
	}

	reportingCert := ca.Client(t, "reporting")
	reports := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca, reportingCert)))
	if got := journalCallers(t, reports, "envelopes/axis-1"); len(got) != 2 || got[0] != "alice" || got[1] != "payments" {
		t.Errorf("journal callers = %v, want [alice payments]", got)
	}
	if _, err := reports.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
		Project: "p", Amount: 1}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("Commit with the auditor's certificate: %v, want ErrPermissionDenied", err)
	}

	stranger := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca, ca.Client(t, "stranger", "spiffe://ledger.test/stranger"))))
	if _, err := stranger.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("GetEnvelope with a certificate the tokens file does not know: %v, want ErrUnauthenticated", err)
	}
	// A certificate of another CA: Go's TLS client keeps it for itself, as the server does not
	// name that CA (the call then has no credential); sent anyway, it fails the handshake.
	forgedCert := testpki.NewCA(t, "another CA").Client(t, "reporting")
	unsent := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca, forgedCert)))
	if _, err := unsent.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("GetEnvelope with a certificate of another CA: %v, want ErrUnauthenticated", err)
	}
	forcedTLS := trusting(ca)
	forcedTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &forgedCert.TLS, nil }
	forced := dialClient(t, a.addr, client.WithTLSConfig(forcedTLS))
	if _, err := forced.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("GetEnvelope sending a certificate of another CA: %v, want ErrUnavailable (handshake refused)", err)
	}

	// A token sent with a certificate decides, good or bad.
	both := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca, reportingCert)), client.WithToken(a.tokens[server.RoleAdmin]))
	if _, err := both.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-2", Allocation: 1}); err != nil {
		t.Errorf("CreateEnvelope with the auditor's certificate and the admin's token: %v", err)
	}
	unknown, _, err := server.MintToken("mallory", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	badToken := dialClient(t, a.addr, client.WithTLSConfig(trusting(ca, reportingCert)), client.WithToken(unknown))
	if _, err := badToken.GetEnvelope(ctx, "envelopes/axis-1"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("GetEnvelope with a good certificate and an unknown token: %v, want ErrUnauthenticated", err)
	}
}
