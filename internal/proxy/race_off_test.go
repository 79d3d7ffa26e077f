//go:build !race

package proxy_test

// raceEnabled reports a -race build: load tests then accept lower rates.
const raceEnabled = false
