package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// The discovery server runs in a child process (this binary with -role
// discovery), wired exactly as `bowline discovery --insecure-xds` wires it,
// so that its RSS and CPU are measured apart from the simulated clients.
// The parent talks to it over stdin/stdout, one line per command:
//
//	cpu PATH   start a CPU profile into PATH
//	stop       stop the CPU profile
//	heap PATH  write a heap profile (after a GC) into PATH
//
// and the child answers "ok" or "error ...". The first line the child
// prints is "ready XDS_ADDR DEBUG_ADDR".

// runDiscoveryChild is the child's main.
func runDiscoveryChild(dir string, debounce, debounceMax time.Duration, verbose bool) error {
	level := slog.LevelInfo + 100 // silent
	if verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(server.Config{XDSAddress: "127.0.0.1:0", DebugAddress: "127.0.0.1:0", Insecure: true, ConfigDir: dir,
		Validate: validation.Objects, Generator: server.NewMeshGenerator("", "", logger), Debounce: debounce, DebounceMax: debounceMax, Logger: logger})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	xa, da, ok := srv.Addresses(ctx)
	if !ok {
		return fmt.Errorf("server did not start")
	}
	fmt.Printf("ready %s %s\n", xa, da)
	go func() {
		in := bufio.NewScanner(os.Stdin)
		var cpuFile *os.File
		for in.Scan() {
			cmd, arg, _ := strings.Cut(in.Text(), " ")
			var err error
			switch cmd {
			case "cpu":
				if cpuFile, err = os.Create(arg); err == nil {
					err = pprof.StartCPUProfile(cpuFile)
				}
			case "stop":
				pprof.StopCPUProfile()
				if cpuFile != nil {
					err = cpuFile.Close()
					cpuFile = nil
				}
			case "heap":
				runtime.GC()
				var f *os.File
				if f, err = os.Create(arg); err == nil {
					err = pprof.WriteHeapProfile(f)
					f.Close()
				}
			case "mem":
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Printf("ok %d %d %d %d\n", ms.HeapInuse>>20, ms.StackInuse>>20, ms.Sys>>20, runtime.NumGoroutine())
				continue
			default:
				err = fmt.Errorf("unknown command %q", cmd)
			}
			if err != nil {
				fmt.Printf("error %v\n", err)
			} else {
				fmt.Println("ok")
			}
		}
		stop() // stdin closed: the parent is gone
	}()
	return <-done
}

// discovery is the parent's handle on the child process.
type discoveryProc struct {
	cmd          *exec.Cmd
	stdin        io.WriteCloser
	stdout       *bufio.Scanner
	xds, debug   string
	pid          int
	clockTicks   float64
	profileDir   string
	profilePrefx string
	// watchDone ends the RSS watcher; abortMsg is set when it stopped the child.
	watchDone chan struct{}
	abortMsg  atomic.Value // string

	memMu             sync.Mutex
	lastPeak, lastCur float64
}

// errAborted is returned by runs that discovery's RSS limit stopped.
var errAborted = errors.New("run aborted")

// watchRSS kills the child when its RSS passes limitMiB: the machine is
// shared, and the runs before issue 11 grew by ~120 MB per distinct sidecar.
func (d *discoveryProc) watchRSS(limitMiB float64) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-d.watchDone:
			return
		case <-t.C:
		}
		if _, cur := d.memMiB(); limitMiB > 0 && cur > limitMiB {
			d.abortMsg.Store(fmt.Sprintf("discovery RSS passed %.0f MiB, stopped", limitMiB))
			_ = d.cmd.Process.Kill()
			return
		}
	}
}

// aborted says why the RSS watcher stopped the child, or "".
func (d *discoveryProc) aborted() string {
	s, _ := d.abortMsg.Load().(string)
	return s
}

// abortedOr returns errAborted if the watcher stopped the child, else err.
func (d *discoveryProc) abortedOr(err error) error {
	if d.aborted() != "" {
		return fmt.Errorf("%w: %s", errAborted, d.aborted())
	}
	return err
}

// startDiscovery starts the child on dir.
func startDiscovery(dir string, debounce, debounceMax time.Duration, profileDir, prefix string, verbose bool, maxRSSMiB float64) (*discoveryProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-role", "discovery", "-config-dir", dir, "-debounce", debounce.String(), "-debounce-max", debounceMax.String()}
	if verbose {
		args = append(args, "-v")
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &discoveryProc{cmd: cmd, stdin: stdin, stdout: bufio.NewScanner(out), pid: cmd.Process.Pid, clockTicks: 100,
		profileDir: profileDir, profilePrefx: prefix, watchDone: make(chan struct{})}
	go d.watchRSS(maxRSSMiB)
	if !d.stdout.Scan() {
		d.stop()
		return nil, fmt.Errorf("discovery child exited before it was ready")
	}
	f := strings.Fields(d.stdout.Text())
	if len(f) != 3 || f[0] != "ready" {
		d.stop()
		return nil, fmt.Errorf("discovery child: unexpected first line %q", d.stdout.Text())
	}
	d.xds, d.debug = f[1], f[2]
	return d, nil
}

func (d *discoveryProc) command(line string) error {
	_, err := d.query(line)
	return err
}

// query sends a command and returns what follows "ok" in the answer.
func (d *discoveryProc) query(line string) (string, error) {
	if _, err := fmt.Fprintln(d.stdin, line); err != nil {
		return "", err
	}
	if !d.stdout.Scan() {
		return "", fmt.Errorf("discovery child gone")
	}
	r := d.stdout.Text()
	rest, ok := strings.CutPrefix(r, "ok")
	if !ok {
		return "", fmt.Errorf("discovery child: %s", r)
	}
	return strings.TrimSpace(rest), nil
}

// runtimeMem returns the child's Go heap in use, stacks in use, memory
// obtained from the OS (MiB) and its goroutine count.
func (d *discoveryProc) runtimeMem() (heap, stack, sys, goroutines int) {
	r, err := d.query("mem")
	if err == nil {
		fmt.Sscan(r, &heap, &stack, &sys, &goroutines)
	}
	return
}

// startCPU starts a CPU profile of phase when profiling is on.
func (d *discoveryProc) startCPU(phase string) error {
	if d.profileDir == "" {
		return nil
	}
	return d.command("cpu " + filepath.Join(d.profileDir, d.profilePrefx+phase+".cpu.pprof"))
}

func (d *discoveryProc) stopCPU() error {
	if d.profileDir == "" {
		return nil
	}
	return d.command("stop")
}

func (d *discoveryProc) heap(phase string) error {
	if d.profileDir == "" {
		return nil
	}
	return d.command("heap " + filepath.Join(d.profileDir, d.profilePrefx+phase+".heap.pprof"))
}

// stop ends the child and waits for it.
func (d *discoveryProc) stop() {
	close(d.watchDone)
	d.stdin.Close()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.AfterFunc(10*time.Second, func() { _ = d.cmd.Process.Kill() })
	_ = d.cmd.Wait()
	t.Stop()
}

// cpuSeconds is the child's user+system CPU so far (/proc/PID/stat).
func (d *discoveryProc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	f := strings.Fields(s[i+1:])
	// After ")": state is field 3 of proc(5), utime 14 and stime 15.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	sy, _ := strconv.ParseFloat(f[12], 64)
	return (u + sy) / d.clockTicks
}

// memMiB returns the child's VmHWM (peak RSS) and VmRSS.
func (d *discoveryProc) memMiB() (peak, cur float64) {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	defer func() {
		if peak == 0 { // the child is gone: what was last seen
			peak, cur = d.lastPeak, d.lastCur
		}
		d.lastPeak, d.lastCur = peak, cur
	}()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmHWM:":
			peak = kb / 1024
		case "VmRSS:":
			cur = kb / 1024
		}
	}
	return peak, cur
}
