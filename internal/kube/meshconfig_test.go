package kube

import (
	"strings"
	"testing"
)

func TestParseMeshConfig(t *testing.T) {
	t.Run("empty is Istio's defaults", func(t *testing.T) {
		mc, err := ParseMeshConfig("")
		if err != nil {
			t.Fatal(err)
		}
		if got := mc.Config.GetTrustDomain(); got != "cluster.local" || !mc.Config.GetEnableAutoMtls().GetValue() {
			t.Errorf("trustDomain %q, enableAutoMtls %v: want Istio's defaults cluster.local and true", got, mc.Config.GetEnableAutoMtls())
		}
		if !mc.namespaces.matches(map[string]string{"any": "thing"}) {
			t.Error("no discoverySelectors: every namespace should be visible")
		}
	})
	t.Run("discoverySelectors", func(t *testing.T) {
		mc, err := ParseMeshConfig("discoverySelectors:\n- matchLabels: {team: a}\n- matchExpressions:\n  - {key: env, operator: In, values: [prod]}\n")
		if err != nil {
			t.Fatal(err)
		}
		for labels, want := range map[string]bool{"team=a": true, "env=prod": true, "env=dev": false, "": false} {
			l := map[string]string{}
			if k, v, ok := strings.Cut(labels, "="); ok {
				l[k] = v
			}
			if got := mc.namespaces.matches(l); got != want {
				t.Errorf("namespace labels %q visible = %v, want %v", labels, got, want)
			}
		}
	})
	t.Run("unknown field names the ConfigMap and the field", func(t *testing.T) {
		_, err := ParseMeshConfig("trustDomain: cluster.local\nnoSuchField: 1\n")
		if err == nil || !strings.Contains(err.Error(), "ConfigMap istio") || !strings.Contains(err.Error(), "noSuchField") {
			t.Errorf("err = %v, want one naming ConfigMap istio and noSuchField", err)
		}
	})
}
