// Package guide holds the Go code of docs/migrating-from-gorilla.md, each
// block of the guide as it is written there, so that it compiles; its test
// checks that the guide shows exactly this code, and runs it.
package guide
