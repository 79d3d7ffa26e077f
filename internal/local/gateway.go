package local

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// ingressLabels are the labels of Istio's default ingress gateway, so that
// Gateways with `selector: {istio: ingressgateway}` bind to ours unchanged.
var ingressLabels = map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}

// gatewayProc is the ingress gateway: a bowline proxy of type router. It
// starts when a Gateway first selects it and runs until `bowline up`
// stops: Gateways added, changed or removed later reach it over xDS
// (DESIGN.md decision 5), never by a restart.
type gatewayProc struct {
	// bind is the address its Gateway listeners bind (--ingress-address).
	bind string
	// remap is the --ingress-port mapping fixed at start: Gateway port -> listen port.
	remap map[uint32]uint32
	// ports are the Gateway server ports selecting it now (under Up.mu).
	ports []uint32
	url   string
	admin string

	cancel context.CancelFunc
	ok     atomic.Bool
}

// listenPort is where the gateway serves Gateway port p.
func (g *gatewayProc) listenPort(p uint32) uint32 {
	if l, ok := g.remap[p]; ok {
		return l
	}
	return p
}

// ready reports whether the gateway has its configuration and, when a
// Gateway selects it, its first listener accepts connections on the
// address `bowline up` prints.
func (g *gatewayProc) ready() bool {
	if !g.ok.Load() {
		return false
	}
	if len(g.ports) == 0 {
		return true
	}
	c, err := net.DialTimeout("tcp", g.listenAddr(g.ports[0]), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// listenAddr is the HOST:PORT to reach Gateway port p on: the bound
// address, or loopback when it binds every address.
func (g *gatewayProc) listenAddr(p uint32) string {
	host := g.bind
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(int(g.listenPort(p))))
}

// setPorts records the Gateway ports served now and the URL of the
// first: https:// when its servers terminate TLS.
func (g *gatewayProc) setPorts(declared []gatewayPort) {
	g.ports = make([]uint32, len(declared))
	for i, p := range declared {
		g.ports[i] = p.port
	}
	g.url = ""
	if len(declared) > 0 {
		scheme := "http://"
		if declared[0].https {
			scheme = "https://"
		}
		g.url = scheme + g.listenAddr(declared[0].port)
	}
}

// Bound describes where the first Gateway port listens when that is not
// what the URL says (every address): "0.0.0.0:8080", else "".
func (g *gatewayProc) bound() string {
	if ip := net.ParseIP(g.bind); ip == nil || !ip.IsUnspecified() || len(g.ports) == 0 {
		return ""
	}
	return net.JoinHostPort(g.bind, strconv.Itoa(int(g.listenPort(g.ports[0]))))
}

func (g *gatewayProc) stop() {
	if g.cancel != nil {
		g.cancel()
	}
}

// checkIngressPorts binds each port the gateway will listen on once, so
// that a port in use is reported as such instead of a gateway that never
// becomes ready.
func (u *Up) checkIngressPorts(g *gatewayProc, ports []gatewayPort) error {
	for _, p := range ports {
		if slices.Contains(g.ports, p.port) {
			continue // served already
		}
		hint := "choose another with --ingress-port"
		if g.ports != nil || p.port != ports[0].port {
			hint = fmt.Sprintf("free it or change the port of Gateway %s", p.gateway)
		}
		if err := CheckPort("ingress", net.JoinHostPort(g.bind, strconv.Itoa(int(g.listenPort(p.port)))), hint); err != nil {
			return err
		}
	}
	return nil
}

// reconcileIngress starts the ingress gateway when a Gateway first selects
// it, and otherwise only records which ports it serves now. An error is
// a port that cannot be bound.
func (u *Up) reconcileIngress(ctx context.Context, wg *sync.WaitGroup, gateways []*config.Object) error {
	declared := gatewayServerPorts(gateways)
	ports := make([]uint32, len(declared))
	for i, p := range declared {
		ports[i] = p.port
	}
	if g := u.ingress; g != nil {
		if slices.Equal(g.ports, ports) {
			return nil
		}
		err := u.checkIngressPorts(g, declared)
		for gwPort, listen := range g.remap {
			if !slices.Contains(ports, gwPort) && len(ports) > 0 {
				u.log.Warn("--ingress-port maps a Gateway port no Gateway serves now; the other ports are served as declared (restart bowline up to map another)",
					slog.Uint64("ingress_port", uint64(listen)), slog.Uint64("gateway_port", uint64(gwPort)))
			}
		}
		g.setPorts(declared)
		u.log.Info("ingress gateway ports changed", slog.String("url", g.url), slog.Any("ports", ports))
		return err
	}
	if len(ports) == 0 {
		return nil
	}
	adminPorts, err := u.ports.take("127.0.0.1", 1)
	if err != nil {
		return fmt.Errorf("ingress gateway: %w", err)
	}
	g := &gatewayProc{bind: u.cfg.IngressAddress, remap: map[uint32]uint32{}, admin: fmt.Sprintf("127.0.0.1:%d", adminPorts[0])}
	var gwFlags []string
	if u.cfg.IngressPort != 0 {
		g.remap[ports[0]] = u.cfg.IngressPort
		gwFlags = append(gwFlags, "--gateway-port", fmt.Sprintf("%d=%d", ports[0], u.cfg.IngressPort))
	}
	if err := u.checkIngressPorts(g, declared); err != nil {
		return err
	}
	g.setPorts(declared)
	logPath := filepath.Join(u.cfg.StateDir, "logs", "istio-system.istio-ingressgateway.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("ingress gateway: %w", err)
	}
	labels := make([]string, 0, len(ingressLabels))
	for _, k := range slices.Sorted(maps.Keys(ingressLabels)) {
		labels = append(labels, k+"="+ingressLabels[k])
	}
	const gwNamespace, gwServiceAccount = "istio-system", "istio-ingressgateway-service-account"
	secArgs, err := u.securityArgs(gwNamespace, gwServiceAccount)
	if err != nil {
		logFile.Close()
		return fmt.Errorf("ingress gateway: %w", err)
	}
	args := append(append([]string{"proxy",
		"--discovery", u.state.ControlPlane.XDS}, secArgs...),
		"--node-id", fmt.Sprintf("router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.%s", u.cfg.Domain),
		"--namespace", gwNamespace, "--workload", "istio-ingressgateway", "--service-account", gwServiceAccount,
		"--labels", strings.Join(labels, ","), "--ip", "127.0.0.1", "--type", "router", "--gateway-address", g.bind,
		"--admin-address", g.admin, "--access-log", u.cfg.AccessLog, "--drain-duration", u.cfg.DrainDuration.String())
	args = append(args, gwFlags...)
	gctx, cancel := context.WithCancel(ctx)
	g.cancel = cancel
	sup := newSupervisor(processSpec{Name: "istio-system/istio-ingressgateway", Path: u.cfg.ProxyBinary, Args: args, Env: os.Environ(),
		Dir: u.cfg.Dir, Output: logFile, Grace: u.cfg.DrainDuration + 5*time.Second}, defaultBackoff, u.log)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer logFile.Close()
		if err := sup.Run(gctx); err != nil {
			u.log.Warn("process failed", slog.String("process", "istio-ingressgateway"), slog.String("error", err.Error()))
		}
	}()
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		for !httpOK(gctx, client, "http://"+g.admin+"/ready") {
			select {
			case <-gctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		g.ok.Store(true)
	}()
	u.ingress = g
	u.log.Info("ingress gateway starting", slog.String("url", g.url), slog.String("admin", g.admin))
	return nil
}

// gatewayPort is a server port of a Gateway selecting the ingress gateway.
type gatewayPort struct {
	port    uint32
	gateway string // namespace/name of the first Gateway declaring it
	// https: the first server declaring it is HTTPS (TLS terminated).
	https bool
}

// gatewayServerPorts returns the server ports of Gateways selecting the
// ingress gateway (istio: ingressgateway), sorted.
func gatewayServerPorts(gateways []*config.Object) []gatewayPort {
	seen := map[uint32]bool{}
	var ports []gatewayPort
	for _, o := range gateways {
		gw := o.Spec.(*networking.Gateway)
		if !registry.LabelsMatch(gw.GetSelector(), ingressLabels) {
			continue
		}
		for _, s := range gw.GetServers() {
			n := s.GetPort().GetNumber()
			if n == 0 || seen[n] {
				continue
			}
			seen[n] = true
			ports = append(ports, gatewayPort{port: n, gateway: o.Meta.Namespace + "/" + o.Meta.Name,
				https: strings.EqualFold(s.GetPort().GetProtocol(), "HTTPS")})
		}
	}
	slices.SortFunc(ports, func(a, b gatewayPort) int { return int(a.port) - int(b.port) })
	return ports
}
