package kube

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the server-side apply field manager of everything Bowline writes.
const FieldManager = "bowline"

// Applier creates, updates and deletes arbitrary objects with server-side
// apply, finding each kind's resource through API discovery (refreshed
// when a kind is unknown, as after CRDs are created).
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	// DryRun makes Apply a server-side dry run: the API server validates
	// and admits every object but stores nothing.
	DryRun bool
}

// NewApplier returns an applier for the cluster of cfg.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// resource returns the client of obj's kind, in its namespace when namespaced.
func (a *Applier) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.mapper.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(obj.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

// Apply server-side applies every object in order, taking ownership of
// conflicting fields. After CustomResourceDefinitions it waits until they
// are established, so later objects of their kinds apply.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	var crds []*unstructured.Unstructured
	for i, obj := range objs {
		if i > 0 && objs[i-1].GetKind() == "CustomResourceDefinition" && obj.GetKind() != "CustomResourceDefinition" {
			if err := a.waitEstablished(ctx, crds); err != nil {
				return err
			}
			crds = nil
		}
		r, err := a.resource(obj)
		if err != nil {
			return err
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		force := true
		opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, FieldValidation: "Strict"}
		if a.DryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := r.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts); err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), objName(obj), err)
		}
		if obj.GetKind() == "CustomResourceDefinition" && !a.DryRun {
			crds = append(crds, obj)
		}
	}
	return a.waitEstablished(ctx, crds)
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// waitEstablished polls the CRDs until each has condition Established=True.
func (a *Applier) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured) error {
	for _, crd := range crds {
		for {
			got, err := a.dyn.Resource(crdResource).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("CustomResourceDefinition %s: %w", crd.GetName(), err)
			}
			if hasCondition(got, "Established") {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CustomResourceDefinition %s not established: %w", crd.GetName(), ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if len(crds) > 0 {
		a.mapper.Reset()
	}
	return nil
}

// hasCondition reports whether obj's status has condition typ with status True.
func hasCondition(obj *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// Delete deletes every object in reverse order; objects already gone are
// not an error. It does not wait for finalizers.
func (a *Applier) Delete(ctx context.Context, objs []*unstructured.Unstructured) error {
	for i := len(objs) - 1; i >= 0; i-- {
		obj := objs[i]
		r, err := a.resource(obj)
		if meta.IsNoMatchError(err) {
			continue // its CRD is gone already
		}
		if err != nil {
			return err
		}
		policy := metav1.DeletePropagationBackground
		if err := r.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s: %w", obj.GetKind(), objName(obj), err)
		}
	}
	return nil
}

// Get returns the live object of obj's kind, namespace and name.
func (a *Applier) Get(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	r, err := a.resource(obj)
	if err != nil {
		return nil, err
	}
	return r.Get(ctx, obj.GetName(), metav1.GetOptions{})
}

func objName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// writerFieldManager is the field manager of what discovery itself writes
// (root ConfigMaps, the webhook caBundle, the CA Secret), apart from what
// `bowline install` applies.
const writerFieldManager = "bowline-discovery"
