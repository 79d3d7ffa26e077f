package validation

import "testing"

var destinationRuleCases = []networkingCase{
	{
		name: "host required",
		doc:  networkingDoc("DestinationRule", "r", "  subsets:\n  - name: v1\n    labels: {version: v1}\n"),
		want: []string{"f.yaml:5: DestinationRule default/r: spec.host: host is required"},
	},
	{
		name: "subsets",
		file: "reviews.yaml",
		doc: networkingDoc("DestinationRule", "reviews", `  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v1
    labels: {version: "v1 beta"}
  - name: V_2
`),
		want: []string{
			`reviews.yaml:10: DestinationRule default/reviews: spec.subsets[1].name: duplicate subset name "v1"`,
			`reviews.yaml:11: DestinationRule default/reviews: spec.subsets[1].labels[version]: invalid label value "v1 beta": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
			`reviews.yaml:12: DestinationRule default/reviews: spec.subsets[2].name: invalid subset name "V_2": must be a DNS-1123 label`,
		},
	},
	{
		name: "empty traffic policy",
		doc:  networkingDoc("DestinationRule", "r", "  host: reviews\n  trafficPolicy: {}\n"),
		want: []string{"f.yaml:7: DestinationRule default/r: spec.trafficPolicy: traffic policy must set at least one field"},
	},
	{
		name: "mutual tls without certificates",
		doc: networkingDoc("DestinationRule", "r", `  host: db.example.com
  trafficPolicy:
    tls:
      mode: MUTUAL
      caCertificates: /etc/certs/ca.pem
`),
		want: []string{
			"f.yaml:8: DestinationRule default/r: spec.trafficPolicy.tls.clientCertificate: MUTUAL mode needs clientCertificate (or credentialName)",
			"f.yaml:8: DestinationRule default/r: spec.trafficPolicy.tls.privateKey: MUTUAL mode needs privateKey (or credentialName)",
		},
	},
	{
		name: "credential name with files",
		doc: networkingDoc("DestinationRule", "r", `  host: db.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      credentialName: db-cert
      caCertificates: /etc/certs/ca.pem
`),
		want: []string{"f.yaml:10: DestinationRule default/r: spec.trafficPolicy.tls.credentialName: clientCertificate, privateKey, caCertificates and caCrl cannot be set with credentialName"},
	},
	{
		name: "outlier detection",
		doc: networkingDoc("DestinationRule", "r", `  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutiveLocalOriginFailures: 3
      maxEjectionPercent: 150
      interval: 0.5ms
`),
		want: []string{
			"f.yaml:11: DestinationRule default/r: spec.trafficPolicy.outlierDetection.interval: duration 500µs must be at least 1ms",
			"f.yaml:9: DestinationRule default/r: spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: needs splitExternalLocalOriginErrors: true",
			"f.yaml:10: DestinationRule default/r: spec.trafficPolicy.outlierDetection.maxEjectionPercent: percentage 150 must be between 0 and 100",
		},
	},
	{
		name: "connection pool",
		doc: networkingDoc("DestinationRule", "r", `  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: -1
        connectTimeout: 0s
      http:
        http2MaxRequests: -5
        h2UpgradePolicy: UPGRADE
        useClientProtocol: true
`),
		want: []string{
			"f.yaml:13: DestinationRule default/r: spec.trafficPolicy.connectionPool.http.http2MaxRequests: must not be negative",
			"f.yaml:15: DestinationRule default/r: spec.trafficPolicy.connectionPool.http.useClientProtocol: useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
			"f.yaml:10: DestinationRule default/r: spec.trafficPolicy.connectionPool.tcp.maxConnections: must not be negative",
			"f.yaml:11: DestinationRule default/r: spec.trafficPolicy.connectionPool.tcp.connectTimeout: duration 0s must be at least 1ms",
		},
	},
	{
		name: "consistent hash",
		doc: networkingDoc("DestinationRule", "r", `  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {ttl: 10s}
        maglev: {tableSize: 1000}
`),
		want: []string{
			"f.yaml:10: DestinationRule default/r: spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: cookie name is required",
			"f.yaml:11: DestinationRule default/r: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize 1000 must be a prime number",
		},
	},
	{
		name: "port level settings",
		doc: networkingDoc("DestinationRule", "r", `  host: reviews
  trafficPolicy:
    portLevelSettings:
    - loadBalancer: {simple: LEAST_REQUEST}
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
    - port: {number: 9080}
`),
		want: []string{
			"f.yaml:9: DestinationRule default/r: spec.trafficPolicy.portLevelSettings[0].port: port is required",
			"f.yaml:12: DestinationRule default/r: spec.trafficPolicy.portLevelSettings[2].port.number: port 9080 already has settings in portLevelSettings[1]",
			"f.yaml:12: DestinationRule default/r: spec.trafficPolicy.portLevelSettings[2]: port traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection or tls",
		},
	},
	{
		name: "locality weights",
		doc: networkingDoc("DestinationRule", "r", `  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5}
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-west/zone1/*
          to:
            "us-west/zone1/*": 80
            "us-west/zone2/*": 10
`),
		want: []string{"f.yaml:13: DestinationRule default/r: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: total locality weight 90 must be 100"},
	},
	{
		name: "workload selector exported",
		doc: networkingDoc("DestinationRule", "r", `  host: reviews
  workloadSelector:
    matchLabels: {app: "*"}
  exportTo: ["*"]
`),
		want: []string{
			"f.yaml:9: DestinationRule default/r: spec.exportTo: a destination rule with a workload selector cannot be exported beyond its namespace",
			`f.yaml:8: DestinationRule default/r: spec.workloadSelector.matchLabels[app]: wildcard is not supported in a selector: "app=*"`,
		},
	},
}

func TestDestinationRule(t *testing.T) { runNetworkingCases(t, destinationRuleCases) }
