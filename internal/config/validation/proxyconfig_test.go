package validation

import "testing"

// pcDoc is a ProxyConfig foo/proxy whose spec body starts on line 7.
func pcDoc(body string) string {
	return "apiVersion: networking.istio.io/v1beta1\nkind: ProxyConfig\nmetadata:\n  name: proxy\n  namespace: foo\nspec:\n" + body
}

func TestProxyConfigProblems(t *testing.T) {
	secRunCases(t, "proxyconfig.yaml", []secCase{
		{name: "negative concurrency", doc: pcDoc(`
  concurrency: -1
`), want: []string{
			"proxyconfig.yaml:8: ProxyConfig foo/proxy: spec.concurrency: must be 0 (one worker per CPU) or more, got -1",
		}},
		{name: "environment variables", doc: pcDoc(`
  environmentVariables:
    "A=B": "1"
    "1_BAD": "x"
    GOOD_NAME: "ok"
`), want: []string{
			"proxyconfig.yaml:10: warning: ProxyConfig foo/proxy: spec.environmentVariables[1_BAD]: environment variable name \"1_BAD\" is not portable (letters, digits and '_', not starting with a digit)",
			"proxyconfig.yaml:9: ProxyConfig foo/proxy: spec.environmentVariables[A=B]: environment variable name \"A=B\" must not contain '='",
		}},
		{name: "image type", doc: pcDoc(`
  image:
    imageType: centos
`), want: []string{
			"proxyconfig.yaml:9: warning: ProxyConfig foo/proxy: spec.image.imageType: \"centos\" is not an image type Istio publishes (default, debug, distroless); it must exist in the configured hub",
		}},
		{name: "selector", doc: pcDoc(`
  selector:
    matchLabels:
      app.kubernetes.io/name: "-bad"
`), want: []string{
			"proxyconfig.yaml:10: ProxyConfig foo/proxy: spec.selector.matchLabels[app.kubernetes.io/name]: invalid label value \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
		}},
	})
}
