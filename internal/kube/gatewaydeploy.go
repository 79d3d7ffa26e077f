package kube

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/gatewayapi"
)

// Labels of what discovery deploys for a Gateway, Istio's names.
const (
	// LabelGatewayClassName is the class of the Gateway a pod serves.
	LabelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name"
	// LabelGatewayManaged marks the Deployments, Services and service
	// accounts discovery manages for Gateways.
	LabelGatewayManaged = "gateway.istio.io/managed"
	// gatewayManagedValue is LabelGatewayManaged's value (Istio's).
	gatewayManagedValue = "istio.io-gateway-controller"
	// gatewayStatusPort serves /healthz/ready for the readiness probe.
	gatewayStatusPort = 15021
	// gatewayAdminPort is the proxy's admin port, on the pod's loopback.
	gatewayAdminPort = 15000
)

// gatewayDeployment is what one Gateway gets: a service account, a
// Deployment running the bowline proxy as a router and a Service, all
// named <gateway>-<class> in the Gateway's namespace and owned by it, so
// that deleting the Gateway deletes them (Kubernetes' garbage collector).
type gatewayDeployment struct {
	sa      *corev1.ServiceAccount
	deploy  *appsv1.Deployment
	service *corev1.Service
}

// gatewayTarget is a Gateway to deploy for.
type gatewayTarget struct {
	namespace, name, class string
	uid                    types.UID
	listeners              []gwv1.Listener
}

// deployName is Istio's name of a Gateway's Deployment, Service and
// service account: <gateway>-<class>, cut to 63 characters.
func deployName(gateway, class string) string {
	n := gateway + "-" + class
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-.")
	}
	return n
}

// renderGateway builds the objects of t from the deployer's settings.
func (g *GatewayDeployer) renderGateway(t gatewayTarget) gatewayDeployment {
	name := deployName(t.name, t.class)
	owner := []metav1.OwnerReference{{APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: t.name, UID: t.uid, Controller: ptr(true)}}
	labels := map[string]string{
		gatewayapi.GatewayNameLabel: t.name,
		LabelGatewayClassName:       t.class,
		LabelGatewayManaged:         gatewayManagedValue,
	}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: t.namespace, Labels: labels, OwnerReferences: owner}
	}
	selector := map[string]string{gatewayapi.GatewayNameLabel: t.name}

	var ports []corev1.ServicePort
	var containerPorts []corev1.ContainerPort
	seen := map[int32]bool{}
	for _, l := range t.listeners {
		p := int32(l.Port)
		if seen[p] {
			continue
		}
		seen[p] = true
		ports = append(ports, corev1.ServicePort{Name: servicePortName(l), Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP})
		containerPorts = append(containerPorts, corev1.ContainerPort{ContainerPort: p, Protocol: corev1.ProtocolTCP})
	}
	slices.SortFunc(ports, func(a, b corev1.ServicePort) int { return int(a.Port - b.Port) })
	slices.SortFunc(containerPorts, func(a, b corev1.ContainerPort) int { return int(a.ContainerPort - b.ContainerPort) })
	ports = append([]corev1.ServicePort{{Name: "status-port", Port: gatewayStatusPort, TargetPort: intstr.FromInt32(gatewayStatusPort), Protocol: corev1.ProtocolTCP}}, ports...)
	containerPorts = append(containerPorts, corev1.ContainerPort{Name: "status-port", ContainerPort: gatewayStatusPort, Protocol: corev1.ProtocolTCP})

	podLabels := map[string]string{"sidecar.istio.io/inject": "false", "service.istio.io/canonical-name": name}
	for k, v := range labels {
		podLabels[k] = v
	}
	var labelArgs []string
	for _, k := range sortedKeys(podLabels) {
		labelArgs = append(labelArgs, k+"="+podLabels[k])
	}
	args := []string{
		"proxy",
		"--type=router",
		"--discovery=" + g.cfg.Discovery,
		"--ca-address=" + g.cfg.Discovery,
		"--ca-root-cert=/var/run/secrets/istio/root-cert.pem",
		"--ca-token-file=/var/run/secrets/tokens/istio-token",
		"--trust-domain=" + g.cfg.TrustDomain,
		"--namespace=$(POD_NAMESPACE)",
		"--workload=$(POD_NAME)",
		"--service-account=" + name,
		"--labels=" + strings.Join(labelArgs, ","),
		"--ip=$(INSTANCE_IP)",
		"--admin-address=127.0.0.1:" + strconv.Itoa(gatewayAdminPort),
		"--health-port=" + strconv.Itoa(gatewayStatusPort),
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "INSTANCE_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
	}
	expiry := int64(43200)
	grace := int64(5)
	deploy := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            name,
					TerminationGracePeriodSeconds: &grace,
					// Listener ports below 1024 bind without privileges, as
					// Istio's gateway pods do.
					SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}},
					Containers: []corev1.Container{{
						Name:            "istio-proxy",
						Image:           g.cfg.Image,
						ImagePullPolicy: g.cfg.ImagePullPolicy,
						Args:            args,
						Env:             env,
						Ports:           containerPorts,
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(gatewayStatusPort)}},
							PeriodSeconds: 2,
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr(true),
							RunAsUser:                ptr(int64(1337)),
							AllowPrivilegeEscalation: ptr(false),
							ReadOnlyRootFilesystem:   ptr(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "istiod-ca-cert", MountPath: "/var/run/secrets/istio", ReadOnly: true},
							{Name: "istio-token", MountPath: "/var/run/secrets/tokens", ReadOnly: true},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "istiod-ca-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap}}}},
						{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
							ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "istio-token", Audience: "istio-ca", ExpirationSeconds: &expiry}}}}}},
					},
				},
			},
		},
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(),
		Spec:       corev1.ServiceSpec{Type: g.cfg.ServiceType, Selector: selector, Ports: ports},
	}
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta()}
	return gatewayDeployment{sa: sa, deploy: deploy, service: svc}
}

// servicePortName names a Service port after the listener's protocol, as
// Istio does (a name Istio's protocol sniffing reads: http-80, https-443).
func servicePortName(l gwv1.Listener) string {
	p := strings.ToLower(string(l.Protocol))
	if p == "" {
		p = "tcp"
	}
	return fmt.Sprintf("%s-%d", p, l.Port)
}

// objects returns the deployment's objects in apply order, as unstructured.
func (d gatewayDeployment) objects() ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, o := range []runtime.Object{d.sa, d.deploy, d.service} {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
		out = append(out, u)
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
