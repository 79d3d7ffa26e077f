package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the benchmark. Children get SIGKILL when the
// harness dies (Pdeathsig) so nothing outlives a run.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// procs starts processes, optionally pinned to a CPU list with taskset.
type procs struct {
	dir     string // logs go here
	taskset string // path of taskset, "" when pinning is off
	started []*proc
}

// start runs argv pinned to cpus ("" = unpinned) with extra environment env.
func (ps *procs) start(name, cpus string, env []string, argv ...string) (*proc, error) {
	if ps.taskset != "" && cpus != "" {
		argv = append([]string{ps.taskset, "-c", cpus}, argv...)
	}
	logPath := filepath.Join(ps.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	ps.started = append(ps.started, p)
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// stopAll stops every process started, all at once.
func (ps *procs) stopAll() {
	var wg sync.WaitGroup
	for _, p := range ps.started {
		wg.Go(func() { p.stop(3 * time.Second) })
	}
	wg.Wait()
	ps.started = nil
}

// waitTCP waits until addr accepts connections or p exits.
func waitTCP(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before listening on %s: %s", p.name, addr, p.tail())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	name := "process"
	if p != nil {
		name = p.name
	}
	return fmt.Errorf("%s: nothing listening on %s after %s", name, addr, timeout)
}

// freePorts reserves n distinct loopback ports (closed again before use; a
// clash with another process on the machine is possible but unlikely).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// usage is what /proc says about a process tree at one instant.
type usage struct {
	cpuTicks uint64 // utime+stime of every process in the tree
	rssKiB   uint64 // sum of VmRSS
	hwmKiB   uint64 // sum of VmHWM (peak RSS of each process)
	anonKiB  uint64 // sum of RssAnon (heap, stacks, runtime)
	fileKiB  uint64 // sum of RssFile (mapped binary and libraries)
	pssKiB   uint64 // sum of Pss (smaps_rollup): shared pages divided among their users
}

// clkTck is USER_HZ, the unit of utime/stime in /proc/<pid>/stat.
func clkTck() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// readUsage sums CPU time and memory over pid and all its descendants (nginx
// workers are children of the master).
func readUsage(pid int) (usage, error) {
	tree, err := processTree(pid)
	if err != nil {
		return usage{}, err
	}
	var u usage
	for _, p := range tree {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue // exited meanwhile
		}
		f := statFields(string(st))
		if len(f) < 15 {
			continue
		}
		ut, _ := strconv.ParseUint(f[13], 10, 64)
		stime, _ := strconv.ParseUint(f[14], 10, 64)
		u.cpuTicks += ut + stime
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		u.rssKiB += statusKiB(string(status), "VmRSS:")
		u.hwmKiB += statusKiB(string(status), "VmHWM:")
		u.anonKiB += statusKiB(string(status), "RssAnon:")
		u.fileKiB += statusKiB(string(status), "RssFile:")
		if roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p)); err == nil {
			u.pssKiB += statusKiB(string(roll), "Pss:")
		}
	}
	if len(tree) == 0 {
		return u, errors.New("process gone")
	}
	return u, nil
}

// statFields splits /proc/<pid>/stat; field 2 (comm) may hold spaces, so
// the fields after it are taken from the last ')'. The result is indexed
// like proc(5) minus one (f[0] is the pid, f[13] utime).
func statFields(s string) []string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	head := strings.Fields(s[:strings.IndexByte(s, '(')])
	return append(append(head, "comm"), strings.Fields(s[i+1:])...)
}

func statusKiB(status, key string) uint64 {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// processTree returns root and its descendants by walking ppid links.
func processTree(root int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", root)); err != nil {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := statFields(string(st))
		if len(f) < 4 {
			continue
		}
		ppid, _ := strconv.Atoi(f[3])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}
