package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// replica is one running copy of a Workload: its sidecar, its app, its
// registration and a health prober.
type replica struct {
	id       string
	specHash string
	state    ReplicaState
	work     registry.Workload
	sidecar  processSpec
	app      processSpec
	reg      Registrar
	log      *slog.Logger
	grace    time.Duration

	cancel  context.CancelFunc
	healthy atomic.Bool
	ever    atomic.Bool
	changed atomic.Int64 // unix nanos of the last health change
	files   []*os.File
	pod     *Pod // netns mode: the replica's network namespace, removed after its processes exit
}

func specHash(o *config.Object) string {
	data, _ := json.Marshal(struct {
		Spec   any
		Labels map[string]string
		File   string
	}{o.Spec, o.Meta.Labels, o.Source.File})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// newReplica allocates ports and prepares (but does not start) a replica.
func (u *Up) newReplica(ctx context.Context, d desiredReplica) (*replica, error) {
	spec, ns := d.spec, d.obj.Meta.Namespace
	// Source paths are as the control plane's directory walk found them
	// (relative to our working directory when DIR was given relative).
	fileDir, err := filepath.Abs(filepath.Dir(d.obj.Source.File))
	if err != nil {
		return nil, fmt.Errorf("workload %s/%s: %w", ns, d.obj.Meta.Name, err)
	}
	nPorts := max(len(spec.Ports), 1)
	ports, err := u.ports.take("127.0.0.1", 2*nPorts+2)
	if err != nil {
		return nil, err
	}
	appPorts, inPorts := map[string]uint32{}, map[string]uint32{}
	var inboundFlags []string
	regPorts, declared := map[string]uint32{}, map[string]uint32{}
	for i := range nPorts {
		name := "http"
		if i < len(spec.Ports) {
			name = spec.Ports[i].Name
		}
		appPorts[name], inPorts[name] = ports[2*i], ports[2*i+1]
		if u.cfg.Network != nil { // netns: the container port on the pod IP, like a pod
			appPorts[name], inPorts[name] = containerPort(spec, i), containerPort(spec, i)
		}
		regPorts[name], declared[name] = inPorts[name], containerPort(spec, i)
		inboundFlags = append(inboundFlags, "--inbound", fmt.Sprintf("%d=%d", inPorts[name], appPorts[name]))
	}
	outbound := fmt.Sprintf("127.0.0.1:%d", ports[2*nPorts])
	admin := fmt.Sprintf("127.0.0.1:%d", ports[2*nPorts+1])
	firstName := "http"
	if len(spec.Ports) > 0 {
		firstName = spec.Ports[0].Name
	}

	logDir := filepath.Join(u.cfg.StateDir, "logs")
	appLogPath := filepath.Join(logDir, ns+"."+d.name+".log")
	sidecarLogPath := filepath.Join(logDir, ns+"."+d.name+".sidecar.log")
	appLog, err := os.OpenFile(appLogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	sidecarLog, err := os.OpenFile(sidecarLogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		appLog.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}

	program, err := resolveProgram(spec.Command[0], fileDir)
	if err != nil {
		appLog.Close()
		sidecarLog.Close()
		return nil, fmt.Errorf("workload %s/%s: spec.command: %w", ns, d.obj.Meta.Name, err)
	}
	workDir := fileDir
	if spec.WorkingDir != "" {
		workDir = spec.WorkingDir
		if !filepath.IsAbs(workDir) {
			workDir = filepath.Join(fileDir, workDir)
		}
	}
	var pod *Pod
	ip := "127.0.0.1"
	if u.cfg.Network != nil {
		if pod, err = u.addPod(ctx, d, inPorts); err != nil {
			appLog.Close()
			sidecarLog.Close()
			return nil, err
		}
		ip, outbound, admin = pod.IP.String(), "", fmt.Sprintf("%s:%d", pod.IP, SidecarAdminPort)
	}
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	if pod == nil {
		proxyURL := "http://" + outbound
		env = append(env, "HTTP_PROXY="+proxyURL, "http_proxy="+proxyURL,
			"NO_PROXY=127.0.0.1,localhost,::1", "no_proxy=127.0.0.1,localhost,::1")
	} else {
		env = append(env, "BIND_ADDR=0.0.0.0") // captured: no proxy settings, listen on the pod IP too
	}
	env = append(env,
		fmt.Sprintf("PORT=%d", appPorts[firstName]),
		"BOWLINE_WORKLOAD="+d.obj.Meta.Name, "BOWLINE_NAMESPACE="+ns,
		"BOWLINE_REPLICA="+d.name, "HOSTNAME="+d.name,
	)
	for name, p := range appPorts {
		env = append(env, fmt.Sprintf("PORT_%s=%d", envSuffix(name), p))
	}

	labels := make([]string, 0, len(spec.Labels))
	for _, k := range slices.Sorted(maps.Keys(spec.Labels)) {
		labels = append(labels, k+"="+spec.Labels[k])
	}
	nodeID := fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.%s", ip, d.name, ns, ns, u.cfg.Domain)
	secArgs, err := u.securityArgs(ns, spec.ServiceAccount)
	if err != nil {
		appLog.Close()
		sidecarLog.Close()
		return nil, err
	}
	sidecarArgs := append(append([]string{"proxy",
		"--discovery", u.state.ControlPlane.XDS}, secArgs...),
		"--node-id", nodeID, "--namespace", ns, "--workload", d.obj.Meta.Name,
		"--service-account", spec.ServiceAccount, "--labels", strings.Join(labels, ","),
		"--ip", ip, "--type", "sidecar", "--admin-address", admin,
		"--access-log", u.cfg.AccessLog, "--drain-duration", u.cfg.DrainDuration.String())
	sidecarArgs = append(sidecarArgs, inboundFlags...)
	if pod == nil {
		sidecarArgs = append(sidecarArgs, "--outbound-http-address", outbound)
	} else {
		sidecarArgs = append(sidecarArgs, "--interception-mode", "REDIRECT")
	}

	grace := u.cfg.DrainDuration + 5*time.Second
	r := &replica{
		id:       d.id,
		specHash: d.specHash,
		reg:      u.reg,
		log:      u.log,
		grace:    grace,
		files:    []*os.File{appLog, sidecarLog},
		state: ReplicaState{Name: d.name, Namespace: ns, Workload: d.obj.Meta.Name, Replica: d.index,
			AppPort: appPorts[firstName], AppPorts: appPorts, InboundPort: inPorts[firstName], InboundPorts: inPorts,
			OutboundProxy: outbound, Admin: admin, Log: appLogPath, SidecarLog: sidecarLogPath},
		work: registry.Workload{ID: d.id, Name: d.obj.Meta.Name, Namespace: ns, Address: ip, Ports: regPorts, ContainerPorts: declared,
			Labels: spec.Labels, ServiceAccount: spec.ServiceAccount, Healthy: false},
		sidecar: processSpec{Name: d.id + "/sidecar", Path: u.cfg.ProxyBinary, Args: sidecarArgs, Env: os.Environ(),
			Dir: u.cfg.Dir, Output: sidecarLog, Grace: grace},
		app: processSpec{Name: d.id, Path: program, Args: append(append([]string{}, spec.Command[1:]...), spec.Args...),
			Env: env, Dir: workDir, Output: appLog, Grace: grace},
	}
	if pod != nil {
		r.pod = pod
		r.state.Netns, r.state.PodIP = pod.Netns, pod.IP.String()
		r.sidecar.Path, r.sidecar.Args = pod.Command(r.sidecar.Path, r.sidecar.Args, true)
		r.app.Path, r.app.Args = pod.Command(r.app.Path, r.app.Args, false)
	}
	return r, nil
}

// resolveProgram finds the program: relative paths with a slash are taken from
// the declaring file's directory, bare names from $PATH.
func resolveProgram(prog, fileDir string) (string, error) {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(fileDir, prog)
		}
		if _, err := os.Stat(prog); err != nil {
			return "", fmt.Errorf("program %s not found (build it first?)", prog)
		}
		return prog, nil
	}
	p, err := exec.LookPath(prog)
	if err != nil {
		return "", fmt.Errorf("program %q not found in $PATH", prog)
	}
	return p, nil
}

func envSuffix(name string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name))
}

// start registers the replica (unhealthy until probed), then runs the sidecar,
// the app and the health prober until stop.
func (r *replica) start(parent context.Context, wg *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(parent)
	r.cancel = cancel
	if err := r.reg.Register(r.work); err != nil {
		r.log.Info("replica not registered", slog.String("replica", r.id), slog.String("error", err.Error()))
	}
	r.log.Info("starting replica", slog.String("replica", r.id), slog.Uint64("app_port", uint64(r.state.AppPort)),
		slog.Uint64("inbound_port", uint64(r.state.InboundPort)), slog.String("admin", r.state.Admin))
	procs := []*supervisor{newSupervisor(r.sidecar, defaultBackoff, r.log), newSupervisor(r.app, defaultBackoff, r.log)}
	var pw sync.WaitGroup
	for _, p := range procs {
		pw.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pw.Done()
			if err := p.Run(ctx); err != nil {
				r.log.Info("process failed", slog.String("process", p.spec.Name), slog.String("error", err.Error()))
			}
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); r.probe(ctx) }()
	go func() {
		defer wg.Done()
		pw.Wait()
		for _, f := range r.files {
			f.Close()
		}
		if r.pod != nil {
			r.pod.Remove(context.WithoutCancel(ctx))
		}
	}()
}

// stop deregisters the replica, lets the control plane push the removal, then
// stops its processes (the sidecar drains).
func (r *replica) stop() {
	if err := r.reg.Deregister(r.id); err != nil {
		r.log.Debug("replica not deregistered", slog.String("replica", r.id), slog.String("error", err.Error()))
	}
	cancel := r.cancel
	go func() {
		time.Sleep(300 * time.Millisecond) // endpoint removal reaches the other proxies first
		cancel()
	}()
}

func (r *replica) everHealthy() bool { return r.ever.Load() }

func (r *replica) lastHealthChange() time.Time { return time.Unix(0, r.changed.Load()) }

// probe reports health to the registry: healthy when the app accepts
// connections on its port and the sidecar is ready.
func (r *replica) probe(ctx context.Context) {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	interval := 100 * time.Millisecond
	for {
		ok := r.appOpen() && httpOK(ctx, client, "http://"+r.state.Admin+"/ready")
		if ok != r.healthy.Load() {
			r.healthy.Store(ok)
			r.changed.Store(time.Now().UnixNano())
			if err := r.reg.SetHealth(r.id, ok); err != nil {
				r.log.Debug("health not reported", slog.String("replica", r.id), slog.String("error", err.Error()))
			} else {
				r.log.Info("replica health changed", slog.String("replica", r.id), slog.Bool("healthy", ok))
			}
		}
		if ok {
			r.ever.Store(true)
			interval = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func tcpOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func httpOK(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
