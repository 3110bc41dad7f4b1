package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/budgetledger/budgetledger/ledger"
)

// This file paginates the two lists that the ledger computes whole and the server cuts into pages
// (AIP-158): the funding report's envelopes and an envelope's rule sets. The ledger's own lists
// (envelopes, commitments, journal entries) are paginated by the ledger, with the same limits.

// maxPageSize is the largest page of every list; a larger page_size is coerced to it (AIP-158).
const maxPageSize = 1000

// pageLimit returns how many items a page holds: def when size is 0, at most maxPageSize.
func pageLimit(size int32, def int) int {
	switch {
	case size <= 0:
		return def
	case size > maxPageSize:
		return maxPageSize
	}
	return int(size)
}

// A page token of these lists is, like the ledger's, base64url of a small JSON document: the key
// of the last item returned and a digest of the request's filters. A token used with other
// filters, or that does not decode, is refused with INVALID_PAGE_TOKEN. It only moves a cursor
// within what the caller may read anyway, so it is not signed.
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
	bad := &ledger.Error{Reason: ledger.ReasonInvalidPageToken, Field: "page_token",
		Message: "page_token was not returned by a previous call with the same filters"}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) > 512 {
		return "", bad
	}
	var t pageToken
	if err := json.Unmarshal(raw, &t); err != nil || t.V != pageTokenVersion || t.After == "" ||
		t.Filter != filterDigest(filterKey) {
		return "", bad
	}
	return t.After, nil
}
