package kube

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
)

// MinKubeMinor is the oldest Kubernetes minor version (1.x) Bowline supports.
const MinKubeMinor = 29

// Check is one precheck result.
type Check struct {
	// Name says what was checked.
	Name string
	// OK is false for a problem that stops an install.
	OK bool
	// Detail explains the result.
	Detail string
}

// Precheck checks that objs can be installed: the cluster's version, the
// caller's permission to create every kind among objs, and that no Istio
// or other control plane already owns the names.
func Precheck(ctx context.Context, kc kubernetes.Interface, objs []*unstructured.Unstructured) ([]Check, error) {
	var out []Check
	v, err := kc.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("cluster version: %w", err)
	}
	minor, _ := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	out = append(out, Check{Name: "Kubernetes version", OK: v.Major == "1" && minor >= MinKubeMinor,
		Detail: fmt.Sprintf("%s (at least 1.%d needed)", v.GitVersion, MinKubeMinor)})

	type want struct{ group, resource, ns string }
	seen := map[want]bool{}
	var wants []want
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		w := want{gvk.Group, strings.ToLower(gvk.Kind) + "s", o.GetNamespace()}
		if strings.HasSuffix(w.resource, "ys") {
			w.resource = strings.TrimSuffix(w.resource, "ys") + "ies"
		}
		if !seen[w] {
			seen[w] = true
			wants = append(wants, w)
		}
	}
	var denied []string
	for _, w := range wants {
		r, err := kc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: "create", Group: w.group, Resource: w.resource, Namespace: w.ns}},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("access review: %w", err)
		}
		if !r.Status.Allowed {
			name := w.resource
			if w.group != "" {
				name += "." + w.group
			}
			denied = append(denied, name)
		}
	}
	sort.Strings(denied)
	detail := fmt.Sprintf("may create all %d kinds", len(wants))
	if len(denied) > 0 {
		detail = "may not create " + strings.Join(denied, ", ")
	}
	out = append(out, Check{Name: "permissions", OK: len(denied) == 0, Detail: detail})

	istio := Check{Name: "existing control plane", OK: true, Detail: "none found"}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		d, err := kc.AppsV1().Deployments(o.GetNamespace()).Get(ctx, o.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if d.Labels["app.kubernetes.io/part-of"] == "bowline" {
			istio.Detail = fmt.Sprintf("Bowline already installed (Deployment %s/%s): install upgrades it", d.Namespace, d.Name)
			continue
		}
		istio.OK = false
		istio.Detail = fmt.Sprintf("Deployment %s/%s exists and is not Bowline's (Istio?): uninstall it first", d.Namespace, d.Name)
		break
	}
	out = append(out, istio)
	return out, nil
}

// Versions are the Bowline versions running in a cluster.
type Versions struct {
	// ControlPlane maps image tags of discovery pods to their count.
	ControlPlane map[string]int
	// DataPlane maps image tags of proxies (gateways, sidecars) to their count.
	DataPlane map[string]int
}

// ClusterVersions reads the image tags of the discovery pods (label
// app=istiod) and of every istio-proxy container.
func ClusterVersions(ctx context.Context, kc kubernetes.Interface) (*Versions, error) {
	pods, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	v := &Versions{ControlPlane: map[string]int{}, DataPlane: map[string]int{}}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			switch {
			case p.Labels["app"] == "istiod" && c.Name == "discovery":
				v.ControlPlane[imageTag(c.Image)]++
			case c.Name == "istio-proxy":
				v.DataPlane[imageTag(c.Image)]++
			}
		}
	}
	return v, nil
}

// imageTag returns the tag of an image reference ("latest" when it has none).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[i+1:]
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[i+1:]
	}
	return "latest"
}
