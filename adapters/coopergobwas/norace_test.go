//go:build !race

package coopergobwas_test

// raceEnabled reports whether the race detector is on, which changes
// allocation counts.
const raceEnabled = false
