package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// A page token is opaque to clients: base64url of a small JSON document holding the key of the
// last item returned and a digest of the filters it was made for. A token used with other filters,
// or that does not decode, is refused with INVALID_PAGE_TOKEN. A hand-made token can only move the
// cursor within what the caller may list anyway, so it is not signed.
type pageToken struct {
	V      int    `json:"v"`
	After  string `json:"a"`
	Filter string `json:"f"`
}

const pageTokenVersion = 1

func filterDigest(filterKey string) string {
	h := sha256.Sum256([]byte(filterKey))
	return hex.EncodeToString(h[:8])
}

func encodePageToken(after, filterKey string) string {
	raw, _ := json.Marshal(pageToken{V: pageTokenVersion, After: after, Filter: filterDigest(filterKey)})
	return base64.RawURLEncoding.EncodeToString(raw)
}

// decodePageToken returns the key to list after ("" for the first page).
func decodePageToken(token, filterKey string) (string, error) {
	if token == "" {
		return "", nil
	}
	bad := badPageToken()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) > 512 {
		return "", bad
	}
	var t pageToken
	if err := json.Unmarshal(raw, &t); err != nil || t.V != pageTokenVersion || !validCursor(t.After) ||
		t.Filter != filterDigest(filterKey) {
		return "", bad
	}
	return t.After, nil
}

func badPageToken() *core.Error {
	return &core.Error{Reason: core.ReasonInvalidPageToken, Field: "page_token",
		Message: "page_token was not returned by a previous call with the same filters"}
}

// cursorPattern is what every key the store pages by looks like (envelope ids, UUIDs): printable
// ASCII without spaces. A hand-made token's key reaches the database as a query argument, so
// anything else (a NUL, which PostgreSQL cannot hold in text) is refused here, as a bad token.
var cursorPattern = regexp.MustCompile(`^[!-~]{1,128}$`)

func validCursor(after string) bool { return cursorPattern.MatchString(after) }
