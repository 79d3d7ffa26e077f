package validation

import "testing"

var sidecarCases = []networkingCase{
	{
		name: "egress host without namespace",
		doc: networkingDoc("Sidecar", "default", `  egress:
  - hosts: [istio-system/*, reviews.default.svc.cluster.local, "*/reviews"]
`),
		want: []string{
			`f.yaml:7: Sidecar default/default: spec.egress[0].hosts[1]: host "reviews.default.svc.cluster.local" must be of the form namespace/dnsName`,
			`f.yaml:7: Sidecar default/default: spec.egress[0].hosts[2]: short name "reviews" is not allowed, use a fully qualified domain name`,
		},
	},
	{
		name: "empty sidecar",
		doc:  networkingDoc("Sidecar", "s", "  workloadSelector:\n    labels: {app: reviews}\n"),
		want: []string{"f.yaml:5: Sidecar default/s: spec: sidecar is empty: set ingress, egress, outboundTrafficPolicy or inboundConnectionPool"},
	},
	{
		name: "catch-all egress listener not last",
		doc: networkingDoc("Sidecar", "s", `  egress:
  - hosts: ["./*"]
  - port: {number: 9080, protocol: HTTP, name: http}
    hosts: ["./*", "./*"]
`),
		want: []string{
			"f.yaml:7: Sidecar default/s: spec.egress[0]: the egress listener without a port must be the last one",
			`f.yaml:9: warning: Sidecar default/s: spec.egress[1].hosts[1]: duplicate egress host "./*"`,
		},
	},
	{
		name: "ingress listener",
		doc: networkingDoc("Sidecar", "s", `  workloadSelector:
    labels: {app: ratings}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 10.0.0.1:8080
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 9080, protocol: TCPX, name: tcp}
    defaultEndpoint: 127.0.0.1:0
`),
		want: []string{
			`f.yaml:10: Sidecar default/s: spec.ingress[0].defaultEndpoint: defaultEndpoint "10.0.0.1:8080" must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://path`,
			"f.yaml:11: Sidecar default/s: spec.ingress[0].tls.mode: mode ISTIO_MUTUAL is not supported in sidecar ingress tls",
			`f.yaml:12: Sidecar default/s: spec.ingress[1].port.protocol: unsupported protocol "TCPX" (supported: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, UDP, MONGO, REDIS, MYSQL, HTTP_PROXY)`,
			"f.yaml:12: Sidecar default/s: spec.ingress[1].port.number: duplicate port 9080: ports of IP bound listeners must be unique",
			"f.yaml:13: Sidecar default/s: spec.ingress[1].defaultEndpoint: port number 0 must be between 1 and 65535",
		},
	},
	{
		name: "unix egress listener",
		doc: networkingDoc("Sidecar", "s", `  egress:
  - port: {number: 0, protocol: HTTP, name: uds}
    bind: 127.0.0.1
    captureMode: IPTABLES
    hosts: ["./*"]
`),
		want: []string{
			"f.yaml:8: Sidecar default/s: spec.egress[0].bind: a listener with port 0 needs a unix:// bind address",
			"f.yaml:9: Sidecar default/s: spec.egress[0].captureMode: unix domain socket listeners need captureMode DEFAULT or NONE",
		},
	},
	{
		name: "egress proxy needs allow any",
		doc: networkingDoc("Sidecar", "s", `  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
    egressProxy:
      host: egress.example.com
      port: {number: 3128}
`),
		want: []string{"f.yaml:8: Sidecar default/s: spec.outboundTrafficPolicy.egressProxy: egressProxy needs mode ALLOW_ANY"},
	},
	{
		name: "selector wildcard",
		doc: networkingDoc("Sidecar", "s", `  workloadSelector:
    labels: {app: "rev*"}
  egress:
  - hosts: ["*/*", "istio-system/*"]
`),
		want: []string{
			`f.yaml:7: Sidecar default/s: spec.workloadSelector.labels[app]: wildcard is not supported in a selector: "app=rev*"`,
			`f.yaml:9: warning: Sidecar default/s: spec.egress[0].hosts: "*/*" selects every host, the other hosts add nothing`,
		},
	},
}

func TestSidecar(t *testing.T) { runNetworkingCases(t, sidecarCases) }
