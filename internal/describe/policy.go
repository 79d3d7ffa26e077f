package describe

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// mtls says the mTLS mode p's inbound side runs and which policies decided
// it, then what its clients send for each service (the DestinationRule's
// tls mode, else auto mTLS), warning where the two cannot talk.
func (d *describer) mtls(w registry.Workload, svcs []*registry.Service) {
	if !hasSidecar(w) {
		d.printf("mTLS: none (no sidecar: the pod receives what clients send, and they send plaintext)\n")
		return
	}
	p := proxyOf(w)
	pa := d.snap.PeerAuthnFor(p)
	why := "no PeerAuthentication applies: Istio's default"
	switch {
	case d.snap.NoCA():
		why = "the mesh runs without a CA: no certificates, plaintext only"
	case len(pa.From) > 0:
		why = "set by PeerAuthentication " + strings.Join(pa.From, ", then ")
	}
	d.printf("mTLS: %s, %s\n", pa.Mode, why)
	for _, port := range slices.Sorted(maps.Keys(pa.Ports)) {
		d.printf("   Port %d: %s (portLevelMtls)\n", port, pa.Ports[port])
	}
	for _, svc := range svcs {
		dr := d.snap.DestinationRuleFor(&model.Proxy{Namespace: p.Namespace}, svc.Hostname, svc.Namespace)
		mode := networking.ClientTLSSettings_DISABLE
		client := ""
		if tls := drTLS(dr); tls != nil {
			mode = tls.GetMode()
			client = fmt.Sprintf("%s (DestinationRule %s)", mode, strings.Join(dr.From, ", "))
		} else if d.snap.NoCA() {
			client = "plaintext (no CA)"
		} else {
			mode = networking.ClientTLSSettings_ISTIO_MUTUAL
			client = "ISTIO_MUTUAL automatically (auto mTLS: the endpoint runs a sidecar)"
		}
		d.printf("   Clients of %s send: %s\n", svc.Hostname, client)
		switch {
		case pa.Mode == model.MTLSStrict && mode != networking.ClientTLSSettings_ISTIO_MUTUAL:
			d.printf("   WARNING: the pod is STRICT but clients of %s send %s: their requests are refused\n", svc.Hostname, mode)
		case pa.Mode == model.MTLSDisable && mode == networking.ClientTLSSettings_ISTIO_MUTUAL && drTLS(dr) != nil:
			d.printf("   WARNING: the pod accepts plaintext only (DISABLE) but clients of %s send ISTIO_MUTUAL: their requests fail\n", svc.Hostname)
		}
	}
}

// hasSidecar says a proxy fronts w: every registered workload, and a
// Kubernetes pod labelled security.istio.io/tlsMode=istio (injected).
func hasSidecar(w registry.Workload) bool {
	return !w.Pod || w.Labels[registry.LabelTLSMode] == registry.TLSModeIstio
}

// drTLS is the client TLS settings of a DestinationRule's traffic policy, or nil.
func drTLS(dr *model.MergedDestinationRule) *networking.ClientTLSSettings {
	if dr == nil {
		return nil
	}
	return dr.TrafficPolicy.GetTls()
}

// authz lists the AuthorizationPolicies selecting p in the order the proxy
// evaluates them (CUSTOM, DENY, ALLOW), with what each rule matches, and
// the resulting default.
func (d *describer) authz(w registry.Workload) {
	if !hasSidecar(w) {
		d.printf("AuthorizationPolicies: not enforced (no sidecar)\n")
		return
	}
	d.authzProxy(proxyOf(w))
}

// authzProxy is authz for a proxy.
func (d *describer) authzProxy(p *model.Proxy) {
	aps := d.snap.AuthorizationPoliciesFor(p)
	if len(aps) == 0 {
		d.printf("AuthorizationPolicies: none (every request is allowed)\n")
		return
	}
	order := map[security.AuthorizationPolicy_Action]int{security.AuthorizationPolicy_CUSTOM: 0, security.AuthorizationPolicy_DENY: 1,
		security.AuthorizationPolicy_ALLOW: 2, security.AuthorizationPolicy_AUDIT: 3}
	aps = slices.Clone(aps)
	slices.SortStableFunc(aps, func(a, b *model.AuthorizationPolicy) int {
		return order[a.Spec.GetAction()] - order[b.Spec.GetAction()]
	})
	d.printf("AuthorizationPolicies:\n")
	allows := false
	for _, ap := range aps {
		action := ap.Spec.GetAction().String()
		if ap.Spec.GetAction() == security.AuthorizationPolicy_CUSTOM {
			action += " (provider " + ap.Spec.GetProvider().GetName() + ")"
		}
		if ap.DryRun {
			action += " dry-run"
		}
		scope := "namespace-wide"
		switch {
		case len(ap.Spec.GetSelector().GetMatchLabels()) > 0:
			scope = "selector " + labels(ap.Spec.GetSelector().GetMatchLabels())
		case ap.Namespace == d.snap.RootNamespace():
			scope = "mesh-wide"
		}
		d.printf("   %s %s/%s (%s)\n", action, ap.Namespace, ap.Name, scope)
		rules := ap.Spec.GetRules()
		switch {
		case len(rules) == 0 && ap.Spec.GetAction() == security.AuthorizationPolicy_ALLOW:
			d.printf("      no rules: matches nothing, so it allows nothing\n")
		case len(rules) == 0:
			d.printf("      no rules: matches nothing\n")
		}
		for i, r := range rules {
			d.printf("      rule %d: %s\n", i+1, authzRule(r))
		}
		if ap.Spec.GetAction() == security.AuthorizationPolicy_ALLOW && !ap.DryRun {
			allows = true
		}
	}
	if allows {
		d.printf("   A request that matches no ALLOW rule is denied (403)\n")
	}
}

// authzRule says what one rule matches: from, to and when, each joined by "and".
func authzRule(r *security.Rule) string {
	var parts []string
	var from []string
	for _, f := range r.GetFrom() {
		s := f.GetSource()
		var c []string
		c = appendList(c, "principals", s.GetPrincipals(), s.GetNotPrincipals())
		c = appendList(c, "request principals", s.GetRequestPrincipals(), s.GetNotRequestPrincipals())
		c = appendList(c, "namespaces", s.GetNamespaces(), s.GetNotNamespaces())
		c = appendList(c, "ipBlocks", s.GetIpBlocks(), s.GetNotIpBlocks())
		c = appendList(c, "remoteIpBlocks", s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())
		if len(c) > 0 {
			from = append(from, strings.Join(c, " and "))
		}
	}
	if len(from) > 0 {
		parts = append(parts, "from "+strings.Join(from, " or "))
	}
	var to []string
	for _, t := range r.GetTo() {
		o := t.GetOperation()
		var c []string
		c = appendList(c, "methods", o.GetMethods(), o.GetNotMethods())
		c = appendList(c, "paths", o.GetPaths(), o.GetNotPaths())
		c = appendList(c, "ports", o.GetPorts(), o.GetNotPorts())
		c = appendList(c, "hosts", o.GetHosts(), o.GetNotHosts())
		if len(c) > 0 {
			to = append(to, strings.Join(c, " and "))
		}
	}
	if len(to) > 0 {
		parts = append(parts, "to "+strings.Join(to, " or "))
	}
	for _, w := range r.GetWhen() {
		var c []string
		if len(w.GetValues()) > 0 {
			c = append(c, w.GetKey()+" in ["+strings.Join(w.GetValues(), ", ")+"]")
		}
		if len(w.GetNotValues()) > 0 {
			c = append(c, w.GetKey()+" not in ["+strings.Join(w.GetNotValues(), ", ")+"]")
		}
		parts = append(parts, "when "+strings.Join(c, " and "))
	}
	if len(parts) == 0 {
		return "any request"
	}
	return strings.Join(parts, "; ")
}

func appendList(c []string, what string, in, notIn []string) []string {
	if len(in) > 0 {
		c = append(c, what+" "+strings.Join(in, ", "))
	}
	if len(notIn) > 0 {
		c = append(c, what+" not "+strings.Join(notIn, ", "))
	}
	return c
}

// service describes svc as its clients see it (from its own namespace): its
// ports and endpoints, the DestinationRule and VirtualServices for it, the
// mTLS mode and policies of each workload behind it, and its gateways.
func (d *describer) service(svc *registry.Service, workloads []registry.Workload) {
	d.serviceHeader(svc)
	for _, port := range svc.Ports {
		d.printf("   Port: %s %d/%s\n", port.Name, port.Number, port.Protocol)
	}
	var pods []registry.Workload
	for _, e := range svc.Endpoints {
		name := e.WorkloadName
		if name == "" {
			name = "(inline endpoint)"
		}
		var ports []string
		for _, port := range svc.Ports {
			ports = append(ports, fmt.Sprintf("%d", e.PortFor(port)))
		}
		var notes []string
		if len(e.Labels) > 0 {
			notes = append(notes, labels(e.Labels))
		}
		if !e.Healthy {
			notes = append(notes, "unhealthy")
		}
		note := ""
		if len(notes) > 0 {
			note = " (" + strings.Join(notes, ", ") + ")"
		}
		d.printf("   Endpoint: %s %s:%s%s\n", name, e.Address, strings.Join(ports, ","), note)
		for _, w := range workloads {
			if isEndpointOf(e, w) && !slices.ContainsFunc(pods, func(p registry.Workload) bool { return p.Key() == w.Key() }) {
				pods = append(pods, w)
			}
		}
	}
	if len(svc.Endpoints) == 0 {
		d.printf("   WARNING: no endpoints\n")
	}
	client := &model.Proxy{Type: model.SidecarProxy, Namespace: svc.Namespace}
	dr := d.snap.DestinationRuleFor(client, svc.Hostname, svc.Namespace)
	d.destinationRule(dr, svc, nil)
	d.virtualServices(client, svc, dr, nil)
	// Policy is per workload; replicas of one workload share it.
	seen := map[string]bool{}
	for _, w := range pods {
		if seen[w.Namespace+"/"+w.Name] {
			continue
		}
		seen[w.Namespace+"/"+w.Name] = true
		d.printf(rule)
		d.printf("Workload: %s.%s (%s)\n", w.Name, w.Namespace, labels(w.Labels))
		d.mtls(w, []*registry.Service{svc})
		d.authz(w)
	}
	d.exposure([]*registry.Service{svc})
}
