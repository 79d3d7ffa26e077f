package validation

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateServiceEntry applies Istio's ServiceEntry rules: hosts, addresses,
// ports, the endpoints each resolution mode allows, the workload selector and
// exportTo.
func validateServiceEntry(obj *config.Object) []config.FieldError {
	se, ok := obj.Spec.(*networking.ServiceEntry)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	networkingSelectorProblems(f, "spec.workloadSelector", se.GetWorkloadSelector())
	if se.GetWorkloadSelector() != nil && se.Endpoints != nil {
		f.errorf("spec.workloadSelector", "workloadSelector and endpoints cannot both be set")
	}

	if len(se.GetHosts()) == 0 {
		f.errorf("spec.hosts", "a service entry needs at least one host")
	}
	for i, h := range se.GetHosts() {
		hp := indexPath("spec.hosts", i)
		if h == "*" {
			f.errorf(hp, "host cannot be the wildcard \"*\"")
			continue
		}
		if msg := wildcardDomainProblem(h); msg != "" {
			f.errorf(hp, "%s", msg)
			continue
		}
		if msg := partialWildcardProblem(h); msg != "" {
			f.warnf(hp, "%s", msg)
		}
	}

	resolution := se.GetResolution()
	for i, a := range se.GetAddresses() {
		ap := indexPath("spec.addresses", i)
		f.reason(ap, ipOrCIDRProblem(a))
		if strings.Contains(a, "/") && resolution != networking.ServiceEntry_NONE && resolution != networking.ServiceEntry_STATIC {
			f.errorf(ap, "CIDR addresses are only allowed with resolution NONE or STATIC")
		}
	}

	portNames := map[string]bool{}
	portNumbers := map[uint32]bool{}
	for i, port := range se.GetPorts() {
		pp := indexPath("spec.ports", i)
		if port == nil {
			f.errorf(pp, "port must not be null")
			continue
		}
		if portNames[port.GetName()] {
			f.errorf(fieldPath(pp, "name"), "duplicate port name %q", port.GetName())
		}
		portNames[port.GetName()] = true
		if portNumbers[port.GetNumber()] {
			f.errorf(fieldPath(pp, "number"), "duplicate port number %d", port.GetNumber())
		}
		portNumbers[port.GetNumber()] = true
		f.reason(fieldPath(pp, "name"), portNameProblem(port.GetName()))
		f.reason(fieldPath(pp, "protocol"), protocolProblem(port.GetProtocol()))
		f.reason(fieldPath(pp, "number"), portProblem(int64(port.GetNumber())))
		if port.GetTargetPort() != 0 {
			f.reason(fieldPath(pp, "targetPort"), portProblem(int64(port.GetTargetPort())))
			if resolution == networking.ServiceEntry_NONE {
				f.warnf(fieldPath(pp, "targetPort"), "targetPort has no effect with resolution NONE")
			}
		}
		if len(se.GetAddresses()) == 0 && (port.GetProtocol() == "" || strings.EqualFold(port.GetProtocol(), "TCP")) {
			f.warnf(pp, "a TCP (or unset protocol) port needs addresses unless proxies allocate them (DNS auto allocation)")
		}
	}

	switch resolution {
	case networking.ServiceEntry_NONE:
		if len(se.GetEndpoints()) > 0 {
			f.errorf("spec.endpoints", "resolution NONE cannot have endpoints")
		}
		if se.GetWorkloadSelector() != nil {
			f.warnf("spec.workloadSelector", "workloadSelector has no effect with resolution NONE")
		}
	case networking.ServiceEntry_STATIC:
		for i, ep := range se.GetEndpoints() {
			epp := indexPath("spec.endpoints", i)
			if ep == nil {
				f.errorf(epp, "endpoint must not be null")
				continue
			}
			workloadEntryProblems(f, epp, ep, workloadEntryRules{requireAddress: true, servicePorts: portNames})
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.GetEndpoints()) == 0 {
			for i, h := range se.GetHosts() {
				if h != "*" && wildcardDomainProblem(h) == "" && fqdnProblem(h) != "" {
					f.errorf(indexPath("spec.hosts", i), "host %q must be a fully qualified domain name (no wildcard) when resolution is %s and there are no endpoints", h, resolution)
				}
			}
		}
		if resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.GetEndpoints()) > 1 {
			f.errorf("spec.endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint, got %d", len(se.GetEndpoints()))
		}
		for i, ep := range se.GetEndpoints() {
			epp := indexPath("spec.endpoints", i)
			if ep == nil {
				f.errorf(epp, "endpoint must not be null")
				continue
			}
			workloadEntryProblems(f, epp, ep, workloadEntryRules{requireAddress: true, allowHostname: true, servicePorts: portNames})
		}
		if se.GetWorkloadSelector() != nil {
			f.warnf("spec.workloadSelector", "workloadSelector has no effect with resolution %s", resolution)
		}
		if len(se.GetAddresses()) > 0 && len(se.GetHosts()) > 1 {
			for _, port := range se.GetPorts() {
				if parseProtocol(port.GetProtocol()).isTCP() {
					f.warnf("spec.hosts", "a service entry with addresses and a TCP port should have a single host")
					break
				}
			}
		}
	}

	// Plain TCP cannot tell hosts apart (no Host header, no SNI), unless
	// resolution is NONE and the hosts are ignored.
	if resolution != networking.ServiceEntry_NONE && len(se.GetHosts()) > 1 {
		for i, port := range se.GetPorts() {
			if pr := parseProtocol(port.GetProtocol()); !pr.isHTTP() && !pr.isTLS() {
				f.errorf(fieldPath(indexPath("spec.ports", i), "protocol"), "multiple hosts need HTTP or TLS ports to tell them apart (resolution %s)", resolution)
				break
			}
		}
	}
	exportToProblems(f, "spec.exportTo", obj.Meta.Namespace, se.GetExportTo(), true)
	return f.list
}
