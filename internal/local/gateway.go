package local

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
)

// ingressLabels are the labels of Istio's default ingress gateway, so that
// Gateways with `selector: {istio: ingressgateway}` bind to ours unchanged.
var ingressLabels = map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}

// gatewayProc is the ingress gateway: a bowline proxy of type router.
type gatewayProc struct {
	ports  []uint32
	url    string
	admin  string
	cancel context.CancelFunc
	ok     atomic.Bool
}

func (g *gatewayProc) ready() bool { return g.ok.Load() }

func (g *gatewayProc) stop() {
	if g.cancel != nil {
		g.cancel()
	}
}

// reconcileIngress starts the ingress gateway when Gateways select it, and
// restarts it when the set of server ports changes.
func (u *Up) reconcileIngress(ctx context.Context, wg *sync.WaitGroup, gateways []*config.Object) {
	ports := gatewayServerPorts(gateways)
	if u.ingress != nil && slices.Equal(u.ingress.ports, ports) {
		return
	}
	if u.ingress != nil {
		u.ingress.stop()
		u.ingress = nil
	}
	if len(ports) == 0 {
		return
	}
	adminPorts, err := u.ports.take("127.0.0.1", 1)
	if err != nil {
		u.log.Info("ingress gateway not started", slog.String("error", err.Error()))
		return
	}
	g := &gatewayProc{ports: ports, admin: fmt.Sprintf("127.0.0.1:%d", adminPorts[0])}
	listen := ports[0]
	var gwFlags []string
	if u.cfg.IngressPort != 0 {
		listen = u.cfg.IngressPort
		gwFlags = append(gwFlags, "--gateway-port", fmt.Sprintf("%d=%d", ports[0], u.cfg.IngressPort))
	}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", listen)
	logPath := filepath.Join(u.cfg.StateDir, "logs", "istio-system.istio-ingressgateway.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		u.log.Info("ingress gateway not started", slog.String("error", err.Error()))
		return
	}
	labels := make([]string, 0, len(ingressLabels))
	for _, k := range slices.Sorted(maps.Keys(ingressLabels)) {
		labels = append(labels, k+"="+ingressLabels[k])
	}
	const gwNamespace, gwServiceAccount = "istio-system", "istio-ingressgateway-service-account"
	secArgs, err := u.securityArgs(gwNamespace, gwServiceAccount)
	if err != nil {
		logFile.Close()
		u.log.Info("ingress gateway not started", slog.String("error", err.Error()))
		return
	}
	args := append(append([]string{"proxy",
		"--discovery", u.state.ControlPlane.XDS}, secArgs...),
		"--node-id", fmt.Sprintf("router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.%s", u.cfg.Domain),
		"--namespace", gwNamespace, "--workload", "istio-ingressgateway", "--service-account", gwServiceAccount,
		"--labels", strings.Join(labels, ","), "--ip", "127.0.0.1", "--type", "router",
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
			u.log.Info("process failed", slog.String("process", "istio-ingressgateway"), slog.String("error", err.Error()))
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
}
