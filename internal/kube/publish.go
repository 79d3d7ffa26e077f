package kube

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// RootCertConfigMap is the ConfigMap every namespace gets with the mesh's
// root certificates (key root-cert.pem), Istio's name: sidecars and
// gateways mount it to verify the control plane.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	rootCertKey       = "root-cert.pem"
	// publishResync re-checks every namespace this often, repairing
	// ConfigMaps edited or deleted by hand.
	publishResync = time.Minute
)

// Publisher writes what the CA's roots imply into the cluster: the
// istio-ca-root-cert ConfigMap in every namespace, and the caBundle of the
// named Validating- and MutatingWebhookConfigurations (so the API server
// trusts the webhooks' serving certificate). Only the leader runs it.
type Publisher struct {
	client   kubernetes.Interface
	roots    func() []byte
	webhooks WebhookConfigs
	log      *slog.Logger
}

// WebhookConfigs name the webhook configurations whose caBundle the
// publisher keeps set to the root.
type WebhookConfigs struct {
	// Validating are ValidatingWebhookConfigurations (istio-validator-istio-system).
	Validating []string
	// Mutating are MutatingWebhookConfigurations (istio-sidecar-injector).
	Mutating []string
}

// NewPublisher returns a publisher of roots (PEM) into the cluster. It starts nothing.
func NewPublisher(client kubernetes.Interface, roots func() []byte, webhooks WebhookConfigs, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{client: client, roots: roots, webhooks: webhooks, log: log}
}

// Run publishes until ctx ends: on start, for every namespace as it
// appears, and every publishResync.
func (p *Publisher) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(p.client, publishResync)
	nsInf := f.Core().V1().Namespaces().Informer()
	queue := make(chan string, 1024)
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.Status.Phase != corev1.NamespaceTerminating {
			select {
			case queue <- ns.Name:
			default: // full: the next resync retries
			}
		}
	}
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	tick := time.NewTicker(publishResync)
	defer tick.Stop()
	p.patchWebhooks(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ns := <-queue:
			if err := p.publishRoot(ctx, ns); err != nil && ctx.Err() == nil {
				p.log.Info("root cert configmap not written", slog.String(attrNamespace, ns), slog.String(attrError, err.Error()))
			}
		case <-tick.C:
			p.patchWebhooks(ctx)
		}
	}
}

// publishRoot creates or updates the root ConfigMap of namespace ns.
func (p *Publisher) publishRoot(ctx context.Context, ns string) error {
	root := string(p.roots())
	cms := p.client.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{rootCertKey: root},
		}, metav1.CreateOptions{FieldManager: writerFieldManager})
		if apierrors.IsAlreadyExists(err) {
			return nil // raced with an earlier publish; the next resync checks it
		}
		return err
	}
	if err != nil {
		return err
	}
	if cm.Data[rootCertKey] == root {
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[rootCertKey] = root
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: writerFieldManager})
	return err
}

// patchWebhooks sets the caBundle of every webhook of the configurations.
func (p *Publisher) patchWebhooks(ctx context.Context) {
	root := p.roots()
	for _, name := range p.webhooks.Validating {
		if err := p.patchValidating(ctx, name, root); err != nil && ctx.Err() == nil {
			p.log.Info("webhook ca bundle not patched", slog.String(attrKind, "ValidatingWebhookConfiguration"), slog.String(attrName, name), slog.String(attrError, err.Error()))
		}
	}
	for _, name := range p.webhooks.Mutating {
		if err := p.patchMutating(ctx, name, root); err != nil && ctx.Err() == nil {
			p.log.Info("webhook ca bundle not patched", slog.String(attrKind, "MutatingWebhookConfiguration"), slog.String(attrName, name), slog.String(attrError, err.Error()))
		}
	}
}

func (p *Publisher) patchValidating(ctx context.Context, name string, root []byte) error {
	api := p.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	vwc = vwc.DeepCopy()
	changed := false
	for i := range vwc.Webhooks {
		changed = setBundle(&vwc.Webhooks[i].ClientConfig, root) || changed
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, vwc, metav1.UpdateOptions{FieldManager: writerFieldManager}); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	p.log.Info("webhook ca bundle patched", slog.String(attrKind, "ValidatingWebhookConfiguration"), slog.String(attrName, name))
	return nil
}

func (p *Publisher) patchMutating(ctx context.Context, name string, root []byte) error {
	api := p.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	mwc, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	mwc = mwc.DeepCopy()
	changed := false
	for i := range mwc.Webhooks {
		changed = setBundle(&mwc.Webhooks[i].ClientConfig, root) || changed
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, mwc, metav1.UpdateOptions{FieldManager: writerFieldManager}); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	p.log.Info("webhook ca bundle patched", slog.String(attrKind, "MutatingWebhookConfiguration"), slog.String(attrName, name))
	return nil
}

// setBundle sets cc's caBundle to root and reports whether it changed.
func setBundle(cc *admissionregistrationv1.WebhookClientConfig, root []byte) bool {
	if bytes.Equal(cc.CABundle, root) {
		return false
	}
	cc.CABundle = root
	return true
}
