package web

import (
	"math"
	"strings"
	"testing"
)

// TestEuros protects the amounts shown to French readers: grouped by three with a narrow no-break
// space, a decimal comma, two decimals always, a no-break space before €, exact to the cent for
// every int64 (no floating point: the largest amounts would round).
func TestEuros(t *testing.T) {
	for _, c := range []struct {
		cents int64
		want  string
	}{
		{0, "0,00 €"},
		{5, "0,05 €"},
		{99, "0,99 €"},
		{100, "1,00 €"},
		{123456, "1 234,56 €"},
		{100000, "1 000,00 €"},
		{1_330_000_000, "13 300 000,00 €"},
		{8_800_000_000, "88 000 000,00 €"},
		{-2_900_000_050, "-29 000 000,50 €"},
		{math.MaxInt64, "92 233 720 368 547 758,07 €"},
		{math.MinInt64, "-92 233 720 368 547 758,08 €"},
	} {
		want := strings.ReplaceAll(strings.ReplaceAll(c.want, " €", "\u00a0€"), " ", "\u202f")
		if got := Euros(c.cents); got != want {
			t.Errorf("Euros(%d) = %q, want %q", c.cents, got, want)
		}
	}
}

// TestShare protects the bars' widths: a percentage of the allocation with two decimals, rounded
// down, never negative nor over 100 %, exact for the largest amounts.
func TestShare(t *testing.T) {
	for _, c := range []struct {
		part, whole int64
		want        string
	}{
		{0, 100, "0%"},
		{1, 3, "33.33%"},
		{2, 3, "66.66%"},
		{1_330_000_000, 3_000_000_000, "44.33%"},
		{5, 0, "0%"},
		{-5, 100, "0%"},
		{150, 100, "100%"},
		{math.MaxInt64 - 1, math.MaxInt64, "99.99%"},
		{1, 10000, "0.01%"},
	} {
		if got := share(c.part, c.whole); got != c.want {
			t.Errorf("share(%d, %d) = %q, want %q", c.part, c.whole, got, c.want)
		}
	}
}
