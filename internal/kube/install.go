package kube

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Installer puts the control plane on a cluster, waits for it, and takes
// it away again.
type Installer struct {
	applier *Applier
	kube    kubernetes.Interface
	out     io.Writer
	// Poll is how often readiness is checked.
	Poll time.Duration
}

// NewInstaller returns an installer for the cluster of cfg that reports
// progress to out.
func NewInstaller(cfg *rest.Config, out io.Writer) (*Installer, error) {
	a, err := NewApplier(cfg)
	if err != nil {
		return nil, err
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Installer{applier: a, kube: kc, out: out, Poll: 500 * time.Millisecond}, nil
}

// Install applies objs in order and waits until every Deployment among
// them is ready and every Validating- and MutatingWebhookConfiguration has
// its caBundle (set by discovery), saying what it waits for.
func (i *Installer) Install(ctx context.Context, objs []*unstructured.Unstructured) error {
	fmt.Fprintf(i.out, "applying %d objects\n", len(objs))
	if err := i.applier.Apply(ctx, objs); err != nil {
		return err
	}
	for _, o := range objs {
		var err error
		switch o.GetKind() {
		case "Deployment":
			err = i.waitDeployment(ctx, o.GetNamespace(), o.GetName())
		case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration":
			err = i.waitCABundle(ctx, o.GetKind(), o.GetName())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// waitDeployment polls until the Deployment's pods are all updated and ready.
func (i *Installer) waitDeployment(ctx context.Context, ns, name string) error {
	last := ""
	return i.poll(ctx, func() (bool, string, error) {
		d, err := i.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		msg := fmt.Sprintf("waiting for Deployment %s/%s: %d/%d pods ready", ns, name, st.ReadyReplicas, want)
		if st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.ReadyReplicas == want && st.Replicas == want {
			fmt.Fprintf(i.out, "Deployment %s/%s ready (%d/%d)\n", ns, name, st.ReadyReplicas, want)
			return true, "", nil
		}
		if msg != last {
			last = msg
			return false, msg + i.podProblems(ctx, ns, d.Spec.Selector), nil
		}
		return false, "", nil
	})
}

// podProblems describes why pods of a selector are not ready (image pulls, crashes), or "".
func (i *Installer) podProblems(ctx context.Context, ns string, sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return ""
	}
	pods, err := i.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return ""
	}
	var why []string
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
				why = append(why, fmt.Sprintf("pod %s: %s %s", p.Name, w.Reason, w.Message))
			}
		}
		if p.Status.Phase == "Pending" {
			for _, cond := range p.Status.Conditions {
				if cond.Type == "PodScheduled" && cond.Status == "False" {
					why = append(why, fmt.Sprintf("pod %s: not scheduled: %s", p.Name, cond.Message))
				}
			}
		}
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// waitCABundle polls until every webhook of the configuration (kind
// ValidatingWebhookConfiguration or MutatingWebhookConfiguration) has a caBundle.
func (i *Installer) waitCABundle(ctx context.Context, kind, name string) error {
	said := false
	return i.poll(ctx, func() (bool, string, error) {
		var bundles [][]byte
		admission := i.kube.AdmissionregistrationV1()
		if kind == "MutatingWebhookConfiguration" {
			mwc, err := admission.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			for _, w := range mwc.Webhooks {
				bundles = append(bundles, w.ClientConfig.CABundle)
			}
		} else {
			vwc, err := admission.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			for _, w := range vwc.Webhooks {
				bundles = append(bundles, w.ClientConfig.CABundle)
			}
		}
		for _, b := range bundles {
			if len(b) == 0 {
				if said {
					return false, "", nil
				}
				said = true
				return false, fmt.Sprintf("waiting for discovery to set the caBundle of %s %s", kind, name), nil
			}
		}
		fmt.Fprintf(i.out, "%s %s ready\n", kind, name)
		return true, "", nil
	})
}

// poll calls check every Poll until it reports done, printing its messages.
func (i *Installer) poll(ctx context.Context, check func() (done bool, msg string, err error)) error {
	for {
		done, msg, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if msg != "" {
			fmt.Fprintln(i.out, msg)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting: %w", ctx.Err())
		case <-time.After(i.Poll):
		}
	}
}

// UninstallOptions say how much Uninstall removes.
type UninstallOptions struct {
	// Namespace is the control plane's namespace.
	Namespace string
	// Purge removes Istio's CRDs too (and with them every Istio object in
	// the cluster) and every cluster-scoped object labelled part of
	// Bowline, of any revision: `istioctl uninstall --purge`. Without it the
	// CRDs stay, as `istioctl uninstall --revision R` keeps them.
	Purge bool
}

// PartOfLabel marks every object Bowline installs (app.kubernetes.io/part-of=bowline).
const PartOfLabel = "app.kubernetes.io/part-of=bowline"

// Uninstall deletes objs (in reverse order) and what discovery created:
// the istio-ca-root-cert ConfigMap of every namespace, the self-signed CA
// Secret and the leader Lease. Without Purge it keeps Istio's CRDs among
// objs, and when another control plane (another revision's istiod) remains
// in the namespace it keeps the namespace and what the control planes
// share (the root ConfigMaps, the CA Secret). It waits until the namespace
// and, with Purge, the CRDs are gone.
func (i *Installer) Uninstall(ctx context.Context, objs []*unstructured.Unstructured, opts UninstallOptions) error {
	namespace := opts.Namespace
	var keep []*unstructured.Unstructured
	if !opts.Purge {
		objs = slices.DeleteFunc(slices.Clone(objs), func(u *unstructured.Unstructured) bool {
			if u.GetKind() == "CustomResourceDefinition" {
				keep = append(keep, u)
				return true
			}
			return false
		})
		fmt.Fprintf(i.out, "keeping Istio's %d CustomResourceDefinitions and the Istio objects (--purge removes them)\n", len(keep))
		others, err := i.otherControlPlanes(ctx, objs, namespace)
		if err != nil {
			return err
		}
		if len(others) > 0 {
			fmt.Fprintf(i.out, "keeping Namespace %s and the CA: other control planes remain (Deployments %s)\n", namespace, strings.Join(others, ", "))
			objs = slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == "Namespace" })
			fmt.Fprintf(i.out, "deleting %d objects\n", len(objs))
			return i.applier.Delete(ctx, objs)
		}
	} else {
		extra, err := i.labelled(ctx, objs)
		if err != nil {
			return err
		}
		objs = append(slices.Clone(objs), extra...)
	}
	nss, err := i.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	removed := 0
	for _, ns := range nss.Items {
		err := i.kube.CoreV1().ConfigMaps(ns.Name).Delete(ctx, RootCertConfigMap, metav1.DeleteOptions{})
		if err == nil {
			removed++
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ConfigMap %s/%s: %w", ns.Name, RootCertConfigMap, err)
		}
	}
	fmt.Fprintf(i.out, "removed %d %s ConfigMaps\n", removed, RootCertConfigMap)
	if err := i.kube.CoreV1().Secrets(namespace).Delete(ctx, SelfSignedCASecret, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret %s/%s: %w", namespace, SelfSignedCASecret, err)
	}
	if err := i.kube.CoordinationV1().Leases(namespace).Delete(ctx, LeaseName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Lease %s/%s: %w", namespace, LeaseName, err)
	}
	fmt.Fprintf(i.out, "deleting %d objects\n", len(objs))
	if err := i.applier.Delete(ctx, objs); err != nil {
		return err
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
		default:
			continue
		}
		if err := i.waitGone(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// otherControlPlanes lists the discovery Deployments (app=istiod) of the
// namespace that are not among objs.
func (i *Installer) otherControlPlanes(ctx context.Context, objs []*unstructured.Unstructured, namespace string) ([]string, error) {
	ds, err := i.kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list control planes in %s: %w", namespace, err)
	}
	var others []string
	for _, d := range ds.Items {
		if !slices.ContainsFunc(objs, func(u *unstructured.Unstructured) bool {
			return u.GetKind() == "Deployment" && u.GetNamespace() == d.Namespace && u.GetName() == d.Name
		}) {
			others = append(others, d.Name)
		}
	}
	return others, nil
}

// purgedKinds are the cluster-scoped kinds a purge looks for by PartOfLabel
// beyond what the manifest names (another revision's, an injector's).
var purgedKinds = []schema.GroupVersionKind{
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
}

// labelled lists the cluster-scoped objects labelled PartOfLabel that objs
// do not name.
func (i *Installer) labelled(ctx context.Context, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, gvk := range purgedKinds {
		probe := &unstructured.Unstructured{}
		probe.SetGroupVersionKind(gvk)
		r, err := i.applier.resource(probe)
		if err != nil {
			return nil, err
		}
		list, err := r.List(ctx, metav1.ListOptions{LabelSelector: PartOfLabel})
		if err != nil {
			return nil, fmt.Errorf("list %s %s: %w", gvk.Kind, PartOfLabel, err)
		}
		for j := range list.Items {
			u := &list.Items[j]
			if !slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool {
				return o.GetKind() == u.GetKind() && o.GetName() == u.GetName()
			}) {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// waitGone polls until obj no longer exists (finalizers done).
func (i *Installer) waitGone(ctx context.Context, obj *unstructured.Unstructured) error {
	said := false
	return i.poll(ctx, func() (bool, string, error) {
		_, err := i.applier.Get(ctx, obj)
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			if obj.GetKind() == "Namespace" {
				fmt.Fprintf(i.out, "Namespace %s deleted\n", obj.GetName())
			}
			return true, "", nil
		}
		if err != nil || said {
			return false, "", err
		}
		said = true
		return false, fmt.Sprintf("waiting for %s %s to be deleted", obj.GetKind(), obj.GetName()), nil
	})
}
