package model

import (
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// OutboundTrafficPolicy is MeshConfig.outboundTrafficPolicy.mode: what a
// sidecar does with traffic to hosts outside the registry.
type OutboundTrafficPolicy string

// Outbound traffic policies.
const (
	// AllowAny passes unknown destinations through (Istio's default).
	AllowAny OutboundTrafficPolicy = "ALLOW_ANY"
	// RegistryOnly blocks hosts not in the registry (502 BlackHoleCluster).
	RegistryOnly OutboundTrafficPolicy = "REGISTRY_ONLY"
)

// AccessLogEncoding is MeshConfig.accessLogEncoding.
type AccessLogEncoding string

// Access log encodings.
const (
	AccessLogText AccessLogEncoding = "TEXT"
	AccessLogJSON AccessLogEncoding = "JSON"
)

// Provider kinds of ExtensionProvider.Kind (the MeshConfig field names).
const (
	ProviderOpenTelemetry      = "opentelemetry"
	ProviderZipkin             = "zipkin"
	ProviderPrometheus         = "prometheus"
	ProviderEnvoyFileAccessLog = "envoyFileAccessLog"
	ProviderEnvoyExtAuthzHTTP  = "envoyExtAuthzHttp"
	ProviderEnvoyExtAuthzGRPC  = "envoyExtAuthzGrpc"
)

// MeshConfig is the mesh-wide configuration in force: Istio's MeshConfig
// from the ConfigMap `istio` or --mesh-config, Istio's defaults applied.
// It is immutable.
type MeshConfig struct {
	// Source names where it came from ("ConfigMap istio-system/istio at
	// mesh.yaml:1"), or "defaults".
	Source string
	// EnableTracing is enableTracing: proxies trace requests.
	EnableTracing bool
	// TraceSampling is defaultConfig.tracing.sampling, percent;
	// config.DefaultTraceSampling when unset.
	TraceSampling float64
	// DefaultTracing, DefaultMetrics and DefaultAccessLogging are
	// defaultProviders: the providers used where no Telemetry names any.
	DefaultTracing, DefaultMetrics, DefaultAccessLogging []string
	// AccessLogFile is accessLogFile: where every proxy writes its access
	// log ("" for none, "/dev/stdout").
	AccessLogFile string
	// AccessLogEncoding and AccessLogFormat shape that log.
	AccessLogEncoding AccessLogEncoding
	AccessLogFormat   string
	// OutboundTrafficPolicy is outboundTrafficPolicy.mode.
	OutboundTrafficPolicy OutboundTrafficPolicy
	// TrustDomain is trustDomain; TrustDomainAliases its aliases.
	TrustDomain        string
	TrustDomainAliases []string
	// RootNamespace is rootNamespace: where mesh-wide policy lives.
	RootNamespace string

	providers []*ExtensionProvider
	raw       *meshv1alpha1.MeshConfig
}

// ExtensionProvider is one entry of MeshConfig.extensionProviders.
type ExtensionProvider struct {
	// Name is what Telemetry and defaultProviders refer to.
	Name string
	// Kind is the provider field set: ProviderOpenTelemetry, ProviderZipkin, ...
	Kind string
	// Service is the host the provider sends to (for providers that send),
	// without the optional "namespace/" prefix, which is in Namespace.
	Service, Namespace string
	// Port is the service port.
	Port uint32
	// Raw is the provider as written (with kind-specific settings).
	Raw *meshv1alpha1.MeshConfig_ExtensionProvider
}

// Raw returns the whole MeshConfig in force; callers must not modify it.
func (m *MeshConfig) Raw() *meshv1alpha1.MeshConfig { return m.raw }

// Providers returns the extension providers in their written order.
func (m *MeshConfig) Providers() []*ExtensionProvider { return m.providers }

// Provider returns the extension provider named name, or nil.
func (m *MeshConfig) Provider(name string) *ExtensionProvider {
	for _, p := range m.providers {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// newMeshConfig checks out the model's view of mc; source describes it.
func newMeshConfig(mc *meshv1alpha1.MeshConfig, source string) *MeshConfig {
	m := &MeshConfig{
		Source:                source,
		EnableTracing:         mc.GetEnableTracing(),
		TraceSampling:         config.DefaultTraceSampling,
		DefaultTracing:        mc.GetDefaultProviders().GetTracing(),
		DefaultMetrics:        mc.GetDefaultProviders().GetMetrics(),
		DefaultAccessLogging:  mc.GetDefaultProviders().GetAccessLogging(),
		AccessLogFile:         mc.GetAccessLogFile(),
		AccessLogEncoding:     AccessLogEncoding(mc.GetAccessLogEncoding().String()),
		AccessLogFormat:       mc.GetAccessLogFormat(),
		OutboundTrafficPolicy: AllowAny,
		TrustDomain:           mc.GetTrustDomain(),
		TrustDomainAliases:    mc.GetTrustDomainAliases(),
		RootNamespace:         mc.GetRootNamespace(),
		raw:                   mc,
	}
	if t := mc.GetDefaultConfig().GetTracing(); t != nil && t.GetSampling() != 0 {
		m.TraceSampling = t.GetSampling()
	}
	if mc.GetOutboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		m.OutboundTrafficPolicy = RegistryOnly
	}
	if m.TrustDomain == "" {
		m.TrustDomain = "cluster.local"
	}
	for _, p := range mc.GetExtensionProviders() {
		m.providers = append(m.providers, newExtensionProvider(p))
	}
	return m
}

func newExtensionProvider(p *meshv1alpha1.MeshConfig_ExtensionProvider) *ExtensionProvider {
	e := &ExtensionProvider{Name: p.GetName(), Raw: p}
	set := func(kind, svc string, port uint32) {
		e.Kind, e.Port = kind, port
		if ns, host, ok := strings.Cut(svc, "/"); ok {
			e.Namespace, e.Service = ns, host
		} else {
			e.Service = svc
		}
	}
	switch v := p.GetProvider().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry:
		set(ProviderOpenTelemetry, v.Opentelemetry.GetService(), v.Opentelemetry.GetPort())
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin:
		set(ProviderZipkin, v.Zipkin.GetService(), v.Zipkin.GetPort())
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
		set(ProviderEnvoyExtAuthzHTTP, v.EnvoyExtAuthzHttp.GetService(), v.EnvoyExtAuthzHttp.GetPort())
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
		set(ProviderEnvoyExtAuthzGRPC, v.EnvoyExtAuthzGrpc.GetService(), v.EnvoyExtAuthzGrpc.GetPort())
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus:
		e.Kind = ProviderPrometheus
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog:
		e.Kind = ProviderEnvoyFileAccessLog
	default:
		e.Kind = "unsupported"
	}
	return e
}

// meshConfigFrom picks the mesh config object of objs (a --mesh-config
// file wins over the ConfigMap) or Istio's defaults.
func meshConfigFrom(objs []*config.Object) *MeshConfig {
	var pick *config.Object
	for _, o := range objs {
		if config.MeshConfigOf(o) == nil {
			continue
		}
		if pick == nil || o.GVK.Kind == config.KindMeshConfig {
			pick = o
		}
	}
	if pick == nil {
		return newMeshConfig(config.DefaultMeshConfig(), "defaults")
	}
	return newMeshConfig(config.MeshConfigOf(pick), pick.Ref()+" at "+pick.Source.String())
}

// Mesh returns the mesh-wide configuration in force.
func (s *Snapshot) Mesh() *MeshConfig { return s.mesh }
