//go:build !linux

package local

// tcpOpenInNetns is never reached off Linux: NewNetwork fails there first.
func tcpOpenInNetns(string, string) bool { return false }
