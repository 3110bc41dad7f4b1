package core

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

// FuzzAmountArithmetic protects every stored sum against overflow: AddAmount and SubAmount agree
// with arbitrary-precision arithmetic whenever the exact result fits in an int64, and refuse with
// AMOUNT_OVERFLOW exactly when it does not (SubAmount also refuses any b = MinInt64, see below).
func FuzzAmountArithmetic(f *testing.F) {
	for _, seed := range [][2]int64{
		{0, 0}, {1, -1}, {math.MaxInt64, 0}, {math.MaxInt64, 1}, {math.MinInt64, -1}, {math.MinInt64, 0},
		{0, math.MinInt64}, {-1, math.MinInt64}, {math.MaxInt64, math.MinInt64}, {math.MinInt64, math.MinInt64},
		{8_800_000_000, 3_000_000_000}, {math.MaxInt64 - 10, 10}, {math.MaxInt64 - 10, 11},
	} {
		f.Add(seed[0], seed[1])
	}
	minInt, maxInt := big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	check := func(t *testing.T, op string, a, b int64, got int64, err error, exact *big.Int) {
		t.Helper()
		fits := exact.Cmp(minInt) >= 0 && exact.Cmp(maxInt) <= 0
		switch {
		case fits && err != nil:
			t.Fatalf("%d %s %d = %s fits in an int64, but got %v", a, op, b, exact, err)
		case fits && got != exact.Int64():
			t.Fatalf("%d %s %d = %d, want %s", a, op, b, got, exact)
		case !fits && err == nil:
			t.Fatalf("%d %s %d = %s overflows, but got %d without error", a, op, b, exact, got)
		case !fits && !errors.Is(err, ErrAmountOverflow):
			t.Fatalf("%d %s %d overflows: got %v, want AMOUNT_OVERFLOW", a, op, b, err)
		case !fits && got != 0:
			t.Fatalf("%d %s %d overflows but returned %d with the error", a, op, b, got)
		}
	}
	f.Fuzz(func(t *testing.T, a, b int64) {
		x, y := big.NewInt(a), big.NewInt(b)
		sum, err := AddAmount("sum", a, b)
		check(t, "+", a, b, sum, err, new(big.Int).Add(x, y))
		diff, err := SubAmount("difference", a, b)
		if b == math.MinInt64 {
			// SubAmount refuses to subtract MinInt64 even when the difference fits (a-MinInt64
			// for a < 0): conservative, never a wrong sum, and amounts are positive anyway.
			if !errors.Is(err, ErrAmountOverflow) {
				t.Fatalf("%d - MinInt64: got %d, %v; want the conservative AMOUNT_OVERFLOW", a, diff, err)
			}
			return
		}
		check(t, "-", a, b, diff, err, new(big.Int).Sub(x, y))
	})
}
