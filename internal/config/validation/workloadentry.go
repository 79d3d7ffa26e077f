package validation

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateWorkloadEntry applies Istio's WorkloadEntry rules: an address (IP,
// host name or unix:// socket) unless a network is given, valid port names
// and numbers, and Kubernetes label syntax.
func validateWorkloadEntry(obj *config.Object) []config.FieldError {
	we, ok := obj.Spec.(*networking.WorkloadEntry)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	workloadEntryProblems(f, "spec", we, workloadEntryRules{requireAddress: true, allowHostname: true})
	return f.list
}

// workloadEntryRules say how strict workloadEntryProblems is for each place
// a WorkloadEntry appears.
type workloadEntryRules struct {
	// requireAddress: an address (or a network) is needed; false for WorkloadGroup templates.
	requireAddress bool
	// allowHostname: the address may be a DNS name (DNS resolution); else an IP or unix socket.
	allowHostname bool
	// servicePorts, when not nil, are the port names the endpoint's ports must refer to.
	servicePorts map[string]bool
}

func workloadEntryProblems(f *fieldErrors, p string, we *networking.WorkloadEntry, rules workloadEntryRules) {
	addr := we.GetAddress()
	ap := fieldPath(p, "address")
	if addr == "" && rules.requireAddress {
		if we.GetNetwork() == "" {
			f.errorf(ap, "address is required (or a network for an endpoint reached through its network gateway)")
		} else {
			f.warnf(ap, "address is unset, the endpoint is reached through the gateway of network %q", we.GetNetwork())
		}
	}
	unix := strings.HasPrefix(addr, unixAddressPrefix)
	switch {
	case unix:
		f.reason(ap, unixAddressProblem(strings.TrimPrefix(addr, unixAddressPrefix)))
		if len(we.GetPorts()) > 0 {
			f.errorf(fieldPath(p, "ports"), "a unix domain socket endpoint cannot have ports")
		}
	case addr == "" || isIP(addr):
	case !rules.allowHostname:
		f.errorf(ap, "address %q is not a valid IP address", addr)
	case fqdnProblem(addr) != "":
		f.errorf(ap, "address %q is neither an IP address nor a valid host name", addr)
	}
	for _, name := range sortedMapKeys(we.GetPorts()) {
		pp := keyPath(fieldPath(p, "ports"), name)
		if rules.servicePorts != nil && !rules.servicePorts[name] {
			f.errorf(pp, "port %q is not a port name of the service entry", name)
		}
		f.reason(pp, portNameProblem(name))
		f.reason(pp, portProblem(int64(we.GetPorts()[name])))
	}
	labelProblems(f, fieldPath(p, "labels"), we.GetLabels())
	if unix && rules.servicePorts != nil && len(rules.servicePorts) != 1 {
		f.errorf(ap, "a unix domain socket endpoint needs exactly one service port, the service entry has %d", len(rules.servicePorts))
	}
}

// validateWorkloadGroup applies Istio's WorkloadGroup rules: a template (an
// entry whose address is filled in per workload), valid metadata labels and a
// readiness probe with one check method.
func validateWorkloadGroup(obj *config.Object) []config.FieldError {
	wg, ok := obj.Spec.(*networking.WorkloadGroup)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	if wg.GetTemplate() == nil {
		f.errorf("spec.template", "template is required")
	} else {
		workloadEntryProblems(f, "spec.template", wg.GetTemplate(), workloadEntryRules{allowHostname: true})
	}
	if md := wg.GetMetadata(); md != nil {
		labelProblems(f, "spec.metadata.labels", md.GetLabels())
	}
	probeProblems(f, "spec.probe", wg.GetProbe())
	return f.list
}

func probeProblems(f *fieldErrors, p string, pr *networking.ReadinessProbe) {
	if pr == nil {
		return
	}
	for _, c := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", pr.GetInitialDelaySeconds()},
		{"timeoutSeconds", pr.GetTimeoutSeconds()},
		{"periodSeconds", pr.GetPeriodSeconds()},
		{"successThreshold", pr.GetSuccessThreshold()},
		{"failureThreshold", pr.GetFailureThreshold()},
	} {
		if c.v < 0 {
			f.errorf(fieldPath(p, c.name), "must not be negative")
		}
	}
	switch m := pr.GetHealthCheckMethod().(type) {
	case *networking.ReadinessProbe_HttpGet:
		hp := fieldPath(p, "httpGet")
		h := m.HttpGet
		if h == nil {
			f.errorf(hp, "httpGet must not be null")
			return
		}
		f.reason(fieldPath(hp, "port"), portProblem(int64(h.GetPort())))
		if s := h.GetScheme(); s != "" && s != "HTTP" && s != "HTTPS" {
			f.errorf(fieldPath(hp, "scheme"), "scheme %q must be HTTP or HTTPS", s)
		}
		for i, hd := range h.GetHttpHeaders() {
			hdp := indexPath(fieldPath(hp, "httpHeaders"), i)
			if hd == nil {
				f.errorf(hdp, "header must not be null")
				continue
			}
			f.reason(fieldPath(hdp, "name"), headerNameProblem(hd.GetName()))
		}
	case *networking.ReadinessProbe_TcpSocket:
		if m.TcpSocket == nil {
			f.errorf(fieldPath(p, "tcpSocket"), "tcpSocket must not be null")
			return
		}
		f.reason(fieldPath(p, "tcpSocket.port"), portProblem(int64(m.TcpSocket.GetPort())))
	case *networking.ReadinessProbe_Grpc:
		if m.Grpc == nil {
			f.errorf(fieldPath(p, "grpc"), "grpc must not be null")
			return
		}
		f.reason(fieldPath(p, "grpc.port"), portProblem(int64(m.Grpc.GetPort())))
	case *networking.ReadinessProbe_Exec:
		if m.Exec == nil || len(m.Exec.GetCommand()) == 0 {
			f.errorf(fieldPath(p, "exec.command"), "exec.command is required")
			return
		}
		for i, c := range m.Exec.GetCommand() {
			if c == "" {
				f.errorf(indexPath(fieldPath(p, "exec.command"), i), "must not be empty")
			}
		}
	default:
		f.errorf(p, "probe needs one of httpGet, tcpSocket, grpc or exec")
	}
}
