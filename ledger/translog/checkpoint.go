package translog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, a tree size and the root
// hash of the tree of that size.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// Marshal is the checkpoint body: "<origin>\n<size>\n<base64 root>\n".
func (c Checkpoint) Marshal() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// ParseCheckpoint reads a checkpoint body (extension lines, if any, are ignored).
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	lines := strings.SplitN(string(text), "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, errors.New("a checkpoint has at least three lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (lines[1] != "0" && strings.HasPrefix(lines[1], "0")) {
		return Checkpoint{}, fmt.Errorf("checkpoint tree size %q is not a decimal number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return Checkpoint{}, fmt.Errorf("checkpoint root hash %q is not a base64 SHA-256 hash", lines[2])
	}
	if lines[0] == "" {
		return Checkpoint{}, errors.New("a checkpoint's origin is not empty")
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// GenerateKey makes a new Ed25519 signing key for the log named origin, as note key strings:
// skey (secret, "PRIVATE+KEY+origin+…") and vkey (the verifier key, "origin+hash+…") to publish.
func GenerateKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}

// VerifierKey returns the verifier key of the signing key skey (GenerateKey's vkey for it): the
// key to publish, made again from the signing key kept.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(algorithm, seed): note's own format (golang.org/x/mod/sumdb/note).
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("reading the log's signing key: not a signing key (PRIVATE+KEY+…)")
	}
	if _, err := note.NewSigner(strings.TrimSpace(skey)); err != nil {
		return "", fmt.Errorf("reading the log's signing key: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("reading the log's signing key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("reading the log's signing key: %w", err)
	}
	if !strings.HasPrefix(vkey, parts[2]+"+"+parts[3]+"+") {
		return "", errors.New("reading the log's signing key: its hash does not match its key")
	}
	return vkey, nil
}

// Signer signs checkpoints of the log. Its origin is the name of its key.
type Signer struct{ s note.Signer }

// NewSigner reads a signing key (the skey of GenerateKey).
func NewSigner(skey string) (*Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("reading the log's signing key: %w", err)
	}
	return &Signer{s: s}, nil
}

// Origin is the log's name, the first line of its checkpoints.
func (s *Signer) Origin() string { return s.s.Name() }

// Sign returns the signed note of the checkpoint of a tree of size leaves with the given root.
func (s *Signer) Sign(size uint64, root []byte) ([]byte, error) {
	body := Checkpoint{Origin: s.s.Name(), Size: size, Root: root}.Marshal()
	return note.Sign(&note.Note{Text: string(body)}, s.s)
}

// CheckVerifierKey reports whether vkey can be read as a verifier key, before it is used.
func CheckVerifierKey(vkey string) error {
	if _, err := note.NewVerifier(strings.TrimSpace(vkey)); err != nil {
		return fmt.Errorf("reading the verifier key: %w", err)
	}
	return nil
}

// OpenCheckpoint verifies a signed checkpoint with the verifier key vkey and returns its body.
// The origin must be the key's name. The newlines after the note's last signature line are not
// part of what is signed: a note ends with one, and one more (`jq -r`, an editor) or none
// (`jq -j`) is read as that one.
func OpenCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("reading the verifier key: %w", err)
	}
	n, err := note.Open(asNote(signed), note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("the checkpoint's signature does not verify: %w", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("the checkpoint is of log %q, the key of %q", c.Origin, v.Name())
	}
	return c, nil
}

// SameRoot reports whether two hashes are equal.
func SameRoot(a, b []byte) bool { return bytes.Equal(a, b) }

// UnverifiedCheckpoint returns the body of a signed checkpoint without checking its signature:
// the note's text, before the blank line that starts its signatures. For a reader without the
// verifier key (ledgerd verify without --log-verifier-key), who can still hold the note's size
// and root to what the log stores; what it says is not proven.
func UnverifiedCheckpoint(signed []byte) (Checkpoint, error) {
	// With no verifier known, note.Open parses the note and answers it unverified.
	_, err := note.Open(asNote(signed), note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return Checkpoint{}, fmt.Errorf("the checkpoint is not a signed note: %v", err)
	}
	return ParseCheckpoint([]byte(unverified.Note.Text))
}

// asNote is a signed note as saved, ending in exactly one newline: the newlines after its last
// signature line are not part of what is signed (a note ends with one, and one more, from
// `jq -r` or an editor, or none, from `jq -j`, is read as that one).
func asNote(signed []byte) []byte {
	body := bytes.TrimRight(signed, "\r\n")
	return append(body[:len(body):len(body)], '\n')
}
