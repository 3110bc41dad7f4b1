//go:build race

package clienttest_test

// raceEnabled passes -race on to the client module's tests when this package runs with it.
const raceEnabled = true
