package web

import (
	"math/big"
	"strconv"
	"strings"
)

// Separators of amounts for French readers: digits grouped by three with a narrow no-break space
// (U+202F, as CLDR's fr locale and the Imprimerie nationale's rules), a decimal comma, and a
// no-break space (U+00A0) before the euro sign, so that "13 300 000,00 €" never breaks across lines.
const (
	groupSeparator = "\u202f"
	currencySpace  = "\u00a0"
)

// Euros formats an amount in cents as French readers write euros: Euros(1_330_000_000) is
// "13 300 000,00 €" (with the separators above). Integer arithmetic only: every int64 is exact.
func Euros(cents int64) string {
	var mag uint64
	sign := ""
	if cents < 0 {
		sign = "-"
		mag = uint64(-(cents + 1)) + 1 // math.MinInt64 too
	} else {
		mag = uint64(cents)
	}
	units, frac := mag/100, mag%100
	digits := strconv.FormatUint(units, 10)
	var b strings.Builder
	b.WriteString(sign)
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString(groupSeparator)
		}
		b.WriteRune(d)
	}
	b.WriteByte(',')
	b.WriteByte(byte('0' + frac/10))
	b.WriteByte(byte('0' + frac%10))
	b.WriteString(currencySpace + "€")
	return b.String()
}

// share is part/whole as a CSS percentage with two decimals ("12.34%"), rounded down, between 0
// and 100; exact for every int64 (the product is taken in arbitrary precision).
func share(part, whole int64) string {
	if whole <= 0 || part <= 0 {
		return "0%"
	}
	if part >= whole {
		return "100%"
	}
	bp := new(big.Int).Mul(big.NewInt(part), big.NewInt(10000))
	bp.Quo(bp, big.NewInt(whole))
	n := bp.Int64() // < 10000
	return strconv.FormatInt(n/100, 10) + "." + strconv.FormatInt(n%100/10, 10) + strconv.FormatInt(n%10, 10) + "%"
}
