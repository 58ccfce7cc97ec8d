//go:build race

package extauthz_test

// raceEnabled: the race detector is on, and sync.Pool drops what it is given at random
// (allocation counts are not exact).
const raceEnabled = true
