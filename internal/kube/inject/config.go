package inject

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// Names and paths the injected pod uses; the sidecar (`bowline proxy`) and
// the init container (`bowline iptables`) read the same ones.
const (
	// ProxyContainer is the sidecar's container name (Istio's).
	ProxyContainer = "istio-proxy"
	// InitContainer is the iptables init container's name (Istio's).
	InitContainer = "istio-init"

	// TokenPath is the projected ServiceAccount token (audience istio-ca) the
	// sidecar presents to the CA as "authorization: Bearer".
	TokenPath = "/var/run/secrets/tokens/istio-token"
	// RootCertPath is the mesh root from the istio-ca-root-cert ConfigMap.
	RootCertPath = "/var/run/secrets/istio/root-cert.pem"
	// PodInfoDir holds the downward-API files "labels" and "annotations".
	PodInfoDir = "/etc/istio/pod"

	// TokenAudience is the audience of the projected token (Istio's).
	TokenAudience = "istio-ca"
	// RootCertConfigMap is the ConfigMap discovery publishes the root in.
	RootCertConfigMap = "istio-ca-root-cert"

	// StatusPort serves /app-health/..., merged /stats/prometheus and
	// /healthz/ready (pilot-agent's port).
	StatusPort = 15020
	// HealthPort serves /healthz/ready for the sidecar's readiness probe.
	HealthPort = 15021
	// StatsPort serves the proxy's own /stats/prometheus.
	StatsPort = 15090

	// ProxyUID and ProxyGID are Istio's istio-proxy user; traffic from it is
	// not captured.
	ProxyUID = 1337
	ProxyGID = 1337
)

// Config is what the injector's operator decides: Istio's injection values
// (values.global.proxy.*) and the mesh config. Build it with Defaults and
// adjust.
type Config struct {
	// Image is the bowline image used for both the sidecar and the init
	// container (one binary). Required.
	Image string
	// ImagePullPolicy of the injected containers; empty leaves it to
	// Kubernetes.
	ImagePullPolicy corev1.PullPolicy
	// Revision is the istio.io/rev this injector serves; "" is "default".
	Revision string
	// NativeSidecar injects the proxy as an init container with
	// restartPolicy Always (Kubernetes native sidecars, Istio's default since
	// 1.28); false gives the classic layout (the proxy among the containers).
	// The pod annotation sidecar.istio.io/nativeSidecar overrides it.
	NativeSidecar bool
	// Mesh is the MeshConfig; its defaultConfig is the base ProxyConfig that
	// proxy.istio.io/config annotations are merged onto. Nil means Istio's
	// defaults.
	Mesh *meshv1alpha1.MeshConfig
	// ClusterDomain is the cluster's DNS domain (cluster.local).
	ClusterDomain string
	// ClusterID is ISTIO_META_CLUSTER_ID (Istio's default "Kubernetes").
	ClusterID string
	// CAAddress is the CA the sidecar gets its certificate from; empty means
	// the ProxyConfig's discoveryAddress (discovery serves both on 15012).
	CAAddress string
	// Resources of the injected containers when no sidecar.istio.io/proxy*
	// annotation says otherwise (Istio: requests 100m/128Mi, limits
	// 2000m/1024Mi).
	Resources corev1.ResourceRequirements
	// LogLevel is the proxy's log level when sidecar.istio.io/logLevel is
	// not set (Istio's default "warning").
	LogLevel string
	// HoldApplicationUntilProxyStarts, in the classic layout, starts the
	// proxy first and holds the app containers until it is ready (also set
	// by ProxyConfig holdApplicationUntilProxyStarts). Native sidecars always
	// start first.
	HoldApplicationUntilProxyStarts bool
	// RewriteAppHTTPProbers sends the apps' HTTP, TCP and gRPC probes through
	// the sidecar's status port (Istio's default true); the pod annotation
	// sidecar.istio.io/rewriteAppHTTPProbers overrides it.
	RewriteAppHTTPProbers bool
	// Traffic capture defaults (values.global.proxy.*), overridden per pod by
	// the traffic.sidecar.istio.io/* annotations: "*" means every range or
	// port.
	IncludeIPRanges, ExcludeIPRanges           string
	IncludeInboundPorts, ExcludeInboundPorts   string
	IncludeOutboundPorts, ExcludeOutboundPorts string
	// ReadinessInitialDelaySeconds, ReadinessPeriodSeconds and
	// ReadinessFailureThreshold shape the sidecar's readiness probe (Istio:
	// 0, 15, 4), overridden by readiness.status.sidecar.istio.io/*.
	ReadinessInitialDelaySeconds, ReadinessPeriodSeconds, ReadinessFailureThreshold int32
}

// Defaults returns Istio's injection defaults with the given image.
func Defaults(image string) Config {
	return Config{
		Image:                 image,
		NativeSidecar:         true,
		ClusterDomain:         "cluster.local",
		ClusterID:             "Kubernetes",
		LogLevel:              "warning",
		RewriteAppHTTPProbers: true,
		IncludeIPRanges:       "*",
		IncludeInboundPorts:   "*",
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2000m"), corev1.ResourceMemory: resource.MustParse("1024Mi")},
		},
		ReadinessPeriodSeconds:    15,
		ReadinessFailureThreshold: 4,
	}
}

// Validate checks c.
func (c Config) Validate() error {
	if c.Image == "" {
		return errors.New("inject: config: image is required")
	}
	if c.ClusterDomain == "" {
		return errors.New("inject: config: cluster domain is required")
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		return fmt.Errorf("inject: config: log level %q: %w", c.LogLevel, err)
	}
	return nil
}

// DefaultProxyConfig is Istio's ProxyConfig default, the base under the mesh
// config's defaultConfig.
func DefaultProxyConfig() *meshv1alpha1.ProxyConfig {
	return &meshv1alpha1.ProxyConfig{
		DiscoveryAddress:         "istiod.istio-system.svc:15012",
		StatusPort:               StatusPort,
		ProxyAdminPort:           15000,
		TerminationDrainDuration: durationpb.New(5 * time.Second),
		DrainDuration:            durationpb.New(45 * time.Second),
		InterceptionMode:         meshv1alpha1.ProxyConfig_REDIRECT,
		ClusterName:              &meshv1alpha1.ProxyConfig_ServiceCluster{ServiceCluster: "istio-proxy"},
	}
}

// meshProxyConfig is Istio's defaults with the mesh config's defaultConfig
// merged on top.
func (c Config) meshProxyConfig() *meshv1alpha1.ProxyConfig {
	pc := DefaultProxyConfig()
	if d := c.Mesh.GetDefaultConfig(); d != nil {
		proto.Merge(pc, d)
	}
	return pc
}

func (c Config) revision() string {
	if c.Revision == "" {
		return "default"
	}
	return c.Revision
}

func (c Config) trustDomain() string {
	if td := c.Mesh.GetTrustDomain(); td != "" {
		return td
	}
	return "cluster.local"
}

// ParseMeshConfig reads a MeshConfig in YAML or JSON (the istio ConfigMap's
// data.mesh). Unknown fields are an error.
func ParseMeshConfig(b []byte) (*meshv1alpha1.MeshConfig, error) {
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	m := &meshv1alpha1.MeshConfig{}
	if err := protojson.Unmarshal(js, m); err != nil {
		return nil, fmt.Errorf("not a MeshConfig: %w", err)
	}
	return m, nil
}
