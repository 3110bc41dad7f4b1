package translog

import "testing"

// TestVerifierKeyFromTheSigningKey protects `ledgerd log-key verifier`: the verifier key made
// again from a signing key is the one GenerateKey gave with it, and verifies what it signs; a
// text that is no signing key is refused.
func TestVerifierKeyFromTheSigningKey(t *testing.T) {
	skey, vkey, err := GenerateKey("ledger.test/verifier")
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifierKey(skey + "\n")
	if err != nil || got != vkey {
		t.Fatalf("VerifierKey = %q, %v; want %q", got, err, vkey)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign(3, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(signed, got); err != nil {
		t.Errorf("a checkpoint signed by the key does not verify with the verifier key made again: %v", err)
	}
	for _, bad := range []string{vkey, "", "PRIVATE+KEY+x+00000000+AAAA", skey[:len(skey)-4]} {
		if _, err := VerifierKey(bad); err == nil {
			t.Errorf("VerifierKey(%q) accepted it", bad)
		}
	}
}
