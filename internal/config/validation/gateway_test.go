package validation

import "testing"

var gatewayCases = []networkingCase{
	{
		name: "https without tls",
		file: "gateway.yaml",
		doc: networkingDoc("Gateway", "bookinfo-gateway", `  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
`),
		want: []string{"gateway.yaml:8: Gateway default/bookinfo-gateway: spec.servers[0].tls: HTTPS servers need tls settings"},
	},
	{
		name: "simple tls without certificates",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls:
      mode: SIMPLE
      privateKey: /etc/certs/key.pem
`),
		want: []string{"f.yaml:9: Gateway default/gw: spec.servers[0].tls.serverCertificate: SIMPLE mode needs serverCertificate (or credentialName)"},
	},
	{
		name: "mutual tls without ca",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: /etc/certs/cert.pem
      privateKey: /etc/certs/key.pem
`),
		want: []string{"f.yaml:9: Gateway default/gw: spec.servers[0].tls.caCertificates: MUTUAL mode needs caCertificates to verify clients (or credentialName)"},
	},
	{
		name: "server hosts",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [bookinfo, "bad_ns/a.example.com", "./foo*.example.com", "*/"]
`),
		want: []string{
			`f.yaml:8: Gateway default/gw: spec.servers[0].hosts[0]: short name "bookinfo" is not allowed, use a fully qualified domain name`,
			`f.yaml:8: Gateway default/gw: spec.servers[0].hosts[1]: invalid namespace "bad_ns" in host "bad_ns/a.example.com"`,
			`f.yaml:8: Gateway default/gw: spec.servers[0].hosts[2]: domain name "foo*.example.com" is invalid: a wildcard is only allowed as the leading character`,
			`f.yaml:8: Gateway default/gw: spec.servers[0].hosts[3]: namespace and dnsName of host "*/" must not be empty`,
		},
	},
	{
		name: "port protocol name and number",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 0, protocol: HTTP3}
    hosts: ["*.example.com"]
  - port: {number: 80, protocol: HTTP, name: web}
    hosts: ["*.example.com"]
  - port: {number: 8080, protocol: HTTP, name: web}
    hosts: ["*.example.com"]
`),
		want: []string{
			`f.yaml:7: Gateway default/gw: spec.servers[0].port.protocol: unsupported protocol "HTTP3" (supported: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, UDP, MONGO, REDIS, MYSQL, HTTP_PROXY)`,
			"f.yaml:7: Gateway default/gw: spec.servers[0].port.number: port number 0 must be between 1 and 65535",
			"f.yaml:7: Gateway default/gw: spec.servers[0].port.name: port name is required",
			`f.yaml:11: Gateway default/gw: spec.servers[2].port.name: duplicate port name "web", already used by servers[1]`,
		},
	},
	{
		name: "tls on plain http and tcp",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: cert}
  - port: {number: 3306, name: mysql, protocol: TCP}
    hosts: ["*.example.com"]
    tls: {httpsRedirect: true}
`),
		want: []string{
			"f.yaml:9: Gateway default/gw: spec.servers[0].tls: plain text HTTP servers cannot have tls settings other than httpsRedirect",
			"f.yaml:12: Gateway default/gw: spec.servers[1].tls: TCP servers cannot have tls settings (only HTTPS and TLS servers)",
			"f.yaml:12: warning: Gateway default/gw: spec.servers[1].tls.httpsRedirect: httpsRedirect only applies to HTTP servers",
		},
	},
	{
		name: "no servers and dotted name",
		doc:  networkingDoc("Gateway", "my.gateway", "  selector: {istio: ingressgateway}\n"),
		want: []string{
			`f.yaml:4: Gateway default/my.gateway: metadata.name: invalid gateway name "my.gateway": must be a DNS-1123 label (no dots)`,
			"f.yaml:5: Gateway default/my.gateway: spec.servers: a gateway needs at least one server",
		},
	},
	{
		name: "istio mutual with credential and passthrough with certs",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: ISTIO_MUTUAL, credentialName: cert}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH, serverCertificate: /etc/cert.pem}
`),
		want: []string{
			"f.yaml:9: Gateway default/gw: spec.servers[0].tls.credentialName: ISTIO_MUTUAL mode cannot have credentialName",
			"f.yaml:12: warning: Gateway default/gw: spec.servers[1].tls.mode: PASSTHROUGH mode does not terminate TLS, the certificates are ignored",
		},
	},
	{
		name: "unix bind with a port number",
		doc: networkingDoc("Gateway", "gw", `  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    bind: unix://relative/sock
    hosts: ["*.example.com"]
  - port: {number: 81, name: http2, protocol: HTTP}
    bind: 10.0.0.300
    hosts: ["*.example.com"]
`),
		want: []string{
			`f.yaml:8: Gateway default/gw: spec.servers[0].bind: unix domain socket "relative/sock" must be an absolute path to a file`,
			"f.yaml:7: Gateway default/gw: spec.servers[0].port.number: port number must be 0 for a unix domain socket bind",
			`f.yaml:11: Gateway default/gw: spec.servers[1].bind: bind "10.0.0.300" must be an IP address or unix://path`,
		},
	},
}

func TestGateway(t *testing.T) { runNetworkingCases(t, gatewayCases) }
