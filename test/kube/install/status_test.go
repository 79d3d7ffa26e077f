package install

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// istioStatus is an Istio object's status as kubectl prints it.
type istioStatus struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Status struct {
		ObservedGeneration any `json:"observedGeneration"`
		Conditions         []struct {
			Type, Status, Message string
		} `json:"conditions"`
		ValidationMessages []struct {
			Level            string `json:"level"`
			DocumentationURL string `json:"documentationUrl"`
			Type             struct {
				Code string `json:"code"`
			} `json:"type"`
		} `json:"validationMessages"`
	} `json:"status"`
}

func getStatus(ctx context.Context, c *kubecluster.Cluster, ns, kind, name string) (istioStatus, string) {
	var st istioStatus
	out, err := c.Run(ctx, "get", kind, "-n", ns, name, "-o", "json")
	if err != nil {
		return st, fmt.Sprintf("%v: %s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, err.Error()
	}
	return st, ""
}

func (s istioStatus) reconciled() (status, message string) {
	for _, c := range s.Status.Conditions {
		if c.Type == "Reconciled" {
			return c.Status, c.Message
		}
	}
	return "", ""
}

func (s istioStatus) codes() string {
	var out []string
	for _, m := range s.Status.ValidationMessages {
		out = append(out, m.Type.Code+" "+m.Level+" "+m.DocumentationURL)
	}
	return strings.Join(out, "; ")
}

// testStatus checks the status discovery writes on Istio objects: Istio's
// bookinfo VirtualService gets observedGeneration and Reconciled True once
// the gateway (the one proxy) has it; a VirtualService routing to a host
// nothing defines gets analysis message IST0101 (install ran with
// --set enableAnalysis=true), and Bookinfo's, whose hosts are the
// cluster's Services, gets none of that code.
func testStatus(ctx context.Context, t *testing.T, c *kubecluster.Cluster, ns string) {
	poll(t, 2*time.Minute, "VirtualService bookinfo: Reconciled True, observedGeneration its generation", func() string {
		st, err := getStatus(ctx, c, ns, "virtualservice", "bookinfo")
		if err != "" {
			return err
		}
		status, msg := st.reconciled()
		if status == "True" && strings.HasSuffix(msg, " proxies up to date.") && fmt.Sprint(st.Status.ObservedGeneration) == fmt.Sprint(st.Metadata.Generation) {
			if n, m, ok := strings.Cut(strings.TrimSuffix(msg, " proxies up to date."), "/"); !ok || n != m {
				return "message " + msg
			}
			t.Logf("VirtualService bookinfo: Reconciled %s %q, observedGeneration %v", status, msg, st.Status.ObservedGeneration)
			if strings.Contains(st.codes(), "IST0101") {
				t.Errorf("VirtualService bookinfo (its hosts are the cluster's Services): validationMessages %s, want no IST0101", st.codes())
			}
			return ""
		}
		return fmt.Sprintf("Reconciled %q %q, observedGeneration %v (generation %d)", status, msg, st.Status.ObservedGeneration, st.Metadata.Generation)
	})

	// The one replica's distribution report, which the leader sums.
	if out, err := c.Run(ctx, "get", "configmaps", "-n", "istio-system", "-l", "bowline.io/distribution-report=true", "-o", "name"); err != nil ||
		strings.Count(out, "configmap/istiod-") != 1 || !strings.Contains(out, "-distribution") {
		t.Errorf("distribution reports in istio-system: %v %q, want istiod's pod's one", err, out)
	}

	const ghost = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ghost
spec:
  hosts: [ghost]
  http:
  - route:
    - destination: {host: nosuch}
`
	if out, err := c.RunStdin(ctx, ghost, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	defer func() { _, _ = c.Run(ctx, "delete", "virtualservice", "-n", ns, "ghost", "--ignore-not-found") }()
	poll(t, 2*time.Minute, "VirtualService ghost: analysis message IST0101 in status.validationMessages", func() string {
		st, err := getStatus(ctx, c, ns, "virtualservice", "ghost")
		if err != "" {
			return err
		}
		if strings.Contains(st.codes(), "IST0101 ERROR https://istio.io/latest/docs/reference/config/analysis/ist0101/") {
			t.Logf("VirtualService ghost: validationMessages %s", st.codes())
			return ""
		}
		return "validationMessages: " + st.codes()
	})
}
