package cli

import (
	"os"
	"strings"
	"testing"
)

func TestAnalyzeGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{name: "analyze_bookinfo", args: []string{"-f", "testdata/analyze/bookinfo.yaml"}, code: 0},
		{name: "analyze_broken", args: []string{"-f", "testdata/analyze/broken.yaml"}, code: 79},
		{name: "analyze_broken_json", args: []string{"-f", "testdata/analyze/broken.yaml", "-o", "json"}, code: 79},
		{name: "analyze_broken_yaml", args: []string{"-f", "testdata/analyze/broken.yaml", "-o", "yaml", "--output-threshold", "Error"}, code: 79},
		{name: "analyze_dir", args: []string{"-f", "testdata/analyze", "-n", "default"}, code: 79},
		{name: "analyze_list", args: []string{"-L"}, code: 0},
		{name: "analyze_envoyfilter_unapplied", args: []string{"-f", "testdata/envoyfilter-unapplied.yaml"}, code: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, "", append([]string{"analyze"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			golden(t, tc.name, "$ bowline analyze "+strings.Join(tc.args, " ")+"\n--- stdout\n"+out+"--- stderr\n"+errOut)
		})
	}
}

func TestAnalyzeExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{name: "warnings pass the default threshold", args: []string{"-f", "testdata/analyze/services.yaml"}, code: 0,
			stdout: "Warning [IST0128] (DestinationRule default/tls-origination testdata/analyze/services.yaml:18) DestinationRule default/tls-origination in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: api.example.com\n"},
		{name: "warnings fail at Warning", args: []string{"-f", "testdata/analyze/services.yaml", "--failure-threshold", "warning"}, code: 79,
			stdout: "Warning [IST0128] (DestinationRule default/tls-origination testdata/analyze/services.yaml:18) DestinationRule default/tls-origination in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: api.example.com\n",
			stderr: "error: Analyzers found issues when analyzing 1 file.\nSee https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions\n"},
		{name: "hidden warnings still fail", args: []string{"-f", "testdata/analyze/services.yaml", "--failure-threshold", "Info", "--output-threshold", "Error"}, code: 79,
			stdout: "", stderr: "✔ No validation issues found when analyzing 1 file.\nerror: Analyzers found issues when analyzing 1 file.\nSee https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions\n"},
		{name: "stdin", args: []string{"-f", "-"}, stdin: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination:\n        host: r\n", code: 79,
			stdout: "Error [IST0101] (VirtualService default/r <stdin>:10) Referenced host not found: \"r\"\n"},
		{name: "stdin with its Service", args: []string{"-f", "-", "-n", "shop"}, stdin: "apiVersion: v1\nkind: Service\nmetadata:\n  name: r\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination:\n        host: r.shop.svc.cluster.local\n", code: 0,
			stdout: "", stderr: "✔ No validation issues found when analyzing 1 file.\n"},
		{name: "no CA: STRICT reported", args: []string{"-f", "-", "--no-ca"}, stdin: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls: {mode: STRICT}\n", code: 79,
			stdout: "Error [BWL0001] (PeerAuthentication istio-system/default <stdin>:7) spec.mtls.mode STRICT needs workload certificates, but the mesh runs without a CA (discovery --insecure-xds without --ca-dir, up --insecure): plaintext is accepted instead.\n"},
		{name: "with a CA: STRICT is fine", args: []string{"-f", "-"}, stdin: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls: {mode: STRICT}\n", code: 0},
		{name: "EnvoyFilter patching in a filter the proxy does not run", args: []string{"-f", "-"}, stdin: efLuaAndRateLimit, code: 0,
			stdout: "Warning [BWL0003] (EnvoyFilter istio-system/filters <stdin>:17) HTTP filter \"envoy.filters.http.lua\" (type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua) at spec.configPatches[1].patch.value.typed_config is not run by Bowline's proxy: proxies this patch applies to refuse (NACK) the patched configuration and keep their last good one.\n"},
		{name: "bad output format", args: []string{"-f", "testdata/analyze/bookinfo.yaml", "-o", "xml"}, code: 64,
			stderr: "error: unknown output format \"xml\": use one of log, json, yaml\n"},
		{name: "bad threshold", args: []string{"-f", "testdata/analyze/bookinfo.yaml", "--failure-threshold", "fatal"}, code: 64,
			stderr: "error: --failure-threshold: unknown level \"fatal\" (valid: Info, Warning, Error)\n"},
		{name: "no input", args: nil, code: 64,
			stderr: "error: no input: give one or more -f PATH (a file, a directory or - for stdin)\n"},
		{name: "missing file", args: []string{"-f", "testdata/analyze/nope.yaml"}, code: 1,
			stderr: "error: read testdata/analyze/nope.yaml: stat testdata/analyze/nope.yaml: no such file or directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.stdin, append([]string{"analyze"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if out != tc.stdout {
				t.Errorf("stdout:\n%q\nwant:\n%q", out, tc.stdout)
			}
			if tc.stderr != "" && errOut != tc.stderr {
				t.Errorf("stderr:\n%q\nwant:\n%q", errOut, tc.stderr)
			}
		})
	}
}

func TestAnalyzeJSONIsEmptyArrayWhenClean(t *testing.T) {
	out, _, code := run(t, "", "analyze", "-f", "testdata/analyze/bookinfo.yaml", "-o", "json")
	if code != 0 || out != "[]\n" {
		t.Errorf("got %q exit %d, want \"[]\\n\" exit 0", out, code)
	}
	if _, err := os.Stat("testdata/analyze/bookinfo.yaml"); err != nil {
		t.Fatal(err)
	}
}

// efLuaAndRateLimit adds the local rate limit (which the proxy runs) and a
// Lua filter (which it does not).
const efLuaAndRateLimit = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filters, namespace: istio-system}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: rl}
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, default_source_code: {inline_string: "function envoy_on_request(h) end"}}
`
