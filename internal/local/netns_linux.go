//go:build linux

package local

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// tcpOpenInNetns reports whether addr accepts TCP connections from inside the
// named network namespace. The socket is created on a thread moved into the
// namespace (setns affects only the calling thread) and the thread is moved
// back before it is released; a thread that cannot be moved back stays locked
// and the runtime discards it when the goroutine ends.
func tcpOpenInNetns(netns, addr string) bool {
	var c net.Conn
	err := inNetns(netns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 500*time.Millisecond)
		return err
	})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// inNetns runs fn on an OS thread inside the named namespace.
func inNetns(netns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", netns))
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open netns %s: %w", netns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter netns %s: %w", netns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("leave netns %s: %w", netns, err) // thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
