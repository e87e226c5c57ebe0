//go:build race

package e2e

// raceDetector reports whether the test binary runs with the race detector,
// which slows the clients and (with E2E_RACE=1) the broker several times.
const raceDetector = true
