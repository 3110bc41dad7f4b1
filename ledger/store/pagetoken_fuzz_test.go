package store

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// FuzzDecodePageToken protects the page-token decoder against hostile tokens: whatever a client
// sends, decoding never panics, and it either refuses with INVALID_PAGE_TOKEN on the page_token
// field, or returns a non-empty key from a well-formed token made for exactly these filters.
func FuzzDecodePageToken(f *testing.F) {
	f.Add("", "envelopes\x00")
	f.Add(encodePageToken("axis-1", "envelopes\x00fund"), "envelopes\x00fund")
	f.Add(encodePageToken("axis-1", "envelopes\x00fund"), "envelopes\x00")
	f.Add("e30", "envelopes\x00")                              // {}
	f.Add("eyJ2IjoxLCJhIjoieCIsImYiOiIifQ", "entries\x00\x00") // {"v":1,"a":"x","f":""}
	f.Add("!!!!", "commitments\x00\x00")
	f.Add("bnVsbA", "envelopes\x00") // null
	f.Add(encodePageToken("axis\x00", "envelopes\x00"), "envelopes\x00")
	f.Fuzz(func(t *testing.T, token, filterKey string) {
		after, err := decodePageToken(token, filterKey)
		if err != nil {
			var e *core.Error
			if !errors.As(err, &e) || e.Reason != core.ReasonInvalidPageToken || e.Field != "page_token" {
				t.Fatalf("decodePageToken(%q) = %v, want an INVALID_PAGE_TOKEN error on page_token", token, err)
			}
			if after != "" {
				t.Fatalf("decodePageToken(%q) refused the token but returned the key %q", token, after)
			}
			return
		}
		if token == "" {
			if after != "" {
				t.Fatalf("an empty token gave the key %q", after)
			}
			return
		}
		if after == "" {
			t.Fatalf("token %q was accepted with an empty key: it would restart the listing", token)
		}
		if !validCursor(after) {
			t.Fatalf("token %q was accepted with the key %q, which no listing pages by (a NUL reaches PostgreSQL)", token, after)
		}
		// An accepted token is one made for these filters: re-encoding its key gives a token
		// that decodes to the same key.
		if again, err := decodePageToken(encodePageToken(after, filterKey), filterKey); err != nil || again != after {
			t.Fatalf("token %q decodes to %q, but a token made for that key decodes to %q, %v", token, after, again, err)
		}
	})
}

// FuzzPageTokenRoundTrip protects pagination: a token made for a key and filter F decodes to
// that key under F, and is refused under any other filter, so that a token cannot be replayed
// against another listing. Keys are the ids the store pages by (valid UTF-8, short).
func FuzzPageTokenRoundTrip(f *testing.F) {
	f.Add("axis-1", "envelopes\x00fund", "envelopes\x00")
	f.Add("0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", "commitments\x00axis-1\x00", "commitments\x00axis-1\x00siren:1")
	f.Add("0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", "entries\x00axis-1\x00", "entries\x00\x00axis-1")
	f.Add("k", "a\x00b", "a\x00b")
	f.Add("\"quoted\"<key>&", "envelopes\x00", "envelopes")
	f.Fuzz(func(t *testing.T, after, filter, other string) {
		if !validCursor(after) {
			// The store never pages after an empty key, and its keys are ids: printable ASCII
			// (a token holding anything else is refused; see FuzzDecodePageToken).
			t.Skip()
		}
		token := encodePageToken(after, filter)
		if raw, err := base64.RawURLEncoding.DecodeString(token); err != nil {
			t.Fatalf("encodePageToken made a token that is not base64url: %q", token)
		} else if len(raw) > 512 {
			t.Skip() // longer than any key the store has; such a token is refused by design
		}
		got, err := decodePageToken(token, filter)
		if err != nil || got != after {
			t.Fatalf("token for %q under %q decodes to %q, %v", after, filter, got, err)
		}
		if other == filter {
			return
		}
		if got, err := decodePageToken(token, other); !errors.Is(err, core.ErrInvalidPageToken) {
			t.Fatalf("token made under filter %q was accepted under %q: key %q, err %v", filter, other, got, err)
		}
	})
}
