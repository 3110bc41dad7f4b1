package translog

import (
	"bytes"
	"testing"
)

// TestCheckpointAsSavedByHand protects the recipe of docs/transparency.md that saves a
// checkpoint with `jq -r .checkpoint > checkpoint.txt`: jq adds a newline to the note's own (and
// `jq -j` drops it), and the note still verifies; a note changed anywhere else, or signed by another key, does not.
func TestCheckpointAsSavedByHand(t *testing.T) {
	skey, vkey, err := GenerateKey("ledger.test/saved")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign(42, Hasher.EmptyRoot())
	if err != nil {
		t.Fatal(err)
	}
	for _, saved := range [][]byte{signed, append(bytes.Clone(signed), '\n'), append(bytes.Clone(signed), "\n\n"...), bytes.TrimRight(signed, "\n")} {
		if c, err := OpenCheckpoint(saved, vkey); err != nil || c.Size != 42 {
			t.Errorf("OpenCheckpoint(%q) = %+v, %v", saved, c, err)
		}
	}
	_, otherKey, _ := GenerateKey("ledger.test/saved")
	for _, bad := range [][]byte{bytes.Replace(signed, []byte("42"), []byte("43"), 1), signed[:len(signed)-10]} {
		if _, err := OpenCheckpoint(bad, vkey); err == nil {
			t.Errorf("OpenCheckpoint(%q) verified", bad)
		}
	}
	if _, err := OpenCheckpoint(signed, otherKey); err == nil {
		t.Error("a checkpoint verified with another key")
	}
}
