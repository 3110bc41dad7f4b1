package gcpercent

import (
	"os"
	"runtime/debug"
	"testing"
)

// The collector's target is Default unless the operator set GOGC, which always wins (an
// operator who tuned the collector is not overridden).
func TestApplyDefaultsUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	// GOGC set (even empty) is the operator's: Apply keeps what the runtime has.
	debug.SetGCPercent(150)
	if got := Apply(); got != 150 {
		t.Errorf("with GOGC set, Apply = %d, want the runtime's 150", got)
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("with GOGC set, the target became %d", got)
	}
}

func TestApplyDefault(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set in this test's environment")
	}
	if got := Apply(); got != Default {
		t.Errorf("Apply = %d, want %d", got, Default)
	}
	if got := debug.SetGCPercent(100); got != Default {
		t.Errorf("the collector's target is %d, want %d", got, Default)
	}
}
