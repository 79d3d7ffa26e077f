package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/bowline-mesh/bowline/internal/config"
)

// gatewayAPIVersion is the version discovery reads every Gateway API kind
// at (the v1.6 standard channel serves each of them as v1).
const gatewayAPIVersion = "v1"

// gatewayAPIResources are the Gateway API kinds discovery reads, by resource.
var gatewayAPIResources = map[string]string{
	"gatewayclasses":  config.KindGatewayClass,
	"gateways":        config.KindGateway,
	"httproutes":      config.KindHTTPRoute,
	"grpcroutes":      config.KindGRPCRoute,
	"tcproutes":       config.KindTCPRoute,
	"tlsroutes":       config.KindTLSRoute,
	"referencegrants": config.KindReferenceGrant,
}

// gatewayAPIPoll is how often the controller looks for the Gateway API
// CRDs while they are not installed (Istio, too, picks them up when they
// appear, without a restart).
const gatewayAPIPoll = 5 * time.Second

// gatewayAPILister is the cache of one Gateway API kind.
type gatewayAPILister struct {
	kind  string
	store cache.Store
}

// gatewayAPIServed returns the Gateway API resources the API server serves
// at gatewayAPIVersion among those Bowline reads (none when the CRDs are
// not installed).
func (c *Controller) gatewayAPIServed() []string {
	list, err := c.cfg.Kube.Discovery().ServerResourcesForGroupVersion(config.GroupGatewayAPI + "/" + gatewayAPIVersion)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range list.APIResources {
		if _, ok := gatewayAPIResources[r.Name]; ok {
			out = append(out, r.Name)
		}
	}
	slices.Sort(out)
	return out
}

// runGatewayAPI watches each Gateway API kind once its CRD is served,
// looking for new ones every gatewayAPIPoll (Istio, too, picks up CRDs
// installed after it started), and marks the config dirty on every
// change. It returns when ctx ends.
func (c *Controller) runGatewayAPI(ctx context.Context, mark func(any)) error {
	if c.cfg.Dynamic == nil {
		return nil
	}
	f := dynamicinformer.NewDynamicSharedInformerFactory(c.cfg.Dynamic, 0)
	defer f.Shutdown()
	watched := map[string]bool{}
	t := time.NewTicker(gatewayAPIPoll)
	defer t.Stop()
	for {
		var added []gatewayAPILister
		for _, r := range c.gatewayAPIServed() {
			if watched[r] {
				continue
			}
			watched[r] = true
			inf := f.ForResource(schema.GroupVersionResource{Group: config.GroupGatewayAPI, Version: gatewayAPIVersion, Resource: r}).Informer()
			if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }, DeleteFunc: mark}); err != nil {
				return fmt.Errorf("gateway api informers: %w", err)
			}
			added = append(added, gatewayAPILister{kind: gatewayAPIResources[r], store: inf.GetStore()})
		}
		if len(added) > 0 {
			f.Start(ctx.Done())
			for gvr, ok := range f.WaitForCacheSync(ctx.Done()) {
				if !ok {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("gateway api informers: %s did not sync", gvr.Resource)
				}
			}
			c.gwMu.Lock()
			c.gatewayAPI = append(c.gatewayAPI, added...)
			c.gwMu.Unlock()
			c.log.Info("gateway api caches synced", slog.Int("kinds", len(watched)))
			mark(nil)
		}
		if len(watched) == len(gatewayAPIResources) {
			<-ctx.Done()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// gatewayAPIListers returns the Gateway API caches (nil before they synced).
func (c *Controller) gatewayAPIListers() []gatewayAPILister {
	c.gwMu.Lock()
	defer c.gwMu.Unlock()
	return c.gatewayAPI
}

// parseGatewayAPIObject decodes and validates one Gateway API object from
// its informer, as a file's document: apiVersion, kind, metadata, spec
// (status is the controllers' output, not configuration).
func parseGatewayAPIObject(kind string, u *unstructured.Unstructured, validate config.Validator) parsed {
	rv := u.GetResourceVersion()
	fail := func(err error) parsed {
		return parsed{resourceVersion: rv, problems: config.Problems{{Severity: config.SeverityError, Kind: kind,
			Message: fmt.Sprintf("%s %s/%s: %v", kind, u.GetNamespace(), u.GetName(), err)}}}
	}
	spec, err := json.Marshal(u.Object["spec"])
	if err != nil {
		return fail(err)
	}
	doc := document{APIVersion: u.GetAPIVersion(), Kind: kind, Spec: spec,
		Metadata: documentMeta{Name: u.GetName(), Namespace: u.GetNamespace(), Labels: u.GetLabels(), Annotations: u.GetAnnotations(),
			ResourceVersion: rv, Generation: u.GetGeneration()}}
	if doc.APIVersion == "" {
		doc.APIVersion = config.GroupGatewayAPI + "/" + gatewayAPIVersion
	}
	if ts := u.GetCreationTimestamp(); !ts.IsZero() {
		doc.Metadata.CreationTimestamp = ts.UTC().Format("2006-01-02T15:04:05Z")
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return fail(err)
	}
	res := config.Parse("", data, config.ParseOptions{})
	valid, problems := validate(res.Objects)
	return parsed{resourceVersion: rv, objs: valid, problems: append(res.Problems, problems...)}
}

// credentialSecret reports whether a Secret holds TLS credentials a Gateway
// or DestinationRule may name (Istio's keys: a kubernetes.io/tls Secret, or
// a generic one with cert/key or a CA bundle). Other Secrets (service
// account tokens, Helm releases) never enter the config store.
func credentialSecret(s *corev1.Secret) bool {
	if s.Type == corev1.SecretTypeTLS {
		return true
	}
	if s.Type != corev1.SecretTypeOpaque && s.Type != "" {
		return false
	}
	for _, k := range []string{config.SecretTLSCert, config.SecretGenericCert, config.SecretTLSCA, config.SecretGenericCA} {
		if len(s.Data[k]) > 0 {
			return true
		}
	}
	return false
}

// secretDocument is a Secret as config.Parse reads it.
type secretDocument struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   documentMeta      `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string][]byte `json:"data,omitempty"`
}

// parseSecret decodes a credential Secret into the store's KindSecret object.
func parseSecret(s *corev1.Secret, validate config.Validator) parsed {
	doc := secretDocument{APIVersion: "v1", Kind: config.KindSecret, Type: string(s.Type), Data: s.Data,
		Metadata: documentMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion}}
	data, err := json.Marshal(doc)
	if err != nil {
		return parsed{resourceVersion: s.ResourceVersion, problems: config.Problems{{Severity: config.SeverityError, Kind: config.KindSecret, Message: err.Error()}}}
	}
	res := config.Parse("", data, config.ParseOptions{})
	valid, problems := validate(res.Objects)
	return parsed{resourceVersion: s.ResourceVersion, objs: valid, problems: append(res.Problems, problems...)}
}
