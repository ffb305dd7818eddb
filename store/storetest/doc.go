// Package storetest is the contract every state store passes: the same
// cases with the same expectations, run by each implementation's tests
// against a real database.
package storetest
