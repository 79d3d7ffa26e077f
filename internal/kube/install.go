package kube

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// Uninstall deletes objs (in reverse order) and what discovery created:
// the istio-ca-root-cert ConfigMap of every namespace, the self-signed CA
// Secret and the leader Lease (in the control plane namespace, which objs
// normally delete anyway). It waits until the namespace is gone.
func (i *Installer) Uninstall(ctx context.Context, objs []*unstructured.Unstructured, namespace string) error {
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
		if o.GetKind() != "Namespace" {
			continue
		}
		said := false
		if err := i.poll(ctx, func() (bool, string, error) {
			_, err := i.kube.CoreV1().Namespaces().Get(ctx, o.GetName(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				fmt.Fprintf(i.out, "Namespace %s deleted\n", o.GetName())
				return true, "", nil
			}
			if err != nil || said {
				return false, "", err
			}
			said = true
			return false, fmt.Sprintf("waiting for Namespace %s to be deleted", o.GetName()), nil
		}); err != nil {
			return err
		}
	}
	return nil
}
