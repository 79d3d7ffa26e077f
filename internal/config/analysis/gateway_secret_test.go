package analysis

import "testing"

// testCertB64 is a throwaway self-signed certificate (base64 of its PEM).
const testCertB64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRpZ0F3SUJBZ0lCQnpBS0JnZ3Foa2pPUFFRREFqQWZNUjB3R3dZRFZRUURFeFJpYjI5cmFXNW0KYnk1bGVHRnRjR3hsTG1OdmJUQWdGdzB5TmpBeE1ERXdNREF3TURCYUdBOHlNVEkyTURFd01UQXdNREF3TUZvdwpIekVkTUJzR0ExVUVBeE1VWW05dmEybHVabTh1WlhoaGJYQnNaUzVqYjIwd1dUQVRCZ2NxaGtqT1BRSUJCZ2dxCmhrak9QUU1CQndOQ0FBU2xjbWtXT05Pd0RuWWZzbFgxUHVOUTBZWVFjeDgwV0FBaVdDRG1iNCs2akNIbURIVEUKdmxBbnNGZmRWUzVHSktEQ29NdWFramhFWGVkTklUcndDUFM1bzJNd1lUQU9CZ05WSFE4QkFmOEVCQU1DQW9RdwpEd1lEVlIwVEFRSC9CQVV3QXdFQi96QWRCZ05WSFE0RUZnUVVxWnM5R2cyYjFaZG92V3IyT3JMWG9LZi9iQzB3Ckh3WURWUjBSQkJnd0ZvSVVZbTl2YTJsdVptOHVaWGhoYlhCc1pTNWpiMjB3Q2dZSUtvWkl6ajBFQXdJRFJ3QXcKUkFJZ0hYRlBoNS9qS3pJYjNqSjFTejhoN0RnM2ZNRGtMWHp3dHBDdU9USEc2cTRDSUNkTHlCUkFEby8vNEpIUwp6STBJTlFUREdPaXF2TE0wbGNyL2VRQ1U3WVM1Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"

func TestGatewaySecrets(t *testing.T) {
	const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a-cred}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: MUTUAL, credentialName: b-cred}
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [c.example.com]
    tls: {mode: PASSTHROUGH}
---
`
	secret := func(name, data string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: istio-system}\ndata: {" + data + "}\n---\n"
	}
	good := "tls.crt: " + testCertB64 + ", tls.key: a2V5"
	runCases(t, []testCase{
		{name: "secrets present", yaml: gw + secret("a-cred", good) + secret("b-cred", good) + secret("b-cred-cacert", "ca.crt: "+testCertB64)},
		{name: "CA in the credential itself", yaml: gw + secret("a-cred", good) + secret("b-cred", good+", ca.crt: "+testCertB64)},
		{name: "missing secret and CA", yaml: gw + secret("b-cred", good), want: []string{
			`Error [IST0101] (Gateway default/gw test.yaml:9) Referenced credentialName not found: "a-cred"`,
			`Error [IST0101] (Gateway default/gw test.yaml:12) Referenced CA certificate of credentialName not found: "b-cred"`,
		}},
		{name: "secret in the Gateway's namespace, not the gateway workload's", yaml: gw + secret("b-cred", good) + secret("b-cred-cacert", "cacert: "+testCertB64) +
			"apiVersion: v1\nkind: Secret\nmetadata: {name: a-cred, namespace: default}\ndata: {" + good + "}\n", want: []string{
			`Error [IST0101] (Gateway default/gw test.yaml:9) Referenced credentialName not found: "a-cred"`,
		}},
		{name: "invalid certificate", yaml: gw + secret("a-cred", "tls.crt: bm90IGEgY2VydA==, tls.key: a2V5") + secret("b-cred", "cert: "+testCertB64) +
			secret("b-cred-cacert", "cacert: "+testCertB64), want: []string{
			`Error [IST0161] (Gateway default/gw test.yaml:9) The credential referenced by the Gateway gw in namespace default is invalid, which can cause the traffic not to work as expected.`,
			`Error [IST0161] (Gateway default/gw test.yaml:12) The credential referenced by the Gateway gw in namespace default is invalid, which can cause the traffic not to work as expected.`,
		}},
	}, gatewaySecretAnalyzer{})
}
