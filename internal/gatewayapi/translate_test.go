package gatewayapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const services = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: other}
spec:
  hosts: [b.other.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.2}]
---
`

const gatewayDocs = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}
  - {name: all, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: sel, port: 8081, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {kubernetes.io/metadata.name: other}}}}}
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: tls, port: 9443, protocol: TLS, hostname: "*.example.com", tls: {mode: Passthrough}}
  - {name: udp, port: 9001, protocol: UDP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: default}
spec:
  gatewayClassName: someone-else
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
`

func route(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: %s, namespace: %s}\nspec:\n%s---\n", name, ns, spec)
}

// translate loads docs (which must be valid) and translates them.
func translate(t *testing.T, docs string) *Output {
	t.Helper()
	res := config.Parse("t.yaml", []byte(docs), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("load: %v", res.Problems)
	}
	objs, problems := validation.Objects(res.Objects)
	if problems.HasErrors() {
		t.Fatalf("validate: %v", problems)
	}
	return Translate(objs, registry.Build(objs, nil).Services(), Options{Domain: "cluster.local"})
}

// conditions renders the status as "Kind ns/name [where] Type=Status/Reason" lines.
func conditions(out *Output) []string {
	var lines []string
	for _, st := range out.Status {
		for _, c := range st.Conditions {
			lines = append(lines, fmt.Sprintf("%s %s/%s %s=%s/%s", st.Kind, st.Namespace, st.Name, c.Type, c.Status, c.Reason))
		}
		for _, l := range st.Listeners {
			for _, c := range l.Conditions {
				lines = append(lines, fmt.Sprintf("%s %s/%s listener %s (%d) %s=%s/%s", st.Kind, st.Namespace, st.Name, l.Name, l.AttachedRoutes, c.Type, c.Status, c.Reason))
			}
		}
		for _, p := range st.Parents {
			where := string(p.ParentRef.Name)
			if p.ParentRef.SectionName != nil {
				where += "/" + string(*p.ParentRef.SectionName)
			}
			for _, c := range p.Conditions {
				lines = append(lines, fmt.Sprintf("%s %s/%s parent %s %s=%s/%s", st.Kind, st.Namespace, st.Name, where, c.Type, c.Status, c.Reason))
			}
		}
	}
	return lines
}

func TestStatusReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes string
		want   []string // lines that must be present
		absent []string
	}{
		{
			name:   "attached to a listener whose hostname matches",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: http}]\n  hostnames: [shop.example.com]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			want: []string{
				"HTTPRoute default/r parent web/http Accepted=True/Accepted",
				"HTTPRoute default/r parent web/http ResolvedRefs=True/ResolvedRefs",
				"Gateway default/web listener http (1) Programmed=True/Programmed",
				"Gateway default/web Accepted=True/ListenersNotValid",
			},
		},
		{
			name:   "no listener hostname matches",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: http}]\n  hostnames: [shop.example.org]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			want:   []string{"HTTPRoute default/r parent web/http Accepted=False/NoMatchingListenerHostname"},
		},
		{
			name:   "unknown section",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: nope}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			want:   []string{"HTTPRoute default/r parent web/nope Accepted=False/NoMatchingParent"},
		},
		{
			name:   "unknown gateway",
			routes: route("default", "r", "  parentRefs: [{name: nope}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			want:   []string{"HTTPRoute default/r parent nope Accepted=False/NoMatchingParent"},
		},
		{
			name: "allowedRoutes namespaces",
			routes: route("other", "r", "  parentRefs: [{name: web, namespace: default, sectionName: http}, {name: web, namespace: default, sectionName: all}, {name: web, namespace: default, sectionName: sel}]\n  hostnames: [x.example.com]\n  rules: [{backendRefs: [{name: b, port: 8080}]}]\n") +
				route("default", "s", "  parentRefs: [{name: web, sectionName: sel}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			want: []string{
				"HTTPRoute other/r parent web/http Accepted=False/NotAllowedByListeners",
				"HTTPRoute other/r parent web/all Accepted=True/Accepted",
				"HTTPRoute other/r parent web/sel Accepted=True/Accepted",
				"HTTPRoute default/s parent web/sel Accepted=False/NotAllowedByListeners",
			},
		},
		{
			name:   "cross-namespace backend without a ReferenceGrant",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: all}]\n  rules: [{backendRefs: [{name: b, namespace: other, port: 8080}]}]\n"),
			want:   []string{"HTTPRoute default/r parent web/all ResolvedRefs=False/RefNotPermitted"},
		},
		{
			name: "cross-namespace backend with a ReferenceGrant",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: all}]\n  rules: [{backendRefs: [{name: b, namespace: other, port: 8080}]}]\n") +
				"apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: other}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]\n  to: [{group: \"\", kind: Service}]\n",
			want: []string{"HTTPRoute default/r parent web/all ResolvedRefs=True/ResolvedRefs"},
		},
		{
			name:   "missing backend and wrong port",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: all}]\n  rules: [{backendRefs: [{name: nope, port: 8080}]}, {backendRefs: [{name: a, port: 81}]}]\n"),
			want:   []string{"HTTPRoute default/r parent web/all ResolvedRefs=False/BackendNotFound"},
		},
		{
			name:   "backend of an unsupported kind",
			routes: route("default", "r", "  parentRefs: [{name: web, sectionName: all}]\n  rules: [{backendRefs: [{group: example.com, kind: Bucket, name: x}]}]\n"),
			want:   []string{"HTTPRoute default/r parent web/all ResolvedRefs=False/InvalidKind"},
		},
		{
			name:   "a Gateway of another controller is not reported on",
			routes: route("default", "r", "  parentRefs: [{name: theirs}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			absent: []string{"HTTPRoute default/r", "Gateway default/theirs"},
		},
		{
			name:   "GAMMA parent",
			routes: route("default", "r", "  parentRefs: [{group: \"\", kind: Service, name: a, port: 8080}, {group: \"\", kind: Service, name: zzz}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"),
			want: []string{
				"HTTPRoute default/r parent a Accepted=True/Accepted",
				"HTTPRoute default/r parent zzz Accepted=False/NoMatchingParent",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := conditions(translate(t, services+gatewayDocs+tc.routes))
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing %q in\n%s", w, all)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(all, a) {
					t.Errorf("unexpected %q in\n%s", a, all)
				}
			}
		})
	}
}

func TestListenerStatus(t *testing.T) {
	got := strings.Join(conditions(translate(t, services+gatewayDocs)), "\n")
	for _, w := range []string{
		"GatewayClass / ", // none declared: the built-in class is not reported
	} {
		if strings.Contains(got, w) {
			t.Errorf("unexpected %q in\n%s", w, got)
		}
	}
	for _, w := range []string{
		"Gateway default/web listener udp (0) Accepted=False/UnsupportedProtocol",
		"Gateway default/web listener tcp (0) Programmed=True/Programmed",
		"Gateway default/web listener all (0) Accepted=True/Accepted",
		"Gateway default/web Programmed=True/Programmed",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
}

// TestPrecedence: matches of several routes on one host are ordered by the
// spec's precedence, not by object: Exact, then the longest prefix, then
// method, headers, query parameters; ties keep namespace/name order.
func TestPrecedence(t *testing.T) {
	out := translate(t, services+gatewayDocs+
		route("default", "b-prefix", "  parentRefs: [{name: web, sectionName: all}]\n  rules:\n  - matches: [{path: {value: /}}]\n    backendRefs: [{name: a, port: 8080}]\n  - matches: [{path: {value: /api}}, {path: {value: /api}, headers: [{name: x, value: \"1\"}]}]\n    backendRefs: [{name: a, port: 8080}]\n")+
		route("default", "a-exact", "  parentRefs: [{name: web, sectionName: all}]\n  rules:\n  - matches: [{path: {type: Exact, value: /api}}, {path: {value: /api/v1}}, {path: {value: /api}, method: GET}]\n    backendRefs: [{name: a, port: 8080}]\n"))
	var vs *networking.VirtualService
	for _, o := range out.Objects {
		if v, ok := o.Spec.(*networking.VirtualService); ok {
			if vs != nil {
				t.Fatalf("routes on one host were not merged into one VirtualService")
			}
			vs = v
		}
	}
	if vs == nil {
		t.Fatal("no VirtualService")
	}
	var order []string
	for _, r := range vs.GetHttp() {
		m := r.GetMatch()[0]
		s := fmt.Sprintf("%s exact=%s prefix=%s", r.GetName(), m.GetUri().GetExact(), m.GetUri().GetPrefix())
		if m.GetMethod() != nil {
			s += " method"
		}
		if len(m.GetHeaders()) > 0 {
			s += " headers"
		}
		order = append(order, s)
	}
	want := []string{
		"default.a-exact.0 exact=/api prefix=",
		"default.a-exact.0 exact= prefix=/api/v1",
		"default.a-exact.0 exact= prefix=/api method",
		"default.b-prefix.1 exact= prefix=/api headers",
		"default.b-prefix.1 exact= prefix=/api",
		"default.b-prefix.0 exact= prefix=/",
	}
	if strings.Join(order, "\n") != strings.Join(want, "\n") {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	if vs.GetHosts()[0] != "*" || vs.GetGateways()[0] != "default/web-istio-autogenerated-k8s-gateway-all" {
		t.Errorf("hosts %v gateways %v", vs.GetHosts(), vs.GetGateways())
	}
}

// TestL4Routes: a TCPRoute on a TCP listener becomes a tcp route on that
// port; a TLSRoute on a Passthrough listener a tls route matching its
// hostnames (narrowed by the listener's) as SNI; an HTTPRoute is not
// allowed on either.
func TestL4Routes(t *testing.T) {
	out := translate(t, services+gatewayDocs+`apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: db, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: tcp}]
  rules: [{backendRefs: [{name: a, port: 8080, weight: 3}, {name: nope, port: 1}, {name: a, port: 8080, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: sni, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: tls}]
  hostnames: [db.example.com, other.org]
  rules: [{backendRefs: [{name: a, port: 8080}]}]
---
`+route("default", "h", "  parentRefs: [{name: web, sectionName: tcp}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n"))
	var got []string
	for _, o := range out.Objects {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		for _, r := range vs.GetTcp() {
			got = append(got, fmt.Sprintf("%s tcp port=%d dests=%d weights=%d,%d", vs.GetGateways()[0], r.GetMatch()[0].GetPort(), len(r.GetRoute()), r.GetRoute()[0].GetWeight(), r.GetRoute()[1].GetWeight()))
		}
		for _, r := range vs.GetTls() {
			got = append(got, fmt.Sprintf("%s tls port=%d sni=%v host=%s", vs.GetGateways()[0], r.GetMatch()[0].GetPort(), r.GetMatch()[0].GetSniHosts(), r.GetRoute()[0].GetDestination().GetHost()))
		}
	}
	want := []string{
		"default/web-istio-autogenerated-k8s-gateway-tcp tcp port=9000 dests=2 weights=3,1",
		"default/web-istio-autogenerated-k8s-gateway-tls tls port=9443 sni=[db.example.com] host=a.default.svc.cluster.local",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st := strings.Join(conditions(out), "\n")
	for _, w := range []string{
		"TCPRoute default/db parent web/tcp Accepted=True/Accepted",
		"TCPRoute default/db parent web/tcp ResolvedRefs=False/BackendNotFound",
		"TLSRoute default/sni parent web/tls Accepted=True/Accepted",
		"HTTPRoute default/h parent web/tcp Accepted=False/NotAllowedByListeners",
		"Gateway default/web listener tcp (1) Programmed=True/Programmed",
	} {
		if !strings.Contains(st, w) {
			t.Errorf("missing %q in\n%s", w, st)
		}
	}
}

func TestCertificateRefs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"a.example.com"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(typ string, b []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
	}
	secret := func(name, crt, key string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: default}\ntype: kubernetes.io/tls\ndata: {tls.crt: %q, tls.key: %q}\n---\n", name, crt, key)
	}
	listener := func(name, secret string) string {
		return fmt.Sprintf("  - {name: %s, port: 443, protocol: HTTPS, hostname: %s.example.com, tls: {mode: Terminate, certificateRefs: [{name: %s}]}}\n", name, name, secret)
	}
	docs := secret("good", b64("CERTIFICATE", der), b64("EC PRIVATE KEY", kder)) +
		secret("malformed", base64.StdEncoding.EncodeToString([]byte("not a certificate")), base64.StdEncoding.EncodeToString([]byte("not a key"))) +
		"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: tls, namespace: default}\nspec:\n  gatewayClassName: istio\n  listeners:\n" +
		listener("a", "good") + listener("b", "missing") + listener("c", "malformed") + "---\n" + services +
		route("default", "r", "  parentRefs: [{name: tls, sectionName: b}]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n")
	out := translate(t, docs)
	got := strings.Join(conditions(out), "\n")
	for _, want := range []string{
		"Gateway default/tls listener a (0) ResolvedRefs=True/ResolvedRefs",
		// a route attaches to a listener whose refs are unresolved (it is counted), but is not served there
		"Gateway default/tls listener b (1) ResolvedRefs=False/InvalidCertificateRef",
		"Gateway default/tls listener b (1) Programmed=False/Invalid",
		"Gateway default/tls listener c (0) ResolvedRefs=False/InvalidCertificateRef",
		"Gateway default/tls Accepted=True/ListenersNotValid",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	for _, o := range out.Objects {
		if vs, ok := o.Spec.(*networking.VirtualService); ok {
			t.Errorf("VirtualService %s (gateways %v) generated for a route on a listener that is not programmed", o.Meta.Name, vs.Gateways)
		}
	}
}

func TestNamespaceSelectorReadsNamespaceLabels(t *testing.T) {
	docs := services + `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: sel, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: b}}}}}
---
` + route("other", "r", "  parentRefs: [{name: web, namespace: default}]\n  rules: [{backendRefs: [{name: b, port: 8080}]}]\n")
	res := config.Parse("t.yaml", []byte(docs), config.ParseOptions{})
	objs, problems := validation.Objects(res.Objects)
	if len(res.Problems) > 0 || problems.HasErrors() {
		t.Fatalf("load: %v %v", res.Problems, problems)
	}
	status := func(objs []*config.Object) string {
		return strings.Join(conditions(Translate(objs, registry.Build(objs, nil).Services(), Options{Domain: "cluster.local", Deployed: true})), "\n")
	}
	// local mode: no Namespace objects, a namespace has only its name label
	if got := status(objs); !strings.Contains(got, "HTTPRoute other/r parent web Accepted=False/NotAllowedByListeners") {
		t.Errorf("without the namespace's labels:\n%s", got)
	}
	withNS := append(slices.Clone(objs), config.NamespaceObject("other", map[string]string{"team": "b"}))
	if got := status(withNS); !strings.Contains(got, "HTTPRoute other/r parent web Accepted=True/Accepted") ||
		!strings.Contains(got, "Gateway default/web listener sel (1) Programmed=True/Programmed") {
		t.Errorf("with Namespace other labelled team=b:\n%s", got)
	}
}

func TestUnacceptedListenerHasNoSupportedKinds(t *testing.T) {
	docs := gatewayDocs + "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: term, namespace: default}\nspec:\n  gatewayClassName: istio\n  listeners:\n" +
		"  - {name: tls-terminate, port: 8443, protocol: TLS, hostname: t.example.com, allowedRoutes: {kinds: [{kind: TLSRoute}]}, tls: {mode: Terminate, certificateRefs: [{name: c}]}}\n"
	for _, st := range translate(t, docs).Status {
		for _, l := range st.Listeners {
			if (l.Name == "udp" || l.Name == "tls-terminate") && (l.SupportedKinds == nil || len(l.SupportedKinds) != 0) {
				t.Errorf("listener %s/%s: supportedKinds %v, want an empty list (not accepted)", st.Name, l.Name, l.SupportedKinds)
			}
			if l.Name == "tls" && len(l.SupportedKinds) != 1 {
				t.Errorf("listener %s/tls: supportedKinds %v, want TLSRoute", st.Name, l.SupportedKinds)
			}
		}
	}
}
