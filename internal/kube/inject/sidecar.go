package inject

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Environment variables the sidecar reads besides its flags.
const (
	// EnvAppProbers holds the apps' original probes, keyed by their
	// /app-health/CONTAINER/{readyz,livez,startupz} path (Istio's
	// ISTIO_KUBE_APP_PROBERS).
	EnvAppProbers = "ISTIO_KUBE_APP_PROBERS"
	// EnvPrometheus holds the app's own prometheus.io/* scrape settings
	// when 15020 merges its metrics (Istio's ISTIO_PROMETHEUS_ANNOTATIONS).
	EnvPrometheus = "ISTIO_PROMETHEUS_ANNOTATIONS"
)

// reservedPorts are the sidecar's own ports, never an app's inbound port.
var reservedPorts = []int32{15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090}

// proxyContainer is `bowline proxy` as the pod's sidecar.
func proxyContainer(cfg Config, s *settings, pod *corev1.Pod, owner Owner) *corev1.Container {
	discovery := s.proxy.GetDiscoveryAddress()
	ca := first(cfg.CAAddress, discovery)
	args := []string{
		"proxy",
		"--type=sidecar",
		"--discovery=" + discovery,
		"--ca-address=" + ca,
		"--ca-root-cert=" + RootCertPath,
		"--ca-token-file=" + TokenPath,
		"--trust-domain=" + cfg.trustDomain(),
		"--node-id=sidecar~$(INSTANCE_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc." + cfg.ClusterDomain,
		"--namespace=$(POD_NAMESPACE)",
		"--workload=" + owner.Name,
		"--service-account=$(SERVICE_ACCOUNT)",
		"--ip=$(INSTANCE_IP)",
		"--labels-file=" + PodInfoDir + "/labels",
		"--interception-mode=" + s.intercept,
		"--log-level=" + s.logLevel,
		fmt.Sprintf("--admin-address=127.0.0.1:%d", s.proxy.GetProxyAdminPort()),
		fmt.Sprintf("--status-port=%d", s.statusPort),
		fmt.Sprintf("--health-port=%d", HealthPort),
		fmt.Sprintf("--stats-port=%d", StatsPort),
		"--drain-duration=" + s.proxy.GetTerminationDrainDuration().AsDuration().String(),
		"--termination-drain",
	}
	for _, p := range inboundPorts(pod) {
		args = append(args, fmt.Sprintf("--inbound=%d=%d", p, p))
	}
	c := &corev1.Container{
		Name:            ProxyContainer,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            args,
		Ports:           []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: StatsPort, Protocol: corev1.ProtocolTCP}},
		Env:             proxyEnv(s),
		Resources:       s.resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: volumeRootCert, MountPath: "/var/run/secrets/istio"},
			{Name: volumeToken, MountPath: "/var/run/secrets/tokens"},
			{Name: volumePodInfo, MountPath: PodInfoDir},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Privileged:               ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr(true),
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(ProxyUID)),
			RunAsGroup:               ptr(int64(ProxyGID)),
		},
	}
	if s.statusPort != 0 {
		ready := corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(HealthPort)}}
		c.StartupProbe = &corev1.Probe{ProbeHandler: ready, PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 600}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: ready, InitialDelaySeconds: s.readinessDelay,
			PeriodSeconds: s.readinessPeriod, TimeoutSeconds: 3, FailureThreshold: s.readinessFailures}
	}
	return c
}

// proxyEnv is the downward-API metadata the sidecar's flags refer to, the
// memory limit for the Go runtime, and the ProxyConfig's proxyMetadata.
func proxyEnv(s *settings) []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("INSTANCE_IP", "status.podIP"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			Resource: "limits.memory", Divisor: resource.MustParse("1")}}},
	}
	keys := make([]string, 0, len(s.proxy.GetProxyMetadata()))
	for k := range s.proxy.GetProxyMetadata() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: s.proxy.GetProxyMetadata()[k]})
	}
	return env
}

// inboundPorts are the TCP ports the app containers declare, sorted: the
// sidecar's inbound listeners (mesh port = app port, as in a pod).
func inboundPorts(pod *corev1.Pod) []int32 {
	var out []int32
	for _, c := range pod.Spec.Containers {
		if c.Name == ProxyContainer {
			continue
		}
		for _, p := range c.Ports {
			if (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) && p.ContainerPort > 0 &&
				!slices.Contains(reservedPorts, p.ContainerPort) && !slices.Contains(out, p.ContainerPort) {
				out = append(out, p.ContainerPort)
			}
		}
	}
	slices.Sort(out)
	return out
}

// initContainer is `bowline iptables` with Istio's istio-iptables flags.
func initContainer(cfg Config, s *settings) corev1.Container {
	exclude := "15090,15021"
	if e := excludeInbound(s); e != "" {
		exclude += "," + e
	}
	args := []string{"iptables",
		"-p", "15001", "-z", "15006",
		"-u", strconv.Itoa(ProxyUID), "-g", strconv.Itoa(ProxyGID),
		"-m", s.intercept,
		"-i", s.includeIPRanges, "-x", s.excludeIPRanges,
		"-b", s.includeInboundPorts, "-d", exclude,
	}
	if s.includeOutboundPorts != "" {
		args = append(args, "-q", s.includeOutboundPorts)
	}
	if s.excludeOutboundPorts != "" {
		args = append(args, "-o", s.excludeOutboundPorts)
	}
	return corev1.Container{
		Name:            InitContainer,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            args,
		Resources:       s.resources,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Privileged:               ptr(false),
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr(false),
			RunAsNonRoot:             ptr(false),
			RunAsUser:                ptr(int64(0)),
			RunAsGroup:               ptr(int64(0)),
		},
	}
}

const (
	volumeRootCert = "istiod-ca-cert"
	volumeToken    = "istio-token"
	volumePodInfo  = "istio-podinfo"
)

// volumes are the sidecar's: the mesh root, the projected token and the
// downward-API pod info.
func volumes() []corev1.Volume {
	return []corev1.Volume{
		{Name: volumePodInfo, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
		}}}},
		{Name: volumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "istio-token", Audience: TokenAudience, ExpirationSeconds: ptr(int64(43200))}},
		}}}},
		{Name: volumeRootCert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap}}}},
	}
}

func ptr[T any](v T) *T { return &v }
