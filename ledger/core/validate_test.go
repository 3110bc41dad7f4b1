package core

import (
	"math/rand/v2"
	"testing"
)

// TestIDCheckersMatchTheirPatterns protects the rule that bad input changes nothing: the ledger's
// hand-written checks of request ids and envelope ids (isRequestID, isEnvelopeID) accept exactly
// the strings that the rules of Fields accept (length and pattern, the regular expressions the
// .proto files hold too), so that no id the gRPC boundary refuses reaches the database through
// another caller of this package, and none it accepts is refused here.
//
// Every string of up to four bytes over an alphabet of each class's bounds and neighbours, then
// random strings around the length limits.
func TestIDCheckersMatchTheirPatterns(t *testing.T) {
	t.Parallel()
	alphabet := []string{"a", "z", "m", "0", "9", "-", "A", "Z", "!", "~", " ", "\x7f", "\x00", "\t", "_", "`", "{", "/", "é", "\xff"}
	checkers := []struct {
		name    string
		check   func(string) bool
		pattern func(string) bool
	}{
		{"request_id", isRequestID, func(s string) bool {
			return len(s) <= Fields["request_id"].MaxLen && requestIDPattern.MatchString(s)
		}},
		{"envelope_id", isEnvelopeID, func(s string) bool {
			return len(s) <= Fields["envelope_id"].MaxLen && envelopeIDPattern.MatchString(s)
		}},
	}
	compare := func(s string) {
		for _, c := range checkers {
			if got, want := c.check(s), c.pattern(s); got != want {
				t.Errorf("%s %q: the check says %v, the rule %v", c.name, s, got, want)
			}
		}
	}
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		compare(prefix)
		if depth == 0 {
			return
		}
		for _, a := range alphabet {
			walk(prefix+a, depth-1)
		}
	}
	walk("", 4)

	rng := rand.New(rand.NewPCG(17, 2026))
	accepted := 0
	for range 20_000 {
		// An envelope id's characters, a letter first; then, half the time, one byte replaced by
		// any of the alphabet or of printable ASCII.
		n := []int{1, 2, 62, 63, 64, 127, 128, 129}[rng.IntN(8)]
		b := []byte{byte('a' + rng.IntN(26))}
		for len(b) < n {
			b = append(b, "abcdefghijklmnopqrstuvwxyz0123456789-"[rng.IntN(37)])
		}
		s := string(b)
		switch i := rng.IntN(len(s)); rng.IntN(4) {
		case 0:
			s = s[:i] + alphabet[rng.IntN(len(alphabet))] + s[i+1:]
		case 1:
			s = s[:i] + string(rune('!'+rng.IntN(94))) + s[i+1:]
		}
		compare(s)
		if isEnvelopeID(s) && len(s) == 63 {
			accepted++
		}
	}
	if accepted == 0 {
		t.Fatal("no random envelope id of the longest length was accepted: the random strings do not reach the limit")
	}
}
