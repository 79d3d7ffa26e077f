package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Path names, in the order they are measured at each point.
const (
	pathDirect  = "direct"
	pathBowline = "bowline"
	pathNginx   = "nginx"
	pathHAProxy = "haproxy"
)

// Protocols.
const (
	protoHTTP = "http"
	protoGRPC = "grpc"
)

// target is where fortio sends one protocol's load for one path.
type target struct {
	addr string // 127.0.0.1:port
	host string // Host header / :authority, "" for the default
}

// path is one way from the fortio client to the fortio server.
type path struct {
	name    string
	targets map[string]target // by protocol
	proxies []*proc           // measured proxies, client side first
	roles   []string          // "client", "server", parallel to proxies
}

// app is the fortio echo server all paths end at.
type app struct {
	httpPort, grpcPort int
	proc               *proc
}

func startApp(ctx context.Context, env *env) (*app, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	a := &app{httpPort: ports[0], grpcPort: ports[1]}
	a.proc, err = env.procs.start("fortio-server", env.loadCPUs, nil, env.fortio, "server",
		"-http-port", addr(a.httpPort), "-grpc-port", addr(a.grpcPort),
		"-redirect-port", "disabled", "-tcp-port", "disabled", "-udp-port", "disabled",
		"-ui-path", "", "-quiet")
	if err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, a.proc, addr(a.httpPort), 10*time.Second); err != nil {
		return nil, err
	}
	return a, waitTCP(ctx, a.proc, addr(a.grpcPort), 10*time.Second)
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func directPath(a *app) *path {
	return &path{name: pathDirect, targets: map[string]target{
		protoHTTP: {addr: addr(a.httpPort)},
		protoGRPC: {addr: addr(a.grpcPort)},
	}}
}

// bowlineNS and bowlineHost name the echo service in the mesh.
const (
	bowlineNS   = "bench"
	bowlineHost = "echo.bench.svc.cluster.local"
)

// serviceEntry is the mesh config: a MESH_INTERNAL STATIC ServiceEntry whose
// workloadSelector picks the registered echo workload.
const serviceEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
  namespace: {{.NS}}
spec:
  hosts: [{{.Host}}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: {{.HTTPPort}}, name: http, protocol: HTTP}
  - {number: {{.GRPCPort}}, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: echo}
`

// disableMTLS turns mTLS off mesh-wide for the -plaintext Bowline path.
const disableMTLS = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls: {mode: DISABLE}
`

// bowlineStack is the control plane and the two sidecars.
type bowlineStack struct {
	discovery             *proc
	xdsAddr, debugAddr    string
	svcHTTP, svcGRPC      int // service ports = server sidecar inbound ports
	clientOut             int // client sidecar's explicit outbound listener
	clientAdmin, srvAdmin int
	clientArgs, srvArgs   []string
}

// startBowline runs `bowline discovery` with the ServiceEntry, registers the
// echo workload and starts the server and client sidecars (bin may be the
// pprof wrapper; pprof gives the BOWLINE_PPROF_ADDRESS of client and server).
func startBowline(ctx context.Context, env *env, a *app) (*bowlineStack, error) {
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	s := &bowlineStack{xdsAddr: addr(ports[0]), debugAddr: addr(ports[1]), svcHTTP: ports[2], svcGRPC: ports[3],
		clientOut: ports[4], clientAdmin: ports[5], srvAdmin: ports[6]}
	cfgDir := filepath.Join(env.work, "mesh")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_ = template.Must(template.New("se").Parse(serviceEntry)).Execute(&buf, map[string]any{
		"NS": bowlineNS, "Host": bowlineHost, "HTTPPort": s.svcHTTP, "GRPCPort": s.svcGRPC})
	if err := os.WriteFile(filepath.Join(cfgDir, "echo.yaml"), buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	// mTLS (the default): discovery runs the CA and serves xDS over mTLS;
	// each sidecar gets its certificate with a bootstrap token, and auto
	// mTLS + PERMISSIVE make the sidecars talk ISTIO_MUTUAL. Plaintext: no
	// CA, and a mesh-wide PeerAuthentication DISABLE.
	caDir := filepath.Join(env.work, "ca")
	tokens := map[string]string{"echo": filepath.Join(env.work, "echo.token"),
		"fortio-client": filepath.Join(env.work, "fortio-client.token")}
	discArgs := []string{"discovery", "--config-dir", cfgDir, "--xds-address", s.xdsAddr, "--debug-address", s.debugAddr}
	if env.plaintext {
		discArgs = append(discArgs, "--insecure-xds")
		if err := os.WriteFile(filepath.Join(cfgDir, "peerauthentication.yaml"), []byte(disableMTLS), 0o644); err != nil {
			return nil, err
		}
	} else {
		discArgs = append(discArgs, "--ca-dir", caDir)
		for sa, f := range tokens {
			discArgs = append(discArgs, "--bootstrap-token", bowlineNS+"/"+sa+"="+f)
		}
	}
	s.discovery, err = env.procs.start("bowline-discovery", env.proxyCPUs, nil, append([]string{env.bowline}, discArgs...)...)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s.discovery, "http://"+s.debugAddr+"/ready", 20*time.Second); err != nil {
		return nil, err
	}
	reg, _ := json.Marshal(map[string]any{"name": "echo", "namespace": bowlineNS, "address": "127.0.0.1",
		"ports": map[string]int{"http": s.svcHTTP, "grpc": s.svcGRPC}, "labels": map[string]string{"app": "echo"},
		"serviceAccount": "echo", "healthy": true})
	resp, err := http.Post("http://"+s.debugAddr+"/v1/workloads", "application/json", bytes.NewReader(reg))
	if err != nil {
		return nil, fmt.Errorf("register echo workload: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("register echo workload: status %s", resp.Status)
	}
	common := []string{"proxy", "--discovery", s.xdsAddr, "--namespace", bowlineNS,
		"--ip", "127.0.0.1", "--type", "sidecar", "--access-log", "off", "--drain-duration", "200ms"}
	security := func(sa string) []string {
		if env.plaintext {
			return []string{"--insecure-xds"}
		}
		return []string{"--ca-address", s.xdsAddr, "--ca-root-cert", filepath.Join(caDir, "root-cert.pem"),
			"--ca-token-file", tokens[sa]}
	}
	s.srvArgs = append(append(append([]string{}, common...), security("echo")...), "--workload", "echo", "--labels", "app=echo",
		"--service-account", "echo", "--admin-address", addr(s.srvAdmin),
		"--inbound", fmt.Sprintf("%d=%d", s.svcHTTP, a.httpPort), "--inbound", fmt.Sprintf("%d=%d", s.svcGRPC, a.grpcPort))
	s.clientArgs = append(append(append([]string{}, common...), security("fortio-client")...), "--workload", "fortio-client", "--labels", "app=fortio-client",
		"--service-account", "fortio-client", "--admin-address", addr(s.clientAdmin),
		"--outbound-http-address", addr(s.clientOut))
	return s, nil
}

// sidecars starts the two sidecars with bin; pprofAddrs, when given, are
// passed as BOWLINE_PPROF_ADDRESS to the client and server.
func (s *bowlineStack) sidecars(ctx context.Context, env *env, suffix string) (*path, error) {
	bin := env.bowline
	envFor := func(int) []string { return env.sidecarEnv }
	srv, err := env.procs.start("bowline-server"+suffix, env.proxyCPUs, envFor(1), append([]string{bin}, s.srvArgs...)...)
	if err != nil {
		return nil, err
	}
	cli, err := env.procs.start("bowline-client"+suffix, env.proxyCPUs, envFor(0), append([]string{bin}, s.clientArgs...)...)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		p     *proc
		admin int
	}{{srv, s.srvAdmin}, {cli, s.clientAdmin}} {
		if err := waitHTTP(ctx, c.p, "http://"+addr(c.admin)+"/ready", 20*time.Second); err != nil {
			return nil, err
		}
	}
	p := &path{name: pathBowline, proxies: []*proc{cli, srv}, roles: []string{"client", "server"},
		targets: map[string]target{
			// The client sidecar's explicit outbound listener routes on the
			// authority; fortio sends origin-form requests with this Host.
			protoHTTP: {addr: addr(s.clientOut), host: bowlineHost + ":" + strconv.Itoa(s.svcHTTP)},
			protoGRPC: {addr: addr(s.clientOut), host: bowlineHost + ":" + strconv.Itoa(s.svcGRPC)},
		}}
	// The sidecars are ready once the route is there: poll until a request
	// through both of them succeeds.
	return p, waitRoute(ctx, p.targets[protoHTTP], 20*time.Second)
}

// waitHTTP waits for url to answer 200.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %s not ready after %s", p.name, url, timeout)
}

// waitRoute waits until an HTTP request to t gets 200.
func waitRoute(ctx context.Context, t target, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.addr+"/echo?size=16", nil)
		if t.host != "" {
			req.Host = t.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("no route through %s (host %q) after %s: %s", t.addr, t.host, timeout, last)
}

// nginxConf is one nginx instance: one worker, no access log, keep-alive
// everywhere (including upstream pools, which nginx closes after 1000
// requests by default).
const nginxConf = `daemon off;
master_process on;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
{{- if .Client}}
  upstream tls_http { server 127.0.0.1:{{.UpHTTP}}; keepalive 128; keepalive_requests 100000000; keepalive_timeout 600s; }
  upstream tls_grpc { server 127.0.0.1:{{.UpGRPC}}; keepalive 128; keepalive_requests 100000000; keepalive_timeout 600s; }
  server {
    listen 127.0.0.1:{{.HTTP}};
    location / {
      proxy_pass https://tls_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_server_name on;
      proxy_ssl_name {{.ServerName}};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {{.CA}};
      proxy_ssl_session_reuse on;
    }
  }
  server {
    listen 127.0.0.1:{{.GRPC}} http2;
    location / {
      grpc_pass grpcs://tls_grpc;
      grpc_ssl_protocols TLSv1.3;
      grpc_ssl_server_name on;
      grpc_ssl_name {{.ServerName}};
      grpc_ssl_verify on;
      grpc_ssl_trusted_certificate {{.CA}};
      grpc_ssl_session_reuse on;
    }
  }
{{- else}}
  upstream app_http { server 127.0.0.1:{{.UpHTTP}}; keepalive 128; keepalive_requests 100000000; keepalive_timeout 600s; }
  upstream app_grpc { server 127.0.0.1:{{.UpGRPC}}; keepalive 128; keepalive_requests 100000000; keepalive_timeout 600s; }
  ssl_protocols TLSv1.3;
  ssl_certificate {{.Cert}};
  ssl_certificate_key {{.Key}};
  ssl_session_cache shared:SSL:1m;
  server {
    listen 127.0.0.1:{{.HTTP}} ssl;
    location / {
      proxy_pass http://app_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:{{.GRPC}} ssl http2;
    location / { grpc_pass grpc://app_grpc; }
  }
{{- end}}
}
`

// haproxyConf is one HAProxy instance: one thread, connection reuse to the
// upstream, TLS 1.3 only between the two instances.
const haproxyConf = `global
  nbthread 1
  maxconn 5000
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
  http-reuse always
{{- if .Client}}
frontend fe_http
  bind 127.0.0.1:{{.HTTP}}
  default_backend be_http
frontend fe_grpc
  bind 127.0.0.1:{{.GRPC}} proto h2
  default_backend be_grpc
backend be_http
  server s 127.0.0.1:{{.UpHTTP}} ssl ssl-min-ver TLSv1.3 verify required ca-file {{.CA}} verifyhost {{.ServerName}} sni str({{.ServerName}})
backend be_grpc
  server s 127.0.0.1:{{.UpGRPC}} ssl ssl-min-ver TLSv1.3 verify required ca-file {{.CA}} verifyhost {{.ServerName}} sni str({{.ServerName}}) alpn h2
{{- else}}
frontend fe_http
  bind 127.0.0.1:{{.HTTP}} ssl crt {{.Combined}} ssl-min-ver TLSv1.3
  default_backend be_http
frontend fe_grpc
  bind 127.0.0.1:{{.GRPC}} ssl crt {{.Combined}} ssl-min-ver TLSv1.3 alpn h2
  default_backend be_grpc
backend be_http
  server app 127.0.0.1:{{.UpHTTP}}
backend be_grpc
  server app 127.0.0.1:{{.UpGRPC}} proto h2
{{- end}}
`

// confData fills nginxConf and haproxyConf.
type confData struct {
	Dir            string
	Client         bool
	HTTP, GRPC     int // listen ports
	UpHTTP, UpGRPC int // upstream ports
	CA, Cert, Key  string
	Combined       string
	ServerName     string
}

// startPair starts a client-side and a server-side instance of nginx or
// haproxy with TLS 1.3 between them.
func startPair(ctx context.Context, env *env, name string, a *app, certs certFiles) (*path, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	srv := confData{Client: false, HTTP: ports[0], GRPC: ports[1], UpHTTP: a.httpPort, UpGRPC: a.grpcPort,
		CA: certs.CA, Cert: certs.Cert, Key: certs.Key, Combined: certs.Combined, ServerName: tlsServerName}
	cli := srv
	cli.Client, cli.HTTP, cli.GRPC, cli.UpHTTP, cli.UpGRPC = true, ports[2], ports[3], ports[0], ports[1]
	p := &path{name: name, roles: []string{"client", "server"}, targets: map[string]target{
		protoHTTP: {addr: addr(cli.HTTP)}, protoGRPC: {addr: addr(cli.GRPC)}}}
	var started []*proc
	for _, d := range []confData{srv, cli} {
		role := "server"
		if d.Client {
			role = "client"
		}
		d.Dir = filepath.Join(env.work, name+"-"+role)
		if err := os.MkdirAll(d.Dir, 0o755); err != nil {
			return nil, err
		}
		tmpl, bin := nginxConf, env.nginx
		if name == pathHAProxy {
			tmpl, bin = haproxyConf, env.haproxy
		}
		var buf bytes.Buffer
		if err := template.Must(template.New(name).Parse(tmpl)).Execute(&buf, d); err != nil {
			return nil, err
		}
		conf := filepath.Join(d.Dir, name+".conf")
		if err := os.WriteFile(conf, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		argv := []string{bin, "-p", d.Dir + "/", "-c", conf, "-e", filepath.Join(d.Dir, "error.log")}
		if name == pathHAProxy {
			argv = []string{bin, "-db", "-f", conf}
		}
		pr, err := env.procs.start(name+"-"+role, env.proxyCPUs, nil, argv...)
		if err != nil {
			return nil, err
		}
		for _, port := range []int{d.HTTP, d.GRPC} {
			if err := waitTCP(ctx, pr, addr(port), 10*time.Second); err != nil {
				return nil, fmt.Errorf("%w (config %s)", err, conf)
			}
		}
		started = append(started, pr)
	}
	p.proxies = []*proc{started[1], started[0]}
	return p, waitRoute(ctx, p.targets[protoHTTP], 10*time.Second)
}

// binVersion returns the first line of a tool's version output.
func binVersion(argv ...string) string {
	out, _ := execOutput(argv...)
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return line
}
