//go:build faults && race

package faults

// raceEnabled builds ledgerd with the race detector too when the tests run with -race.
const raceEnabled = true
