// Package gcpercent sets the garbage collector's target of a ledgerd process.
//
// A ledgerd's live heap is small (tens of megabytes: the group-commit queues, the pools, the
// caches of rules) while every award allocates tens of kilobytes that die within the call (the
// request and response, the statements' parameters, the request log's outcome). With Go's default
// GOGC=100 the collector then runs every few milliseconds under load, and took about a quarter of
// ledgerd's CPU time per award (docs/benchmarks.md). Default, unless GOGC says otherwise, a
// target of 400: the heap may grow to five times the live heap between collections, a few
// hundred megabytes at most on the benchmark's load, for a fifth of the collections.
package gcpercent

import (
	"os"
	"runtime/debug"
)

// Default is the collector's target when GOGC is not set.
const Default = 400

// Apply sets the collector's target to Default unless the GOGC environment variable is set (then
// the runtime has applied it already), and returns the target in force.
func Apply() int {
	if _, set := os.LookupEnv("GOGC"); set {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(Default)
	return Default
}
