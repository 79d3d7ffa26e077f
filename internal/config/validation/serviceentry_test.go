package validation

import "testing"

var serviceEntryCases = []networkingCase{
	{
		name: "no hosts",
		doc:  networkingDoc("ServiceEntry", "r", "  ports:\n  - {number: 443, name: https, protocol: HTTPS}\n"),
		want: []string{"f.yaml:5: ServiceEntry default/r: spec.hosts: a service entry needs at least one host"},
	},
	{
		name: "wildcard hosts",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: ["*", "*.example.com", "*foo.example.com"]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
`),
		want: []string{
			`f.yaml:6: ServiceEntry default/r: spec.hosts[0]: host cannot be the wildcard "*"`,
			`f.yaml:6: warning: ServiceEntry default/r: spec.hosts[2]: partial wildcard "*foo.example.com" is not allowed`,
			`f.yaml:6: ServiceEntry default/r: spec.hosts[1]: host "*.example.com" must be a fully qualified domain name (no wildcard) when resolution is DNS and there are no endpoints`,
			`f.yaml:6: ServiceEntry default/r: spec.hosts[2]: host "*foo.example.com" must be a fully qualified domain name (no wildcard) when resolution is DNS and there are no endpoints`,
		},
	},
	{
		name: "cidr with dns resolution",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [db.example.com]
  addresses: [10.0.0.0/16, 10.0.0.256]
  ports:
  - {number: 5432, name: tcp-pg, protocol: TCP}
  resolution: DNS
`),
		want: []string{
			"f.yaml:7: ServiceEntry default/r: spec.addresses[0]: CIDR addresses are only allowed with resolution NONE or STATIC",
			`f.yaml:7: ServiceEntry default/r: spec.addresses[1]: "10.0.0.256" is not a valid IP address`,
		},
	},
	{
		name: "duplicate ports and bad protocol",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [api.example.com]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  - {number: 443, name: https, protocol: QUIC}
  - {number: 8443, name: Bad_Name, protocol: HTTPS, targetPort: 70000}
  resolution: DNS
`),
		want: []string{
			`f.yaml:9: ServiceEntry default/r: spec.ports[1].name: duplicate port name "https"`,
			"f.yaml:9: ServiceEntry default/r: spec.ports[1].number: duplicate port number 443",
			`f.yaml:9: ServiceEntry default/r: spec.ports[1].protocol: unsupported protocol "QUIC" (supported: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, UDP, MONGO, REDIS, MYSQL, HTTP_PROXY)`,
			`f.yaml:10: ServiceEntry default/r: spec.ports[2].name: invalid port name "Bad_Name": must be a DNS-1123 label`,
			"f.yaml:10: ServiceEntry default/r: spec.ports[2].targetPort: port number 70000 must be between 1 and 65535",
		},
	},
	{
		name: "static endpoint host name",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [db.internal]
  addresses: [240.0.0.1]
  ports:
  - {number: 5432, name: tcp-pg, protocol: TCP}
  resolution: STATIC
  endpoints:
  - address: db1.internal
  - address: 10.0.0.2
    ports: {tcp-other: 5433}
`),
		want: []string{
			`f.yaml:12: ServiceEntry default/r: spec.endpoints[0].address: address "db1.internal" is not a valid IP address`,
			`f.yaml:14: ServiceEntry default/r: spec.endpoints[1].ports[tcp-other]: port "tcp-other" is not a port name of the service entry`,
		},
	},
	{
		name: "resolution none with endpoints",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [db.internal]
  addresses: [10.0.0.0/24]
  ports:
  - {number: 5432, name: tcp-pg, protocol: TCP}
  resolution: NONE
  endpoints:
  - address: 10.0.0.2
`),
		want: []string{"f.yaml:11: ServiceEntry default/r: spec.endpoints: resolution NONE cannot have endpoints"},
	},
	{
		name: "multiple hosts with tcp",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [a.example.com, b.example.com]
  ports:
  - {number: 9000, name: tcp, protocol: TCP}
  resolution: DNS
`),
		want: []string{
			"f.yaml:8: warning: ServiceEntry default/r: spec.ports[0]: a TCP (or unset protocol) port needs addresses unless proxies allocate them (DNS auto allocation)",
			"f.yaml:8: ServiceEntry default/r: spec.ports[0].protocol: multiple hosts need HTTP or TLS ports to tell them apart (resolution DNS)",
		},
	},
	{
		name: "selector with endpoints",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [vm.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: STATIC
  workloadSelector:
    labels: {app: vm}
  endpoints:
  - address: 10.0.0.1
`),
		want: []string{"f.yaml:10: ServiceEntry default/r: spec.workloadSelector: workloadSelector and endpoints cannot both be set"},
	},
	{
		name: "dns round robin with two endpoints",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [api.example.com]
  ports:
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS_ROUND_ROBIN
  endpoints:
  - address: a.example.com
  - address: "b..example.com"
`),
		want: []string{
			"f.yaml:10: ServiceEntry default/r: spec.endpoints: resolution DNS_ROUND_ROBIN allows at most one endpoint, got 2",
			`f.yaml:12: ServiceEntry default/r: spec.endpoints[1].address: address "b..example.com" is neither an IP address nor a valid host name`,
		},
	},
	{
		name: "export to",
		doc: networkingDoc("ServiceEntry", "r", `  hosts: [api.example.com]
  ports:
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS
  exportTo: ["~", "default", "."]
`),
		want: []string{
			`f.yaml:10: ServiceEntry default/r: spec.exportTo[2]: duplicate exportTo entry: "." and the current namespace "default"`,
			`f.yaml:10: ServiceEntry default/r: spec.exportTo: "~" (no one) cannot be combined with other exportTo values`,
		},
	},
}

func TestServiceEntry(t *testing.T) { runNetworkingCases(t, serviceEntryCases) }
