package cli

import (
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/local"
)

func TestStatus(t *testing.T) {
	dir := t.TempDir()
	st := &local.State{PID: 1, Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ConfigDir: "/mesh",
		ControlPlane: local.ControlPlaneState{XDS: "127.0.0.1:15010", Debug: "127.0.0.1:15014"},
		Ingress:      "http://127.0.0.1:8080", IngressAdmin: "127.0.0.1:15100",
		Workloads: []local.ReplicaState{
			{Name: "reviews-v1-0", Namespace: "default", Workload: "reviews-v1", AppPort: 20001, InboundPort: 20002, OutboundProxy: "127.0.0.1:20003", Admin: "127.0.0.1:20004"},
			{Name: "ratings-v1-0", Namespace: "default", Workload: "ratings-v1", AppPort: 20011, InboundPort: 20012, OutboundProxy: "127.0.0.1:20013", Admin: "127.0.0.1:20014"},
		}}
	if err := local.WriteState(dir, st); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "", "status", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "status", out)

	_, errOut, code = run(t, "", "status", "--state-dir", t.TempDir())
	if code != 1 || errOut == "" {
		t.Errorf("missing state: exit %d, stderr %q", code, errOut)
	}
}
