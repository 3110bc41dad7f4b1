package web

import (
	"math"
	"strings"
	"testing"
	"time"
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

// TestAsOfTime protects the instant a chosen date stands for: the last microsecond of that day in
// Europe/Paris, winter and summer time alike (the SCDL export's as_of), and only real dates.
func TestAsOfTime(t *testing.T) {
	for date, want := range map[string]string{
		"2021-12-31": "2021-12-31T22:59:59.999999Z",
		"2021-06-30": "2021-06-30T21:59:59.999999Z",
		"2021-03-28": "2021-03-28T21:59:59.999999Z", // the day summer time starts
	} {
		got, err := AsOfTime(date)
		if err != nil || got.UTC().Format(time.RFC3339Nano) != want {
			t.Errorf("AsOfTime(%s) = %v, %v; want %s", date, got.UTC().Format(time.RFC3339Nano), err, want)
		}
	}
	for _, bad := range []string{"", "2021-02-30", "31/12/2021", "2021-12-31T00:00:00Z"} {
		if _, err := AsOfTime(bad); err == nil {
			t.Errorf("AsOfTime(%q) accepted", bad)
		}
	}
}

// TestMoneyInItsCurrency protects the page's figures of an envelope not in euros: each currency
// with its own decimals (ISO 4217: none for the yen, three for the Bahraini dinar) and its code,
// never a euro sign on dollars nor a yen amount divided by 100.
func TestMoneyInItsCurrency(t *testing.T) {
	for _, c := range []struct {
		minor int64
		code  string
		want  string
	}{
		{123_45, "EUR", "123,45 €"},
		{123_45, "USD", "123,45 USD"},
		{1_000_000, "JPY", "1 000 000 JPY"},
		{5, "BHD", "0,005 BHD"},
		{-1_000_001, "BHD", "-1 000,001 BHD"},
		{math.MaxInt64, "JPY", "9 223 372 036 854 775 807 JPY"},
	} {
		want := strings.ReplaceAll(c.want, " ", "\u202f")
		want = strings.Replace(want, "\u202f"+c.code, "\u00a0"+c.code, 1)
		want = strings.Replace(want, "\u202f€", "\u00a0€", 1)
		if got := Money(c.minor, c.code); got != want {
			t.Errorf("Money(%d, %s) = %q, want %q", c.minor, c.code, got, want)
		}
	}
	for _, c := range []struct {
		part, whole int64
		want        string
	}{{1, 3, "33,33\u202f%"}, {0, 10, "0,00\u202f%"}, {10, 10, "100,00\u202f%"}} {
		if got := frenchShare(c.part, c.whole); got != c.want {
			t.Errorf("frenchShare(%d, %d) = %q, want %q", c.part, c.whole, got, c.want)
		}
	}
}
