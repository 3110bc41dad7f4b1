package translog

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// memNodes keeps a tree's nodes in memory, as the store keeps them in tlog_hashes.
type memNodes map[NodeID][]byte

func (m memNodes) read(ids []NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m[id]
		if !ok {
			return nil, fmt.Errorf("node %v missing", id)
		}
		out[i] = h
	}
	return out, nil
}

func sampleEntries(n int) []core.Entry {
	var entries []core.Entry
	at := time.Date(2021, 3, 1, 9, 0, 0, 123456000, time.UTC)
	for i := range n {
		entries = append(entries, core.Entry{ID: fmt.Sprintf("0190f7a2-8f7b-7c1d-9b1e-%012d", i), Sequence: int64(i + 1),
			Kind: core.KindCommitted, Currency: "EUR", Caller: "service:instructeur", RequestID: fmt.Sprintf("req-%d", i),
			Memo: "Numérique — commune n° " + strconv.Itoa(i), CreatedAt: at.Add(time.Duration(i) * time.Second),
			Postings: []core.Posting{{Account: "envelopes/axis-3", Amount: -int64(1000 + i)}, {Account: "commitments/x", Amount: int64(1000 + i)}}})
	}
	return entries
}

// TestPythonVerifierAgrees is the second-language check of issue 14: examples/python/transparency.py,
// with only the standard library, recomputes the leaves of entries given as the API's JSON,
// verifies the checkpoint's Ed25519 signature as a signed note, and follows inclusion proofs to
// the signed root, on vectors made here; it refuses a forged checkpoint and a forged entry. It
// runs where python3 is installed.
func TestPythonVerifierAgrees(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	skey, vkey, err := GenerateKey("ledger.test/python")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	entries := sampleEntries(13)
	nodes := memNodes{}
	r := Factory.NewEmptyRange(0)
	for _, e := range entries {
		if err := r.Append(LeafHash(e), func(id NodeID, h []byte) { nodes[id] = h }); err != nil {
			t.Fatal(err)
		}
	}
	size := uint64(len(entries))
	root, err := Root(size, nodes.read)
	if err != nil {
		t.Fatal(err)
	}
	note, err := signer.Sign(size, root)
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		Entry map[string]any `json:"entry"`
		Proof map[string]any `json:"proof"`
	}
	var items []item
	for _, e := range entries {
		hashes, err := InclusionProof(uint64(e.Sequence-1), size, nodes.read)
		if err != nil {
			t.Fatal(err)
		}
		var b64 []string
		for _, h := range hashes {
			b64 = append(b64, base64.StdEncoding.EncodeToString(h))
		}
		var postings []map[string]any
		for _, p := range e.Postings {
			postings = append(postings, map[string]any{"account": p.Account, "amount": strconv.FormatInt(p.Amount, 10)})
		}
		// The entry as the API's JSON gives it (protojson field names).
		items = append(items, item{
			Entry: map[string]any{"name": "journalEntries/" + e.ID, "kind": "ENTRY_KIND_" + string(e.Kind), "currencyCode": e.Currency,
				"caller": e.Caller, "requestId": e.RequestID, "memo": e.Memo, "createTime": e.CreatedAt.Format(time.RFC3339Nano),
				"effectiveTime": cmp.Or(e.EffectiveAt, e.CreatedAt).Format(time.RFC3339Nano),
				"sequence":      strconv.FormatInt(e.Sequence, 10), "postings": postings},
			Proof: map[string]any{"leaf": base64.StdEncoding.EncodeToString(EncodeLeaf(e)), "leaf_index": e.Sequence - 1, "hashes": b64},
		})
	}
	vectors, err := json.Marshal(map[string]any{"verifier_key": vkey, "checkpoint": string(note), "items": items})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vectors.json")
	if err := os.WriteFile(path, vectors, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "../../examples/python/transparency.py", "--selftest", path).CombinedOutput()
	if err != nil {
		t.Fatalf("the Python verifier: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestLeafRoundTrip: the canonical encoding reads back to the entry it was made of.
func TestLeafRoundTrip(t *testing.T) {
	for _, e := range sampleEntries(3) {
		got, ok := DecodeLeaf(EncodeLeaf(e))
		if !ok || got.ID != e.ID || got.Memo != e.Memo || !got.CreatedAt.Equal(e.CreatedAt) || len(got.Postings) != 2 || got.Postings[0] != e.Postings[0] {
			t.Fatalf("DecodeLeaf(EncodeLeaf(%+v)) = %+v, %v", e, got, ok)
		}
	}
	if _, ok := DecodeLeaf([]byte{1, 0, 0}); ok {
		t.Fatal("a truncated leaf decoded")
	}
}
