package kube_test

import (
	"context"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/manifest"
)

// TestManifestServerSideDryRun applies everything install applies (the
// Helm chart's objects, which hack/helmcheck shows `helm template` renders
// the same) as a server-side dry run: the API server validates and admits
// every object.
func TestManifestServerSideDryRun(t *testing.T) {
	c, _, _ := cluster(t)
	for _, set := range []map[string]string{nil, {"revision": "canary", "hub": "registry.example.com/mesh", "tag": "v9"}} {
		objs, err := manifest.Objects(manifest.Options{Version: "v0.0.1", Set: set})
		if err != nil {
			t.Fatal(err)
		}
		if objs[0].GetKind() != "Namespace" {
			t.Fatalf("first object is %s, want the Namespace", objs[0].GetKind())
		}
		a, err := kube.NewApplier(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// The namespace must exist for a dry run of what goes in it.
		if err := a.Apply(ctx, objs[:1]); err != nil {
			t.Fatal(err)
		}
		a.DryRun = true
		if err := a.Apply(ctx, objs); err != nil {
			t.Errorf("dry run with %v: %v", set, err)
		}
		cancel()
	}
}
