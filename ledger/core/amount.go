package core

import "math"

// AddAmount returns a+b, or an AMOUNT_OVERFLOW error naming what was being computed. Amounts are
// int64 minor units; every sum the ledger stores goes through here.
func AddAmount(what string, a, b int64) (int64, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, overflow(what)
	}
	return a + b, nil
}

// SubAmount returns a-b, or an AMOUNT_OVERFLOW error.
func SubAmount(what string, a, b int64) (int64, error) {
	if b == math.MinInt64 {
		return 0, overflow(what)
	}
	return AddAmount(what, a, -b)
}
