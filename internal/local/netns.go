package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/bowline-mesh/bowline/internal/capture"
	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Network namespaces for `bowline up --netns` (Linux, root): every replica
// runs in its own namespace, like a pod, joined by a veth pair to the host
// bridge bowline0. Its traffic reaches its sidecar through iptables REDIRECT
// (internal/capture), exactly as in Kubernetes.
//
// Safety: everything stays on this machine. The host guard chain
// (BOWLINE-GUARD) drops packets for PodRange and the auto-VIP range that
// would leave through any interface but bowline0 (or lo); it is installed
// before the bridge and any address exist. IP forwarding is never enabled.
//
// Cleanup: Teardown removes namespaces (killing what still runs in them),
// veths, the bridge, /etc/netns/bowline-* and the guard rules. Setup does the
// same first, so a crashed run is cleaned up by the next one; a lock file
// keeps two runs from sharing the bridge.
const (
	// BridgeName is the host bridge every namespace's veth joins.
	BridgeName = "bowline0"
	// NetnsPrefix starts the name of every namespace Bowline creates.
	NetnsPrefix = "bowline-"
	// vethPrefix starts the host side of every veth ("bwl-<x>-<y>").
	vethPrefix = "bwl-"
	// guardChain is the host filter chain that keeps mesh addresses local.
	guardChain = "BOWLINE-GUARD"
	// SidecarAdminPort is where a namespaced sidecar serves admin, on its pod IP
	// (excluded from capture, reachable from the host through the bridge).
	SidecarAdminPort = 15000
	lockPath         = "/run/bowline/netns.lock"
	// proxyRunDir holds what sidecars running as uid 1337 must read: a copy
	// of the bowline binary, the CA root certificate and their tokens. The
	// state directory may sit below a directory uid 1337 cannot enter.
	proxyRunDir = "/run/bowline/proxy"
)

var (
	// PodRange holds the bridge address and every pod IP.
	PodRange = netip.MustParsePrefix("10.250.0.0/16")
	// BridgeAddr is the host's address on bowline0 (the pods' default gateway
	// and where the control plane serves xDS in netns mode).
	BridgeAddr = netip.MustParseAddr("10.250.0.1")
)

// Network is the host side of netns mode. Build it with NewNetwork, call
// Setup before anything uses it and Teardown at the end.
type Network struct {
	run capture.Runner
	log *slog.Logger

	mu   sync.Mutex
	lock *os.File
	used map[netip.Addr]bool
}

// NewNetwork checks the prerequisites (root, ip, iptables, setpriv). It
// changes nothing.
func NewNetwork(log *slog.Logger) (*Network, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("--netns needs Linux (network namespaces and iptables)")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("--netns needs root (network namespaces and iptables)")
	}
	for _, p := range []string{"ip", "iptables", "iptables-restore", "setpriv"} {
		if _, err := lookPath(p); err != nil {
			return nil, fmt.Errorf("--netns needs %s: apt-get install -y iproute2 iptables util-linux", p)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Network{run: capture.ExecRunner{}, log: log, used: map[netip.Addr]bool{}}, nil
}

func (n *Network) cmd(ctx context.Context, args ...string) error {
	out, err := n.run.Run(ctx, "", args[0], args[1:]...)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *Network) output(ctx context.Context, args ...string) (string, error) {
	out, err := n.run.Run(ctx, "", args[0], args[1:]...)
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// guardRules are the host iptables rules (arguments after "iptables") that
// keep mesh addresses from leaving through any interface but the bridge.
func guardRules() [][]string {
	var out [][]string
	for _, r := range []netip.Prefix{PodRange, model.AutoVIPRange} {
		out = append(out,
			[]string{"OUTPUT", "-d", r.String(), "-j", guardChain},
			[]string{"FORWARD", "-d", r.String(), "-j", guardChain},
			[]string{"FORWARD", "-s", r.String(), "-j", guardChain})
	}
	return out
}

// Setup takes the lock, removes what an earlier run left, then installs the
// guard rules and creates the bridge (in that order).
func (n *Network) Setup(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		return fmt.Errorf("netns lock: %w", err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("netns lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("another `bowline up --netns` is running (lock %s held)", lockPath)
	}
	n.mu.Lock()
	n.lock = f
	n.mu.Unlock()
	n.cleanup(ctx)

	// 1. The guard, before any mesh address exists.
	if err := n.cmd(ctx, "iptables", "-w", "-N", guardChain); err != nil {
		return err
	}
	for _, r := range [][]string{
		{"-A", guardChain, "-o", BridgeName, "-j", "RETURN"},
		{"-A", guardChain, "-o", "lo", "-j", "RETURN"},
		{"-A", guardChain, "-j", "DROP"},
	} {
		if err := n.cmd(ctx, append([]string{"iptables", "-w"}, r...)...); err != nil {
			return err
		}
	}
	for _, r := range guardRules() {
		if err := n.cmd(ctx, append([]string{"iptables", "-w", "-I", r[0], "1"}, r[1:]...)...); err != nil {
			return err
		}
	}
	// 2. The bridge and its address.
	bits := strconv.Itoa(PodRange.Bits())
	for _, args := range [][]string{
		{"ip", "link", "add", BridgeName, "type", "bridge"},
		{"ip", "addr", "add", BridgeAddr.String() + "/" + bits, "dev", BridgeName},
		{"ip", "link", "set", BridgeName, "up"},
	} {
		if err := n.cmd(ctx, args...); err != nil {
			return err
		}
	}
	n.log.Info("netns network ready", slog.String("bridge", BridgeName), slog.String("address", BridgeAddr.String()))
	return nil
}

// Teardown removes everything Setup and AddPod created and releases the lock.
func (n *Network) Teardown(ctx context.Context) {
	n.cleanup(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lock != nil {
		n.lock.Close()
		n.lock = nil
	}
	n.log.Info("netns network removed")
}

// ProxyFile copies src into the proxy run directory (mode perm, owned by the
// sidecar's uid/gid when private) and returns the copy's path, so that a
// sidecar running as uid 1337 can read or execute it wherever src lives.
func (n *Network) ProxyFile(src, name string, perm os.FileMode) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("proxy file: %w", err)
	}
	return n.WriteProxyFile(name, data, perm)
}

// WriteProxyFile writes data to name in the proxy run directory; a private
// file (no group/other bits) is owned by the sidecar's uid/gid.
func (n *Network) WriteProxyFile(name string, data []byte, perm os.FileMode) (string, error) {
	if err := os.MkdirAll(proxyRunDir, 0o755); err != nil {
		return "", fmt.Errorf("proxy run dir: %w", err)
	}
	if err := os.Chmod(proxyRunDir, 0o755); err != nil {
		return "", fmt.Errorf("proxy run dir: %w", err)
	}
	path := filepath.Join(proxyRunDir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return "", fmt.Errorf("proxy file: %w", err)
	}
	if err := os.Chmod(tmp, perm); err != nil { // umask-independent
		return "", fmt.Errorf("proxy file: %w", err)
	}
	if perm&0o077 == 0 {
		if err := os.Chown(tmp, capture.DefaultProxyUID, capture.DefaultProxyGID); err != nil {
			return "", fmt.Errorf("proxy file: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("proxy file: %w", err)
	}
	return path, nil
}

// cleanup removes every Bowline namespace, veth, the bridge, hosts files and
// guard rules. Errors mean "already gone" and are ignored.
func (n *Network) cleanup(ctx context.Context) {
	if out, err := n.output(ctx, "ip", "netns", "list"); err == nil {
		for line := range strings.Lines(out) {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if strings.HasPrefix(name, NetnsPrefix) {
				n.removeNetns(ctx, name)
			}
		}
	}
	_ = os.RemoveAll(proxyRunDir)
	if entries, err := os.ReadDir("/etc/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), NetnsPrefix) {
				_ = os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
			}
		}
	}
	if out, err := n.output(ctx, "ip", "-o", "link", "show"); err == nil {
		for line := range strings.Lines(out) {
			// "12: bwl-0-2@if11: <...>"
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, vethPrefix) {
				_ = n.cmd(ctx, "ip", "link", "del", name)
			}
		}
	}
	_ = n.cmd(ctx, "ip", "link", "del", BridgeName)
	for _, r := range guardRules() {
		for n.cmd(ctx, append([]string{"iptables", "-w", "-D"}, r...)...) == nil {
		}
	}
	_ = n.cmd(ctx, "iptables", "-w", "-F", guardChain)
	_ = n.cmd(ctx, "iptables", "-w", "-X", guardChain)
}

// removeNetns stops every process still in the namespace, then deletes it.
func (n *Network) removeNetns(ctx context.Context, name string) {
	if out, err := n.output(ctx, "ip", "netns", "pids", name); err == nil {
		for f := range strings.FieldsSeq(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = n.cmd(ctx, "ip", "netns", "del", name)
	_ = os.RemoveAll(filepath.Join("/etc/netns", name))
}

// Pod is one replica's network namespace.
type Pod struct {
	// Netns is the namespace name (`ip netns exec <Netns> ...`).
	Netns string
	// IP is the pod IP on bowline0.
	IP netip.Addr
	// InboundPorts are the ports captured on the way in (the container ports).
	InboundPorts []uint16

	net  *Network
	veth string
}

// podNetnsName is bowline-<replica>.<namespace>, like a pod's DNS name.
func podNetnsName(replica, namespace string) string {
	return NetnsPrefix + replica + "." + namespace
}

// AddPod creates the namespace of one replica: address, veth to the bridge,
// default route via the bridge, capture rules, an empty hosts file.
func (n *Network) AddPod(ctx context.Context, replica, namespace string, inboundPorts []uint16) (*Pod, error) {
	ip, err := n.allocate()
	if err != nil {
		return nil, err
	}
	b := ip.As4()
	p := &Pod{Netns: podNetnsName(replica, namespace), IP: ip, InboundPorts: inboundPorts, net: n,
		veth: fmt.Sprintf("%s%d-%d", vethPrefix, b[2], b[3])}
	peer := fmt.Sprintf("bwp-%d-%d", b[2], b[3])
	n.removeNetns(ctx, p.Netns) // a leftover of the same name
	bits := strconv.Itoa(PodRange.Bits())
	steps := [][]string{
		{"ip", "netns", "add", p.Netns},
		{"ip", "link", "add", p.veth, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", p.Netns},
		{"ip", "link", "set", p.veth, "master", BridgeName},
		{"ip", "link", "set", p.veth, "up"},
		{"ip", "-n", p.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", p.Netns, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", p.Netns, "addr", "add", ip.String() + "/" + bits, "dev", "eth0"},
		{"ip", "-n", p.Netns, "link", "set", "eth0", "up"},
		{"ip", "-n", p.Netns, "route", "add", "default", "via", BridgeAddr.String()},
	}
	for _, s := range steps {
		if err := n.cmd(ctx, s...); err != nil {
			p.Remove(ctx)
			return nil, fmt.Errorf("netns %s: %w", p.Netns, err)
		}
	}
	cfg := capture.Default()
	// Only the declared container ports are captured on the way in (as
	// Istio's injector sets includeInboundPorts); admin stays reachable.
	cfg.InboundAllPorts = false
	cfg.InboundPorts = inboundPorts
	if err := (capture.Applier{Runner: n.run, Netns: p.Netns}).Apply(ctx, cfg); err != nil {
		p.Remove(ctx)
		return nil, err
	}
	if err := p.WriteHosts(nil); err != nil {
		p.Remove(ctx)
		return nil, err
	}
	return p, nil
}

func (n *Network) allocate() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for a := BridgeAddr.Next(); PodRange.Contains(a); a = a.Next() {
		if b := a.As4(); b[3] == 0 || b[3] == 255 {
			continue
		}
		if !n.used[a] {
			n.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", PodRange)
}

// Remove deletes the namespace (its veth goes with it), the hosts file and
// releases the address. Processes in it must have stopped.
func (p *Pod) Remove(ctx context.Context) {
	p.net.removeNetns(ctx, p.Netns)
	_ = p.net.cmd(ctx, "ip", "link", "del", p.veth)
	p.net.mu.Lock()
	delete(p.net.used, p.IP)
	p.net.mu.Unlock()
}

// HostsPath is the file `ip netns exec` bind-mounts over /etc/hosts.
func (p *Pod) HostsPath() string { return filepath.Join("/etc/netns", p.Netns, "hosts") }

// HostEntry maps an address to names in a hosts file.
type HostEntry struct {
	Addr  string
	Names []string
}

// WriteHosts rewrites the pod's hosts file in place (same inode: running
// processes see the bind-mounted file change).
func (p *Pod) WriteHosts(entries []HostEntry) error {
	var b strings.Builder
	b.WriteString("# Written by bowline up --netns; service names map to their (auto-allocated) VIPs.\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	replica, _, _ := strings.Cut(strings.TrimPrefix(p.Netns, NetnsPrefix), ".")
	fmt.Fprintf(&b, "%s\t%s\n", p.IP, replica)
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\t%s\n", e.Addr, strings.Join(e.Names, " "))
	}
	if err := os.MkdirAll(filepath.Dir(p.HostsPath()), 0o755); err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	f, err := os.OpenFile(p.HostsPath(), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	data := []byte(b.String())
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("hosts file: %w", err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return fmt.Errorf("hosts file: %w", err)
	}
	return f.Close()
}

// Command returns the program and arguments that run prog inside the pod's
// namespace (`ip netns exec`, which also bind-mounts the hosts file); with
// asProxy, as the sidecar's uid/gid 1337 (setpriv), whose traffic the capture
// rules let through.
func (p *Pod) Command(prog string, args []string, asProxy bool) (string, []string) {
	ipPath, _ := lookPath("ip")
	out := []string{"netns", "exec", p.Netns}
	if asProxy {
		sp, _ := lookPath("setpriv")
		out = append(out, sp,
			"--reuid="+strconv.Itoa(capture.DefaultProxyUID), "--regid="+strconv.Itoa(capture.DefaultProxyGID),
			"--clear-groups", "--pdeathsig=TERM", "--")
	}
	out = append(out, prog)
	return ipPath, append(out, args...)
}

// serviceHosts builds hosts entries for a pod in namespace ns: every service
// host with its address (declared, else auto-allocated VIP) and short names
// (the bare name only for services of ns).
func serviceHosts(hosts []serviceHost, ns, domain string) []HostEntry {
	var out []HostEntry
	for _, h := range hosts {
		names := []string{h.host}
		same, anyNS := model.ShortNames(h.host, domain)
		if h.namespace == ns {
			names = append(names, same...)
		}
		names = append(names, anyNS...)
		out = append(out, HostEntry{Addr: h.addr, Names: names})
	}
	slices.SortFunc(out, func(a, b HostEntry) int { return strings.Compare(a.Names[0], b.Names[0]) })
	return out
}

type serviceHost struct {
	host, namespace, addr string
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// containerPort is the i-th declared container port, 8080 when none is declared.
func containerPort(spec *config.WorkloadSpec, i int) uint32 {
	if i < len(spec.Ports) && spec.Ports[i].ContainerPort != 0 {
		return spec.Ports[i].ContainerPort
	}
	return 8080
}

// addPod creates the replica's namespace, capturing its inbound ports.
func (u *Up) addPod(ctx context.Context, d desiredReplica, inPorts map[string]uint32) (*Pod, error) {
	var ports []uint16
	for _, p := range inPorts {
		if !slices.Contains(ports, uint16(p)) {
			ports = append(ports, uint16(p))
		}
	}
	slices.Sort(ports)
	pod, err := u.cfg.Network.AddPod(ctx, d.name, d.obj.Meta.Namespace, ports)
	if err != nil {
		return nil, err
	}
	// Names resolve from the app's first lookup on.
	if err := pod.WriteHosts(serviceHosts(u.hostsFor(u.cp.Store().Current()), d.obj.Meta.Namespace, u.cfg.Domain)); err != nil {
		pod.Remove(ctx)
		return nil, err
	}
	return pod, nil
}

// appOpen reports whether the app accepts connections on its port: on
// loopback, or inside its namespace in netns mode (loopback traffic of
// processes other than the sidecar is never captured).
func (r *replica) appOpen() bool {
	addr := fmt.Sprintf("127.0.0.1:%d", r.state.AppPort)
	if r.pod != nil {
		return tcpOpenInNetns(r.pod.Netns, addr)
	}
	return tcpOpen(addr)
}

// writeHosts writes every replica's hosts file from the services in snap:
// declared addresses, else the VIPs model.AutoVIPs allocates (the ones the
// control plane gives captured sidecars). Called with u.mu held.
func (u *Up) writeHosts(snap *config.Snapshot) {
	if u.cfg.Network == nil {
		return
	}
	hosts := u.hostsFor(snap)
	for _, r := range u.replicas {
		if r.pod == nil {
			continue
		}
		if err := r.pod.WriteHosts(serviceHosts(hosts, r.state.Namespace, u.cfg.Domain)); err != nil {
			u.log.Info("hosts file not written", slog.String("replica", r.id), slog.String("error", err.Error()))
		}
	}
}

// hostsFor lists every service host with its address.
func (u *Up) hostsFor(snap *config.Snapshot) []serviceHost {
	svcs := registry.Build(snap.Objects, nil).Services()
	vips := model.AutoVIPs(svcs)
	var hosts []serviceHost
	seen := map[string]bool{}
	for _, s := range svcs {
		if seen[s.Hostname] {
			continue
		}
		addr := ""
		if vip, ok := vips[s.Hostname]; ok {
			addr = vip.String()
		}
		for _, a := range s.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				addr = ip.String()
				break
			}
		}
		if addr == "" {
			continue
		}
		seen[s.Hostname] = true
		hosts = append(hosts, serviceHost{host: s.Hostname, namespace: s.Namespace, addr: addr})
	}
	return hosts
}
