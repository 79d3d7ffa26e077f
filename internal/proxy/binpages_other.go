//go:build !linux

package proxy

// ReleaseBinaryPages is a no-op outside Linux (binpages_linux.go).
func ReleaseBinaryPages() (int64, error) { return 0, nil }
