package model

import (
	"cmp"
	"slices"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// MTLSMode is the effective mutual TLS mode of an inbound port.
type MTLSMode int

// Effective modes. There is no UNSET: it always resolves to a parent's mode,
// and to PERMISSIVE at the top (Istio's default).
const (
	// MTLSPermissive accepts mTLS from sidecars and plaintext from anyone.
	MTLSPermissive MTLSMode = iota
	// MTLSStrict accepts mTLS only.
	MTLSStrict
	// MTLSDisable accepts plaintext only.
	MTLSDisable
)

func (m MTLSMode) String() string {
	switch m {
	case MTLSStrict:
		return "STRICT"
	case MTLSDisable:
		return "DISABLE"
	}
	return "PERMISSIVE"
}

// PeerAuthentication is a validated PeerAuthentication with its identity.
type PeerAuthentication struct {
	Name, Namespace string
	// Created is the creation timestamp (zero when unknown): the oldest
	// policy wins a tie, as in Istio.
	Created time.Time
	Spec    *security.PeerAuthentication
}

// PeerAuthn is the mTLS policy that applies to one proxy's inbound side:
// a mode for the workload and overrides per port.
type PeerAuthn struct {
	// Mode applies to every port without an override.
	Mode MTLSMode
	// Ports maps workload ports (the port the sidecar receives mesh traffic
	// on, BOWLINE_INBOUND's PORT) to their mode, from portLevelMtls.
	Ports map[uint32]MTLSMode
	// From names the policies that decided it, "namespace/name" with their
	// level (mesh, namespace, workload), the most general first; empty when
	// none applies (Istio's PERMISSIVE default).
	From []string
}

// ModeFor is the mode of an inbound port.
func (a PeerAuthn) ModeFor(port uint32) MTLSMode {
	if m, ok := a.Ports[port]; ok {
		return m
	}
	return a.Mode
}

func newPeerAuthentication(o *config.Object, spec *security.PeerAuthentication) *PeerAuthentication {
	pa := &PeerAuthentication{Name: o.Meta.Name, Namespace: o.Meta.Namespace, Spec: spec}
	if t, err := time.Parse(time.RFC3339, o.Meta.CreationTimestamp); err == nil {
		pa.Created = t
	}
	return pa
}

// PeerAuthnFor composes the PeerAuthentications that apply to p with
// Istio's precedence: a policy with a selector matching p in p's namespace
// beats the namespace policy (no selector, p's namespace), which beats the
// mesh policy (no selector, root namespace); among several at one level the
// oldest wins, then the first by name. UNSET inherits the level above;
// nothing set at all is PERMISSIVE. portLevelMtls is honoured only on a
// policy with a selector (Istio ignores it elsewhere) and an UNSET port
// inherits the workload's mode. Without a CA every port is DISABLE.
func (s *Snapshot) PeerAuthnFor(p *Proxy) PeerAuthn {
	if s.noCA {
		return PeerAuthn{Mode: MTLSDisable} // no certificates: plaintext only (noca.go)
	}
	var mesh, ns, wl *PeerAuthentication
	older := func(a, b *PeerAuthentication) bool { // a wins over b
		if b == nil {
			return true
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c < 0
		}
		return cmp.Compare(a.Name, b.Name) < 0
	}
	for _, pa := range s.security.peerAuthns {
		sel := pa.Spec.GetSelector().GetMatchLabels()
		switch {
		case len(sel) > 0:
			if pa.Namespace == p.Namespace && s.appliesTo(p, pa.Namespace, &securitySelector{labels: sel}) && older(pa, wl) {
				wl = pa
			}
		case pa.Namespace == s.rootNamespace:
			if older(pa, mesh) {
				mesh = pa
			}
		case pa.Namespace == p.Namespace:
			if older(pa, ns) {
				ns = pa
			}
		}
	}
	out := PeerAuthn{Mode: MTLSPermissive}
	for i, pa := range []*PeerAuthentication{mesh, ns, wl} {
		if pa != nil {
			out.Mode = mode(pa.Spec.GetMtls().GetMode(), out.Mode)
			out.From = append(out.From, pa.Namespace+"/"+pa.Name+" ("+[...]string{"mesh", "namespace", "workload"}[i]+")")
		}
	}
	if wl != nil && len(wl.Spec.GetPortLevelMtls()) > 0 {
		ports := make([]uint32, 0, len(wl.Spec.GetPortLevelMtls()))
		for port := range wl.Spec.GetPortLevelMtls() {
			ports = append(ports, port)
		}
		slices.Sort(ports)
		out.Ports = map[uint32]MTLSMode{}
		for _, port := range ports {
			out.Ports[port] = mode(wl.Spec.GetPortLevelMtls()[port].GetMode(), out.Mode)
		}
	}
	return out
}

// mode resolves an Istio mode, UNSET meaning parent.
func mode(m security.PeerAuthentication_MutualTLS_Mode, parent MTLSMode) MTLSMode {
	switch m {
	case security.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	}
	return parent
}

// NamespaceMTLSMode is Istio's best-effort guess of the mode servers in ns
// run (BestEffortInferServiceMTLSMode), for auto mTLS on the client side:
// the namespace policy, else the mesh policy, else PERMISSIVE. Workload
// policies are not considered (a client cannot tell which workload it
// reaches).
func (s *Snapshot) NamespaceMTLSMode(ns string) MTLSMode {
	return s.PeerAuthnFor(&Proxy{Namespace: ns}).Mode
}
