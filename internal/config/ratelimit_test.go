package config

import (
	"strings"
	"testing"
)

func TestParseRateLimit(t *testing.T) {
	good := `apiVersion: bowline.dev/v1alpha1
kind: RateLimit
metadata: {name: productpage}
spec:
  selector: {matchLabels: {app: productpage}}
  local:
    tokenBucket: {maxTokens: 10, fillInterval: 60s}
    rules:
    - name: login
      match: {path: {exact: /login}, method: POST}
      tokenBucket: {maxTokens: 2, tokensPerFill: 1, fillInterval: 1s}
  global:
    service: ratelimit
    port: 8081
    domain: bookinfo
    failureMode: Deny
    descriptors:
    - entries: [{key: PATH, header: ":path"}, {remoteAddress: true}]
`
	res := Parse("rl.yaml", []byte(good), ParseOptions{})
	if len(res.Problems) != 0 || len(res.Objects) != 1 {
		t.Fatalf("problems %v, objects %d", res.Problems, len(res.Objects))
	}
	rl := res.Objects[0].Spec.(*RateLimitSpec)
	if rl.Local.Rules[0].TokenBucket.MaxTokens != 2 || rl.Global.FailureMode != FailureModeDeny || len(rl.Global.Descriptors[0].Entries) != 2 {
		t.Errorf("spec = %+v", rl)
	}
	const head = "apiVersion: bowline.dev/v1alpha1\nkind: RateLimit\nmetadata: {name: rl, namespace: shop}\n"
	tests := []struct{ name, spec, want string }{
		{"neither", "spec: {selector: {matchLabels: {app: a}}}", "rl.yaml:4: RateLimit shop/rl: spec: one of local and global is required"},
		{"unknown field", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: 1s}\n    burst: 3",
			`rl.yaml:7: RateLimit shop/rl: spec.local.burst: unknown field "burst"`},
		{"wrong type", "spec:\n  local:\n    tokenBucket: {maxTokens: many, fillInterval: 1s}",
			`rl.yaml:6: RateLimit shop/rl: spec.local.tokenBucket.maxTokens: expected integer, got string`},
		{"no bucket", "spec:\n  local: {rateLimitHeaders: true}", "rl.yaml:5: RateLimit shop/rl: spec.local.tokenBucket: required"},
		{"zero tokens", "spec:\n  local:\n    tokenBucket: {maxTokens: 0, fillInterval: 1s}",
			"rl.yaml:6: RateLimit shop/rl: spec.local.tokenBucket.maxTokens: must be above 0"},
		{"short interval", "spec:\n  local:\n    tokenBucket:\n      maxTokens: 1\n      fillInterval: 10ms",
			"rl.yaml:8: RateLimit shop/rl: spec.local.tokenBucket.fillInterval: 10ms is below Envoy's minimum of 50ms"},
		{"bad duration", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: soon}",
			`spec.local.tokenBucket.fillInterval: "soon": not a duration`},
		{"fill above max", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, tokensPerFill: 5, fillInterval: 1s}",
			"spec.local.tokenBucket.tokensPerFill: 5 is above maxTokens 1"},
		{"rule without match", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: 1s}\n    rules:\n    - name: a\n      tokenBucket: {maxTokens: 1, fillInterval: 1s}",
			"rl.yaml:8: RateLimit shop/rl: spec.local.rules[0].match: required"},
		{"two string matches", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: 1s}\n    rules:\n    - name: a\n      match: {path: {exact: /a, prefix: /b}}\n      tokenBucket: {maxTokens: 1, fillInterval: 1s}",
			"spec.local.rules[0].match.path: set exactly one of exact, prefix and regex"},
		{"bad regex", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: 1s}\n    rules:\n    - name: a\n      match: {headers: {x-user: {regex: '('}}}\n      tokenBucket: {maxTokens: 1, fillInterval: 1s}",
			"spec.local.rules[0].match.headers[x-user].regex: error parsing regexp"},
		{"duplicate rule", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: 1s}\n    rules:\n    - {name: a, match: {method: GET}, tokenBucket: {maxTokens: 1, fillInterval: 1s}}\n    - {name: a, match: {method: PUT}, tokenBucket: {maxTokens: 1, fillInterval: 1s}}",
			`spec.local.rules[1].name: duplicate rule name "a"`},
		{"header value with operator", "spec:\n  local:\n    tokenBucket: {maxTokens: 1, fillInterval: 1s}\n    responseHeaders: {x-limited: '%START_TIME%'}",
			"spec.local.responseHeaders[x-limited]: command operators (%...%) are not supported"},
		{"selector and targetRefs", "spec:\n  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Gateway, name: gw}]\n  local: {tokenBucket: {maxTokens: 1, fillInterval: 1s}}",
			"spec.targetRefs: selector and targetRefs are exclusive"},
		{"targetRef kind", "spec:\n  targetRefs: [{kind: Service, name: gw}]\n  local: {tokenBucket: {maxTokens: 1, fillInterval: 1s}}",
			"spec.targetRefs[0].kind: must be Gateway"},
		{"port", "spec:\n  ports: [0]\n  local: {tokenBucket: {maxTokens: 1, fillInterval: 1s}}",
			"rl.yaml:5: RateLimit shop/rl: spec.ports[0]: must be between 1 and 65535"},
		{"global without service", "spec:\n  global:\n    port: 8081\n    domain: d\n    descriptors: [{entries: [{key: k, value: v}]}]",
			"rl.yaml:5: RateLimit shop/rl: spec.global.service: required"},
		{"failure mode", "spec:\n  global:\n    service: rls\n    port: 8081\n    domain: d\n    failureMode: Open\n    descriptors: [{entries: [{key: k, value: v}]}]",
			`rl.yaml:9: RateLimit shop/rl: spec.global.failureMode: "Open": must be Allow or Deny`},
		{"no descriptors", "spec:\n  global: {service: rls, port: 8081, domain: d}",
			"spec.global.descriptors: at least one descriptor is required"},
		{"entry with two sources", "spec:\n  global:\n    service: rls\n    port: 8081\n    domain: d\n    descriptors: [{entries: [{key: k, header: x-a, remoteAddress: true}]}]",
			"spec.global.descriptors[0].entries[0]: set exactly one of header, remoteAddress, value and match"},
		{"header entry without key", "spec:\n  global:\n    service: rls\n    port: 8081\n    domain: d\n    descriptors: [{entries: [{header: x-a}]}]",
			"spec.global.descriptors[0].entries[0].key: required with header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Parse("rl.yaml", []byte(head+tt.spec+"\n"), ParseOptions{})
			if len(res.Objects) != 0 || !strings.Contains(res.Problems.Error(), tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", res.Problems.Error(), tt.want)
			}
		})
	}
}
