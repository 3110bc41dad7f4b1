// Package clienttest holds the Go client's tests that need a server in the same process: a
// ledgerd on a real database, gateways that inject failures in front of it, restarts and TLS.
// They live in the root module because the client's own module (client/) must not depend on the
// server's: that would bring the database drivers into the graph of every program that imports
// the client. The client module keeps its unit tests and its examples (which run a ledgerd
// process); TestNestedModules runs them, and TestClientModuleDependencies checks the client's
// dependencies.
package clienttest
