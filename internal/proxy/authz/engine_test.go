package authz

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3" // Any resolution in protojson
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// httpEngine compiles an HTTP RBAC config written in protojson.
func httpEngine(t testing.TB, js string) *Engine {
	t.Helper()
	cfg := &rbachttpv3.RBAC{}
	if err := protojson.Unmarshal([]byte(js), cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	e, err := NewHTTP(cfg)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	return e
}

// one wraps a permission and a principal into a one-policy rule set.
func one(action, perm, prin string) string {
	return `{"rules":{"action":"` + action + `","policies":{"p":{"permissions":[` + perm + `],"principals":[` + prin + `]}}}}`
}

const anyJS = `{"any":true}`

func baseReq() *Request {
	return &Request{
		Method: "GET", Host: "svc.example.com:9080", Path: "/api/v1?x=1",
		Headers:     http.Header{"X-Tenant": {"acme", "beta"}, "X-One": {"v"}},
		Source:      netip.MustParseAddrPort("10.1.2.3:5555"),
		Remote:      netip.MustParseAddr("203.0.113.9"),
		Destination: netip.MustParseAddrPort("10.0.0.10:9080"),
		SNI:         "outbound_.9080_._.svc.default.svc.cluster.local",
		Principal:   "spiffe://cluster.local/ns/default/sa/reader", Authenticated: true,
		Metadata: map[string]map[string]any{"envoy.filters.http.jwt_authn": {"payload": map[string]any{
			"iss": "https://issuer.example.com", "sub": "alice", "aud": []any{"a1", "a2"}, "azp": "web",
			"groups": []any{"admin", "dev"}, "realm": map[string]any{"roles": "reader"}, "n": 3.0, "ok": true,
		}}},
	}
}

func TestEngineMatchers(t *testing.T) {
	sm := func(kind, v string) string { return `{"` + kind + `":"` + v + `"}` }
	hdr := func(name, match string) string { return `{"header":{"name":"` + name + `",` + match + `}}` }
	meta := func(path, value string) string {
		var segs []string
		for _, k := range strings.Split(path, ".") {
			segs = append(segs, `{"key":"`+k+`"}`)
		}
		return `{"metadata":{"filter":"envoy.filters.http.jwt_authn","path":[` + strings.Join(segs, ",") + `],"value":` + value + `}}`
	}
	cases := []struct {
		name       string
		perm, prin string
		mutate     func(*Request)
		want       bool
	}{
		{"any", anyJS, anyJS, nil, true},
		{"method exact", hdr(":method", `"stringMatch":`+sm("exact", "GET")), anyJS, nil, true},
		{"method mismatch", hdr(":method", `"stringMatch":`+sm("exact", "POST")), anyJS, nil, false},
		{"authority ignore case", hdr(":authority", `"stringMatch":{"prefix":"SVC.","ignoreCase":true}`), anyJS, nil, true},
		{"header joined values", hdr("x-tenant", `"stringMatch":`+sm("exact", "acme,beta")), anyJS, nil, true},
		{"header istio regex", anyJS, `{"header":{"name":"x-tenant","stringMatch":{"safeRegex":{"regex":"^beta$|^beta,.*|.*,beta,.*|.*,beta$"}}}}`, nil, true},
		{"header present", hdr("x-one", `"presentMatch":true`), anyJS, nil, true},
		{"header absent", hdr("x-none", `"presentMatch":true`), anyJS, nil, false},
		{"header absent present false", hdr("x-none", `"presentMatch":false`), anyJS, nil, true},
		{"header absent invert", hdr("x-none", `"stringMatch":{"exact":"v"},"invertMatch":true`), anyJS, nil, false},
		{"header invert", hdr("x-one", `"stringMatch":{"exact":"w"},"invertMatch":true`), anyJS, nil, true},
		{"path exact ignores query", `{"urlPath":{"path":` + sm("exact", "/api/v1") + `}}`, anyJS, nil, true},
		{"path prefix", `{"urlPath":{"path":` + sm("prefix", "/api/") + `}}`, anyJS, nil, true},
		{"path suffix", `{"urlPath":{"path":` + sm("suffix", "/v1") + `}}`, anyJS, nil, true},
		{"path regex any", `{"urlPath":{"path":{"safeRegex":{"regex":".+"}}}}`, anyJS, nil, true},
		{"path case sensitive", `{"urlPath":{"path":` + sm("prefix", "/API") + `}}`, anyJS, nil, false},
		{"uri template single", `{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/api/*"}}}`, anyJS, nil, true},
		{"uri template single no deeper", `{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/*"}}}`, anyJS, nil, false},
		{"uri template multi", `{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/**"}}}`, anyJS, nil, true},
		{"dest port", `{"destinationPort":9080}`, anyJS, nil, true},
		{"dest port other", `{"destinationPort":80}`, anyJS, nil, false},
		{"dest port range", `{"destinationPortRange":{"start":9000,"end":9100}}`, anyJS, nil, true},
		{"dest ip", `{"destinationIp":{"addressPrefix":"10.0.0.0","prefixLen":24}}`, anyJS, nil, true},
		{"sni suffix", `{"requestedServerName":` + sm("suffix", ".svc.cluster.local") + `}`, anyJS, nil, true},
		{"sni regex on empty", `{"requestedServerName":{"safeRegex":{"regex":".+"}}}`, anyJS, func(r *Request) { r.SNI = "" }, false},
		{"not rule", `{"notRule":{"destinationPort":80}}`, anyJS, nil, true},
		{"and rules", `{"andRules":{"rules":[{"destinationPort":9080},` + hdr(":method", `"stringMatch":`+sm("exact", "POST")) + `]}}`, anyJS, nil, false},
		{"or rules", `{"orRules":{"rules":[{"destinationPort":1},{"destinationPort":9080}]}}`, anyJS, nil, true},
		{"principal exact", anyJS, `{"authenticated":{"principalName":` + sm("exact", "spiffe://cluster.local/ns/default/sa/reader") + `}}`, nil, true},
		{"principal namespace regex", anyJS, `{"authenticated":{"principalName":{"safeRegex":{"regex":".*/ns/default/.*"}}}}`, nil, true},
		{"principal plaintext", anyJS, `{"authenticated":{"principalName":{"safeRegex":{"regex":".+"}}}}`, func(r *Request) { r.Authenticated, r.Principal = false, "" }, false},
		{"principal any authenticated", anyJS, `{"authenticated":{}}`, nil, true},
		{"direct remote ip", anyJS, `{"directRemoteIp":{"addressPrefix":"10.1.0.0","prefixLen":16}}`, nil, true},
		{"source ip is direct", anyJS, `{"sourceIp":{"addressPrefix":"203.0.113.9"}}`, nil, false},
		{"remote ip", anyJS, `{"remoteIp":{"addressPrefix":"203.0.113.0","prefixLen":24}}`, nil, true},
		{"remote ip defaults to source", anyJS, `{"remoteIp":{"addressPrefix":"10.1.2.3","prefixLen":32}}`, func(r *Request) { r.Remote = netip.Addr{} }, true},
		{"not id", anyJS, `{"notId":{"remoteIp":{"addressPrefix":"203.0.113.9"}}}`, nil, false},
		{"jwt iss and sub", anyJS, `{"andIds":{"ids":[` + meta("payload.iss", `{"stringMatch":`+sm("exact", "https://issuer.example.com")+`}`) + `,` + meta("payload.sub", `{"stringMatch":`+sm("exact", "alice")+`}`) + `]}}`, nil, true},
		{"jwt missing payload", anyJS, meta("payload.sub", `{"stringMatch":{"exact":"alice"}}`), func(r *Request) { r.Metadata = nil }, false},
		{"jwt claim list one_of", anyJS, meta("payload.groups", `{"orMatch":{"valueMatchers":[{"listMatch":{"oneOf":{"stringMatch":{"exact":"dev"}}}},{"stringMatch":{"exact":"dev"}}]}}`), nil, true},
		{"jwt claim string via or", anyJS, meta("payload.azp", `{"orMatch":{"valueMatchers":[{"listMatch":{"oneOf":{"stringMatch":{"exact":"web"}}}},{"stringMatch":{"exact":"web"}}]}}`), nil, true},
		{"jwt nested claim", anyJS, meta("payload.realm.roles", `{"stringMatch":{"exact":"reader"}}`), nil, true},
		{"jwt claim absent", anyJS, meta("payload.nope", `{"stringMatch":{"exact":"x"}}`), nil, false},
		{"jwt double", anyJS, meta("payload.n", `{"doubleMatch":{"exact":3}}`), nil, true},
		{"jwt bool", anyJS, meta("payload.ok", `{"boolMatch":true}`), nil, true},
		{"jwt present", anyJS, meta("payload.sub", `{"presentMatch":true}`), nil, true},
		{"tcp request has no method", hdr(":method", `"presentMatch":true`), anyJS, func(r *Request) { *r = Request{Destination: r.Destination} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := httpEngine(t, one("ALLOW", tc.perm, tc.prin))
			r := baseReq()
			if tc.mutate != nil {
				tc.mutate(r)
			}
			d := e.Evaluate(r)
			if d.Allowed != tc.want {
				t.Fatalf("allowed = %v, want %v (decision %+v)", d.Allowed, tc.want, d)
			}
			if tc.want && d.Policy != "p" {
				t.Fatalf("policy = %q, want p", d.Policy)
			}
		})
	}
}

func TestEngineActions(t *testing.T) {
	adminDeny := `{"urlPath":{"path":{"prefix":"/admin"}}}`
	cases := []struct {
		name, cfg, path string
		allowed, logged bool
		policy, details string
	}{
		{"deny matches", one("DENY", adminDeny, anyJS), "/admin/x", false, false, "p", "rbac_access_denied_matched_policy[p]"},
		{"deny misses", one("DENY", adminDeny, anyJS), "/public", true, false, "", ""},
		{"allow misses", one("ALLOW", adminDeny, anyJS), "/public", false, false, "", "rbac_access_denied_matched_policy[none]"},
		{"log matches", one("LOG", adminDeny, anyJS), "/admin", true, true, "p", ""},
		{"log misses", one("LOG", adminDeny, anyJS), "/x", true, false, "", ""},
		{"no rules", `{}`, "/admin", true, false, "", ""},
		{"allow with no policies denies all", `{"rules":{}}`, "/", false, false, "", "rbac_access_denied_matched_policy[none]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := baseReq()
			r.Path = tc.path
			d := httpEngine(t, tc.cfg).Evaluate(r)
			if d.Allowed != tc.allowed || d.Logged != tc.logged || d.Policy != tc.policy {
				t.Fatalf("got %+v", d)
			}
			if !d.Allowed && d.ResponseDetails() != tc.details {
				t.Fatalf("details %q, want %q", d.ResponseDetails(), tc.details)
			}
		})
	}
}

func TestEngineFirstPolicyByName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		port    int // policy "a" matches when it is the request's destination port (9080)
		policy  string
		details string
	}{
		{"only the later name matches", 1, "b b", "rbac_access_denied_matched_policy[b_b]"},
		{"both match: the first name wins", 9080, "a", "rbac_access_denied_matched_policy[a]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := httpEngine(t, fmt.Sprintf(`{"rules":{"action":"DENY","policies":{"b b":{"permissions":[{"any":true}],"principals":[{"any":true}]},"a":{"permissions":[{"destinationPort":%d}],"principals":[{"any":true}]}}}}`, tc.port))
			d := e.Evaluate(baseReq())
			if d.Allowed || d.Policy != tc.policy || d.ResponseDetails() != tc.details {
				t.Fatalf("got %+v %s, want denied by %q (%s)", d, d.ResponseDetails(), tc.policy, tc.details)
			}
		})
	}
}

func TestEngineShadow(t *testing.T) {
	e := httpEngine(t, `{"shadowRules":{"action":"DENY","policies":{"dry":{"permissions":[{"any":true}],"principals":[{"any":true}]}}},"shadowRulesStatPrefix":"istio_dry_run_deny_"}`)
	d := e.Evaluate(baseReq())
	if !d.Allowed || !d.HasShadow || d.ShadowAllowed || d.ShadowPolicy != "dry" || e.ShadowStatPrefix != "istio_dry_run_deny_" {
		t.Fatalf("got %+v", d)
	}
}

func TestEngineNetwork(t *testing.T) {
	cfg := &rbacnetv3.RBAC{}
	if err := protojson.Unmarshal([]byte(`{"statPrefix":"tcp.","rules":{"action":"ALLOW","policies":{"p":{"permissions":[{"destinationPort":9000}],"principals":[{"directRemoteIp":{"addressPrefix":"10.0.0.0","prefixLen":8}}]}}}}`), cfg); err != nil {
		t.Fatal(err)
	}
	e, err := NewNetwork(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Source: netip.MustParseAddrPort("10.9.9.9:1"), Destination: netip.MustParseAddrPort("10.0.0.10:9000")}
	if d := e.Evaluate(r); !d.Allowed {
		t.Fatalf("got %+v", d)
	}
	r.Source = netip.MustParseAddrPort("192.168.0.1:1")
	if d := e.Evaluate(r); d.Allowed {
		t.Fatalf("got %+v", d)
	}
}

func TestEngineRejectsUnsupported(t *testing.T) {
	cases := []struct{ name, cfg, field string }{
		{"filter state", one("ALLOW", anyJS, `{"filterState":{"key":"k","stringMatch":{"exact":"v"}}}`), "filter_state"},
		{"condition", `{"rules":{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"any":true}],"condition":{"constExpr":{"boolValue":true}}}}}}`, "condition"},
		{"bad regex", one("ALLOW", `{"urlPath":{"path":{"safeRegex":{"regex":"("}}}}`, anyJS), "safe_regex"},
		{"bad template", one("ALLOW", `{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/**/*"}}}`, anyJS), "path_template"},
		{"audit logging", `{"rules":{"auditLoggingOptions":{"auditCondition":"ON_DENY"}}}`, "audit_logging_options"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &rbachttpv3.RBAC{}
			if err := protojson.Unmarshal([]byte(tc.cfg), cfg); err != nil {
				t.Fatal(err)
			}
			_, err := NewHTTP(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v does not name %s", err, tc.field)
			}
		})
	}
}

// TestPathBypass checks that, with Bowline's inbound path options, none of
// the usual tricks reach /admin past a DENY on /admin*.
func TestPathBypass(t *testing.T) {
	e := httpEngine(t, one("DENY", `{"urlPath":{"path":{"prefix":"/admin"}}}`, anyJS))
	for _, p := range []string{"/admin", "/admin/../admin", "/public/../admin", "/./admin", "//admin", "/%2e%2e/admin",
		"/admin?x", "/admin#x", "/admin;x", "/%61dmin", "/public%2F..%2Fadmin", `/public\..\admin`, "/%2Fadmin", "/x/%2E%2E/admin/"} {
		n, _, err := NormalizePath(p, istioDefault)
		if err != nil {
			t.Fatal(err)
		}
		r := baseReq()
		r.Path = n
		if d := e.Evaluate(r); d.Allowed {
			t.Errorf("%q (normalized %q) slipped past the DENY", p, n)
		}
	}
	r := baseReq()
	r.Path = "/ADMIN"
	if d := e.Evaluate(r); !d.Allowed {
		t.Errorf("/ADMIN: paths are case-sensitive in Istio, want allowed")
	}
}

func FuzzMatch(f *testing.F) {
	e := httpEngine(f, `{"rules":{"action":"DENY","policies":{
		"a":{"permissions":[{"andRules":{"rules":[{"urlPath":{"path":{"prefix":"/admin"}}},{"notRule":{"header":{"name":":method","stringMatch":{"exact":"GET"}}}}]}}],"principals":[{"any":true}]},
		"b":{"permissions":[{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/items/*/edit"}}}],"principals":[{"header":{"name":"x-h","stringMatch":{"safeRegex":{"regex":"^a$|^a,.*|.*,a,.*|.*,a$"}}}}]}}}}`)
	f.Add("POST", "/admin/../admin", "a")
	f.Add("GET", "/items/1/edit", "b,a")
	f.Fuzz(func(t *testing.T, method, path, h string) {
		n, _, err := NormalizePath(path, istioDefault)
		if err != nil {
			t.Fatal(err)
		}
		r := &Request{Method: method, Path: n, Headers: http.Header{"X-H": {h}}}
		d := e.Evaluate(r)
		p := n
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if strings.HasPrefix(p, "/admin") && method != "GET" && d.Allowed {
			t.Fatalf("%s %q (%q) allowed past DENY", method, path, n)
		}
		if d.Allowed == (d.Policy != "") {
			t.Fatalf("inconsistent decision %+v", d)
		}
	})
}
