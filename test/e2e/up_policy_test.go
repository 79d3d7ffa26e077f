package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/local"
)

// TestBookinfoUpPolicies follows Istio's security tasks on `bowline up`, where
// every sidecar listens on a free loopback port and not on the workload's
// container port: authz-tcp's `ports` conditions (the container port, 9080
// for ratings), authz-ingress's DENY at the ingress gateway, and the
// destination-side metric labels of Istio's standard metrics.
func TestBookinfoUpPolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	dir := bookinfoDir(t, bins)
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	m.apply(t, "virtual-service-reviews-v3.yaml") // red stars come from ratings
	ratingsUp := func(p page) bool { return p.status == http.StatusOK && p.stars == "red" }
	ratingsDown := func(p page) bool {
		return p.status == http.StatusOK && strings.Contains(p.body, "Ratings service is currently unavailable")
	}
	m.eventually(t, "", 5, "red stars from ratings", ratingsUp)
	policy := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("authz-tcp: ALLOW ratings on its container port 9080", func(t *testing.T) {
		policy(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-allow-9080, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
  - to: [{operation: {ports: ["9080"]}}]
`)
		// An ALLOW for another port denies everything else: prove the policy
		// is in force by switching to it, then back.
		policy(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-allow-9000, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
  - to: [{operation: {ports: ["9000"]}}]
`)
		m.eventually(t, "", 3, "ratings refused by an ALLOW for port 9000 only", ratingsDown)
		policy(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-allow-9080, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
  - to: [{operation: {ports: ["9080"]}}]
`)
		m.eventually(t, "", 5, "ratings allowed on port 9080", ratingsUp)
	})

	t.Run("authz-tcp: DENY with ports matches", func(t *testing.T) {
		policy(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-deny-9080, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules:
  - to: [{operation: {ports: ["9080"], methods: ["GET"]}}]
`)
		m.eventually(t, "", 3, "ratings denied on port 9080", ratingsDown)
		policy(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-deny-9000, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules:
  - to: [{operation: {ports: ["9000"]}}]
`)
		m.eventually(t, "", 5, "a DENY for another port leaves ratings alone", ratingsUp)
	})

	t.Run("authz-ingress: DENY at the ingress gateway", func(t *testing.T) {
		policy(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-deny-productpage, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/productpage"]}}]
`)
		m.eventually(t, "", 3, "403 at the gateway", func(p page) bool {
			return p.status == http.StatusForbidden && p.body == "RBAC: access denied"
		})
		policy("")
		m.eventually(t, "", 3, "the page back", ratingsUp)
	})

	t.Run("destination metric labels come from the mesh", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(dir, ".bowline", "up.json"))
		if err != nil {
			t.Fatal(err)
		}
		var st local.State
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		admin := ""
		for _, w := range st.Workloads {
			if w.Workload == "reviews-v3" {
				admin = w.Admin
			}
		}
		if admin == "" {
			t.Fatalf("no reviews-v3 replica in up.json: %s", data)
		}
		want := `destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="default"`
		deadline := time.Now().Add(10 * time.Second)
		for {
			var found, wrong string
			for _, line := range strings.Split(getBody(t, "http://"+admin+"/stats/prometheus"), "\n") {
				if !strings.HasPrefix(line, "istio_requests_total{") || !strings.Contains(line, `reporter="destination"`) {
					continue
				}
				if strings.Contains(line, want) {
					found = line
				} else {
					wrong = line
				}
			}
			if wrong != "" {
				t.Fatalf("reviews' sidecar reports other destination labels: %s", wrong)
			}
			if found != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no reporter=\"destination\" series with %s", want)
			}
			m.productPage(t, "")
		}
	})
}

// getBody returns the body of a GET of url, bypassing any HTTP proxy.
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
