package web

import (
	"math/big"
	"strconv"
	"strings"

	"golang.org/x/text/currency"
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
func Euros(cents int64) string { return Money(cents, "EUR") }

// Money formats an amount in the minor units of the ISO 4217 currency code as French readers
// write it: euros with their sign (Euros), another currency with its own number of decimals and
// its code ("10 000,00 USD", "1 000 000 JPY"). An unknown code is taken to have two decimals.
func Money(minor int64, code string) string {
	digits, symbol := 2, code
	if code == "" || code == "EUR" {
		symbol = "€"
	} else if u, err := currency.ParseISO(code); err == nil {
		digits, _ = currency.Standard.Rounding(u)
	}
	var mag uint64
	sign := ""
	if minor < 0 {
		sign = "-"
		mag = uint64(-(minor + 1)) + 1 // math.MinInt64 too
	} else {
		mag = uint64(minor)
	}
	scale := uint64(1)
	for range digits {
		scale *= 10
	}
	units, frac := mag/scale, mag%scale
	whole := strconv.FormatUint(units, 10)
	var b strings.Builder
	b.WriteString(sign)
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(groupSeparator)
		}
		b.WriteRune(d)
	}
	if digits > 0 {
		f := strconv.FormatUint(frac, 10)
		b.WriteByte(',')
		b.WriteString(strings.Repeat("0", digits-len(f)) + f)
	}
	b.WriteString(currencySpace + symbol)
	return b.String()
}

// frenchShare is share written for French readers: a decimal comma and a narrow no-break space
// before the percent sign ("12,34 %"), for the text a screen reader reads.
func frenchShare(part, whole int64) string {
	s := strings.TrimSuffix(share(part, whole), "%")
	if !strings.Contains(s, ".") {
		s += ".00"
	}
	return strings.Replace(s, ".", ",", 1) + groupSeparator + "%"
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
