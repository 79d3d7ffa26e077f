package validation

import "testing"

var workloadCases = []networkingCase{
	{
		name: "entry without address",
		file: "vm.yaml",
		doc:  networkingDoc("WorkloadEntry", "vm1", "  labels: {app: ratings}\n  serviceAccount: ratings\n"),
		want: []string{"vm.yaml:5: WorkloadEntry default/vm1: spec.address: address is required (or a network for an endpoint reached through its network gateway)"},
	},
	{
		name: "entry with network but no address",
		doc:  networkingDoc("WorkloadEntry", "vm1", "  network: vpc-2\n"),
		want: []string{`f.yaml:5: warning: WorkloadEntry default/vm1: spec.address: address is unset, the endpoint is reached through the gateway of network "vpc-2"`},
	},
	{
		name: "entry address ports and labels",
		doc: networkingDoc("WorkloadEntry", "vm1", `  address: "not_valid!"
  ports:
    http: 0
    Bad_Port: 8080
  labels:
    "app/": ratings
`),
		want: []string{
			`f.yaml:6: WorkloadEntry default/vm1: spec.address: address "not_valid!" is neither an IP address nor a valid host name`,
			`f.yaml:9: WorkloadEntry default/vm1: spec.ports[Bad_Port]: invalid port name "Bad_Port": must be a DNS-1123 label`,
			"f.yaml:8: WorkloadEntry default/vm1: spec.ports[http]: port number 0 must be between 1 and 65535",
			`f.yaml:11: WorkloadEntry default/vm1: spec.labels[app/]: invalid label key "app/": name part must be non-empty`,
		},
	},
	{
		name: "unix entry with ports",
		doc: networkingDoc("WorkloadEntry", "vm1", `  address: unix:///var/run/app/
  ports: {http: 8080}
`),
		want: []string{
			`f.yaml:6: WorkloadEntry default/vm1: spec.address: unix domain socket "/var/run/app/" must be an absolute path to a file`,
			"f.yaml:7: WorkloadEntry default/vm1: spec.ports: a unix domain socket endpoint cannot have ports",
		},
	},
	{
		name: "group without template",
		doc:  networkingDoc("WorkloadGroup", "ratings", "  metadata:\n    labels: {app: ratings}\n"),
		want: []string{"f.yaml:5: WorkloadGroup default/ratings: spec.template: template is required"},
	},
	{
		name: "group probe http",
		doc: networkingDoc("WorkloadGroup", "ratings", `  template:
    serviceAccount: ratings
    ports: {http: 70000}
  probe:
    periodSeconds: -1
    httpGet:
      path: /ready
      port: 0
      scheme: FTP
      httpHeaders:
      - name: "x y"
        value: z
`),
		want: []string{
			"f.yaml:8: WorkloadGroup default/ratings: spec.template.ports[http]: port number 70000 must be between 1 and 65535",
			"f.yaml:10: WorkloadGroup default/ratings: spec.probe.periodSeconds: must not be negative",
			"f.yaml:13: WorkloadGroup default/ratings: spec.probe.httpGet.port: port number 0 must be between 1 and 65535",
			`f.yaml:14: WorkloadGroup default/ratings: spec.probe.httpGet.scheme: scheme "FTP" must be HTTP or HTTPS`,
			`f.yaml:16: WorkloadGroup default/ratings: spec.probe.httpGet.httpHeaders[0].name: invalid header name "x y": only letters, digits, '-' and '_' are allowed`,
		},
	},
	{
		name: "group probe without method",
		doc: networkingDoc("WorkloadGroup", "ratings", `  template: {serviceAccount: ratings}
  probe: {periodSeconds: 5}
`),
		want: []string{"f.yaml:7: WorkloadGroup default/ratings: spec.probe: probe needs one of httpGet, tcpSocket, grpc or exec"},
	},
}

func TestWorkloadEntryAndGroup(t *testing.T) { runNetworkingCases(t, workloadCases) }
