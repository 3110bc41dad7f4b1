// Package readmetest checks that the README's "Walkthrough with grpcurl" works as written: it runs
// the README's own commands against a real ledgerd and compares what they print with what the
// README shows. It has no code outside its test.
package readmetest
