package inject

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"istio.io/api/annotation"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// settings is what the pod's annotations and the Config decide, checked:
// every annotation the injector reads is parsed here, once.
type settings struct {
	proxy     *meshv1alpha1.ProxyConfig
	native    bool
	intercept string // REDIRECT or NONE
	logLevel  string
	resources corev1.ResourceRequirements
	rewrite   bool
	hold      bool
	// The capture settings as the init container receives them (Istio's
	// string forms, "*" for all).
	includeIPRanges, excludeIPRanges                   string
	includeInboundPorts, excludeInboundPorts           string
	includeOutboundPorts, excludeOutboundPorts         string
	statusPort                                         int32
	readinessDelay, readinessPeriod, readinessFailures int32
}

// envoyLevels are the values sidecar.istio.io/logLevel takes (Envoy's).
var envoyLevels = []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}

func parseLogLevel(s string) (string, error) {
	for _, l := range envoyLevels {
		if s == l {
			return s, nil
		}
	}
	return "", fmt.Errorf("want one of %s", strings.Join(envoyLevels, ", "))
}

// annotationError names the annotation and why its value is refused.
func annotationError(name, value string, err error) error {
	return fmt.Errorf("annotation %s: value %q: %w", name, value, err)
}

func readSettings(cfg Config, meta *podMeta) (*settings, error) {
	ann := meta.annotations
	get := func(name, def string) string {
		if v, ok := ann[name]; ok {
			return v
		}
		return def
	}
	s := &settings{
		native:               cfg.NativeSidecar,
		rewrite:              cfg.RewriteAppHTTPProbers,
		includeIPRanges:      get(annotation.SidecarTrafficIncludeOutboundIPRanges.Name, cfg.IncludeIPRanges),
		excludeIPRanges:      get(annotation.SidecarTrafficExcludeOutboundIPRanges.Name, cfg.ExcludeIPRanges),
		includeInboundPorts:  get(annotation.SidecarTrafficIncludeInboundPorts.Name, cfg.IncludeInboundPorts),
		excludeInboundPorts:  get(annotation.SidecarTrafficExcludeInboundPorts.Name, cfg.ExcludeInboundPorts),
		includeOutboundPorts: get(annotation.SidecarTrafficIncludeOutboundPorts.Name, cfg.IncludeOutboundPorts),
		excludeOutboundPorts: get(annotation.SidecarTrafficExcludeOutboundPorts.Name, cfg.ExcludeOutboundPorts),
		readinessDelay:       cfg.ReadinessInitialDelaySeconds,
		readinessPeriod:      cfg.ReadinessPeriodSeconds,
		readinessFailures:    cfg.ReadinessFailureThreshold,
	}

	// proxy.istio.io/config merges onto the mesh's defaultConfig.
	s.proxy = cfg.meshProxyConfig()
	if v, ok := ann[annotation.ProxyConfig.Name]; ok {
		js, err := yaml.YAMLToJSON([]byte(v))
		if err != nil {
			return nil, annotationError(annotation.ProxyConfig.Name, v, err)
		}
		over := &meshv1alpha1.ProxyConfig{}
		if err := protojson.Unmarshal(js, over); err != nil {
			return nil, annotationError(annotation.ProxyConfig.Name, v, fmt.Errorf("not a ProxyConfig: %w", err))
		}
		proto.Merge(s.proxy, over)
	}
	s.hold = cfg.HoldApplicationUntilProxyStarts || s.proxy.GetHoldApplicationUntilProxyStarts().GetValue()

	for _, b := range []struct {
		name string
		dst  *bool
	}{
		{annotation.SidecarNativeSidecar.Name, &s.native},
		{annotation.SidecarRewriteAppHTTPProbers.Name, &s.rewrite},
	} {
		if v, ok := ann[b.name]; ok {
			x, err := strconv.ParseBool(v)
			if err != nil {
				return nil, annotationError(b.name, v, fmt.Errorf("want true or false"))
			}
			*b.dst = x
		}
	}
	if v, ok := ann[annotation.PrometheusMergeMetrics.Name]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			return nil, annotationError(annotation.PrometheusMergeMetrics.Name, v, fmt.Errorf("want true or false"))
		}
	}

	s.intercept = get(annotation.SidecarInterceptionMode.Name, s.proxy.GetInterceptionMode().String())
	switch s.intercept {
	case "REDIRECT", "NONE":
	case "TPROXY":
		return nil, annotationError(annotation.SidecarInterceptionMode.Name, s.intercept, fmt.Errorf("TPROXY is not supported by Bowline; use REDIRECT or NONE"))
	default:
		return nil, annotationError(annotation.SidecarInterceptionMode.Name, s.intercept, fmt.Errorf("want REDIRECT or NONE"))
	}

	lvl := get(annotation.SidecarLogLevel.Name, cfg.LogLevel)
	if _, err := parseLogLevel(lvl); err != nil {
		return nil, annotationError(annotation.SidecarLogLevel.Name, lvl, err)
	}
	s.logLevel = lvl

	s.statusPort = s.proxy.GetStatusPort()
	if v, ok := ann[annotation.SidecarStatusPort.Name]; ok {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, annotationError(annotation.SidecarStatusPort.Name, v, fmt.Errorf("want a port from 0 to 65535"))
		}
		s.statusPort = int32(p)
	}
	for _, r := range []struct {
		name string
		dst  *int32
	}{
		{annotation.SidecarStatusReadinessInitialDelaySeconds.Name, &s.readinessDelay},
		{annotation.SidecarStatusReadinessPeriodSeconds.Name, &s.readinessPeriod},
		{annotation.SidecarStatusReadinessFailureThreshold.Name, &s.readinessFailures},
	} {
		if v, ok := ann[r.name]; ok {
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return nil, annotationError(r.name, v, fmt.Errorf("want a non-negative number"))
			}
			*r.dst = int32(n)
		}
	}

	for _, c := range []struct {
		name, value string
		star        bool
	}{
		{annotation.SidecarTrafficIncludeOutboundIPRanges.Name, s.includeIPRanges, true},
		{annotation.SidecarTrafficExcludeOutboundIPRanges.Name, s.excludeIPRanges, false},
	} {
		if err := checkCIDRs(c.value, c.star); err != nil {
			return nil, annotationError(c.name, c.value, err)
		}
	}
	for _, p := range []struct {
		name, value string
		star        bool
	}{
		{annotation.SidecarTrafficIncludeInboundPorts.Name, s.includeInboundPorts, true},
		{annotation.SidecarTrafficExcludeInboundPorts.Name, s.excludeInboundPorts, false},
		{annotation.SidecarTrafficIncludeOutboundPorts.Name, s.includeOutboundPorts, false},
		{annotation.SidecarTrafficExcludeOutboundPorts.Name, s.excludeOutboundPorts, false},
	} {
		if err := checkPorts(p.value, p.star); err != nil {
			return nil, annotationError(p.name, p.value, err)
		}
	}

	res, set, err := annotationResources(ann)
	if err != nil {
		return nil, err
	}
	if set {
		s.resources = res
	} else {
		s.resources = *cfg.Resources.DeepCopy()
	}
	return s, nil
}

// annotationResources reads sidecar.istio.io/proxyCPU, proxyMemory,
// proxyCPULimit and proxyMemoryLimit. As in Istio, when any of them is set
// they replace the configured resources entirely.
func annotationResources(ann map[string]string) (corev1.ResourceRequirements, bool, error) {
	var out corev1.ResourceRequirements
	set := false
	for _, r := range []struct {
		name  string
		limit bool
		res   corev1.ResourceName
	}{
		{annotation.SidecarProxyCPU.Name, false, corev1.ResourceCPU},
		{annotation.SidecarProxyMemory.Name, false, corev1.ResourceMemory},
		{annotation.SidecarProxyCPULimit.Name, true, corev1.ResourceCPU},
		{annotation.SidecarProxyMemoryLimit.Name, true, corev1.ResourceMemory},
	} {
		v, ok := ann[r.name]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return out, false, annotationError(r.name, v, fmt.Errorf("not a resource quantity (like 100m or 128Mi)"))
		}
		set = true
		list := &out.Requests
		if r.limit {
			list = &out.Limits
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[r.res] = q
	}
	return out, set, nil
}

// checkCIDRs checks a comma-separated list of IPv4 CIDRs; "*" alone is
// allowed where star is.
func checkCIDRs(s string, star bool) error {
	if star && strings.TrimSpace(s) == "*" {
		return nil
	}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR", f)
		}
		if !p.Addr().Is4() {
			return fmt.Errorf("%q: only IPv4 ranges are supported", f)
		}
	}
	return nil
}

// checkPorts checks a comma-separated port list; "*" alone is allowed where
// star is.
func checkPorts(s string, star bool) error {
	if star && strings.TrimSpace(s) == "*" {
		return nil
	}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a port from 1 to 65535", f)
		}
	}
	return nil
}
