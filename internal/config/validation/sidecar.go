package validation

import (
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateSidecar applies Istio's Sidecar rules: workload selector, ingress
// listeners (port, bind, defaultEndpoint, TLS, connection pool), egress
// listeners ("namespace/host" hosts, one catch-all listener last, unique
// ports and sockets) and the outbound traffic policy.
func validateSidecar(obj *config.Object) []config.FieldError {
	sc, ok := obj.Spec.(*networking.Sidecar)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	networkingSelectorProblems(f, "spec.workloadSelector", sc.GetWorkloadSelector())
	if len(sc.GetEgress()) == 0 && len(sc.GetIngress()) == 0 && sc.GetOutboundTrafficPolicy() == nil && sc.GetInboundConnectionPool() == nil {
		f.errorf("spec", "sidecar is empty: set ingress, egress, outboundTrafficPolicy or inboundConnectionPool")
		return f.list
	}

	ports := map[uint32]bool{}
	for i, in := range sc.GetIngress() {
		ip := indexPath("spec.ingress", i)
		if in == nil {
			f.errorf(ip, "ingress listener must not be null")
			continue
		}
		if in.GetPort() == nil {
			f.errorf(fieldPath(ip, "port"), "port is required for ingress listeners")
			continue
		}
		pp := fieldPath(ip, "port")
		sidecarPortProblems(f, pp, in.GetPort())
		if b := in.GetBind(); b != "" && !isIP(b) {
			f.errorf(fieldPath(ip, "bind"), "bind %q must be an IP address", b)
		}
		if ports[in.GetPort().GetNumber()] {
			f.errorf(fieldPath(pp, "number"), "duplicate port %d: ports of IP bound listeners must be unique", in.GetPort().GetNumber())
		}
		ports[in.GetPort().GetNumber()] = true
		defaultEndpointProblems(f, fieldPath(ip, "defaultEndpoint"), in.GetDefaultEndpoint())
		if t := in.GetTls(); t != nil {
			tp := fieldPath(ip, "tls")
			if len(t.GetSubjectAltNames()) > 0 {
				f.errorf(fieldPath(tp, "subjectAltNames"), "subjectAltNames is not supported in sidecar ingress tls")
			}
			if t.GetHttpsRedirect() {
				f.errorf(fieldPath(tp, "httpsRedirect"), "httpsRedirect is not supported in sidecar ingress tls")
			}
			if t.GetCredentialName() != "" {
				f.errorf(fieldPath(tp, "credentialName"), "credentialName is not supported in sidecar ingress tls")
			}
			if m := t.GetMode(); m == networking.ServerTLSSettings_ISTIO_MUTUAL || m == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				f.errorf(fieldPath(tp, "mode"), "mode %s is not supported in sidecar ingress tls", m)
			}
			serverTLSProblems(f, tp, t)
		}
		connectionPoolProblems(f, fieldPath(ip, "connectionPool"), in.GetConnectionPool())
		if in.GetConnectionPool().GetHttp() != nil && !parseProtocol(in.GetPort().GetProtocol()).isHTTP() {
			f.warnf(fieldPath(ip, "connectionPool.http"), "port %d is not HTTP (%q), only the tcp connection pool settings apply", in.GetPort().GetNumber(), in.GetPort().GetProtocol())
		}
	}
	connectionPoolProblems(f, "spec.inboundConnectionPool", sc.GetInboundConnectionPool())

	ports = map[uint32]bool{}
	sockets := map[string]bool{}
	catchAll := false
	for i, eg := range sc.GetEgress() {
		ep := indexPath("spec.egress", i)
		if eg == nil {
			f.errorf(ep, "egress listener must not be null")
			continue
		}
		if eg.GetPort() == nil {
			// The catch-all listener: at most one, and the last.
			switch {
			case catchAll:
				f.errorf(ep, "only one egress listener may have no port")
				continue
			case i != len(sc.GetEgress())-1:
				f.errorf(ep, "the egress listener without a port must be the last one")
			default:
				catchAll = true
			}
		} else {
			egressPortProblems(f, ep, eg)
			if n := eg.GetPort().GetNumber(); n == 0 {
				if sockets[eg.GetBind()] {
					f.errorf(fieldPath(ep, "bind"), "duplicate unix domain socket %q", eg.GetBind())
				}
				sockets[eg.GetBind()] = true
			} else {
				if ports[n] {
					f.errorf(fieldPath(ep, "port.number"), "duplicate port %d: ports of IP bound listeners must be unique", n)
				}
				ports[n] = true
			}
		}
		egressHostProblems(f, fieldPath(ep, "hosts"), eg.GetHosts(), obj.Meta.Namespace)
	}

	if tp := sc.GetOutboundTrafficPolicy(); tp != nil && tp.GetEgressProxy() != nil {
		pp := "spec.outboundTrafficPolicy.egressProxy"
		if tp.GetMode() != networking.OutboundTrafficPolicy_ALLOW_ANY {
			f.errorf(pp, "egressProxy needs mode ALLOW_ANY")
		} else {
			f.reason(fieldPath(pp, "host"), fqdnProblem(tp.GetEgressProxy().GetHost()))
			if tp.GetEgressProxy().GetPort() == nil {
				f.errorf(fieldPath(pp, "port"), "egressProxy port is required")
			} else {
				f.reason(fieldPath(pp, "port.number"), portProblem(int64(tp.GetEgressProxy().GetPort().GetNumber())))
			}
			if s := tp.GetEgressProxy().GetSubset(); s != "" {
				f.reason(fieldPath(pp, "subset"), subsetNameProblem(s))
			}
		}
	}
	return f.list
}

func sidecarPortProblems(f *fieldErrors, p string, port *networking.SidecarPort) {
	//nolint:staticcheck // targetPort is deprecated; it has no effect on sidecars.
	if port.GetTargetPort() > 0 {
		f.errorf(fieldPath(p, "targetPort"), "targetPort has no effect on sidecars")
	}
	if port.GetName() != "" {
		f.reason(fieldPath(p, "name"), portNameProblem(port.GetName()))
	}
	f.reason(fieldPath(p, "protocol"), protocolProblem(port.GetProtocol()))
	f.reason(fieldPath(p, "number"), portProblem(int64(port.GetNumber())))
}

func egressPortProblems(f *fieldErrors, p string, eg *networking.IstioEgressListener) {
	port := eg.GetPort()
	pp := fieldPath(p, "port")
	if port.GetNumber() != 0 {
		sidecarPortProblems(f, pp, port)
		if b := eg.GetBind(); b != "" && !isIP(b) {
			f.errorf(fieldPath(p, "bind"), "bind %q must be an IP address (or unix:// with port 0)", b)
		}
		return
	}
	// Port 0: a unix domain socket listener.
	//nolint:staticcheck // targetPort is deprecated; it has no effect on sidecars.
	if port.GetTargetPort() > 0 {
		f.errorf(fieldPath(pp, "targetPort"), "targetPort has no effect on sidecars")
	}
	if port.GetName() != "" {
		f.reason(fieldPath(pp, "name"), portNameProblem(port.GetName()))
	}
	f.reason(fieldPath(pp, "protocol"), protocolProblem(port.GetProtocol()))
	if b := eg.GetBind(); !strings.HasPrefix(b, unixAddressPrefix) {
		f.errorf(fieldPath(p, "bind"), "a listener with port 0 needs a unix:// bind address")
	} else {
		f.reason(fieldPath(p, "bind"), unixAddressProblem(strings.TrimPrefix(b, unixAddressPrefix)))
	}
	if m := eg.GetCaptureMode(); m != networking.CaptureMode_DEFAULT && m != networking.CaptureMode_NONE {
		f.errorf(fieldPath(p, "captureMode"), "unix domain socket listeners need captureMode DEFAULT or NONE")
	}
}

// defaultEndpointProblems checks an ingress defaultEndpoint: a loopback or
// unspecified address with a port, or unix://path.
func defaultEndpointProblems(f *fieldErrors, p, ep string) {
	if ep == "" {
		return
	}
	if strings.HasPrefix(ep, unixAddressPrefix) {
		f.reason(p, unixAddressProblem(strings.TrimPrefix(ep, unixAddressPrefix)))
		return
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		f.errorf(p, "defaultEndpoint %q must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://path", ep)
		return
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		f.errorf(p, "defaultEndpoint %q must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://path", ep)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		f.errorf(p, "defaultEndpoint port %q is not a number", port)
		return
	}
	f.reason(p, portProblem(int64(n)))
}

// egressHostProblems checks "namespace/host" entries and warns about
// entries another entry already covers.
func egressHostProblems(f *fieldErrors, p string, hosts []string, namespace string) {
	if len(hosts) == 0 {
		f.errorf(p, "an egress listener needs at least one host")
		return
	}
	byNS := map[string]map[string]bool{}
	for i, h := range hosts {
		hp := indexPath(p, i)
		if ns, name, ok := strings.Cut(h, "/"); ok {
			if ns == "." {
				ns = namespace
			}
			if byNS[ns] == nil {
				byNS[ns] = map[string]bool{}
			}
			if (name != "*" && (byNS[ns][name] || byNS[ns]["*"])) || (name == "*" && len(byNS[ns]) > 0) {
				f.warnf(hp, "duplicate egress host %q", h)
			}
			byNS[ns][name] = true
		}
		namespaceSlashHostProblems(f, hp, h, false)
	}
	if byNS["*"]["*"] && len(byNS) > 1 {
		f.warnf(p, "\"*/*\" selects every host, the other hosts add nothing")
	}
}
