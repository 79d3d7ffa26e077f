package validation

import (
	"fmt"
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateDestinationRule applies Istio's DestinationRule rules: host,
// traffic policies (load balancing, connection pool, outlier detection,
// client TLS, per-port settings, tunnel), subsets, exportTo and selector.
func validateDestinationRule(obj *config.Object) []config.FieldError {
	dr, ok := obj.Spec.(*networking.DestinationRule)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	if dr.GetHost() == "" {
		f.errorf("spec.host", "host is required")
	} else {
		f.reason("spec.host", wildcardDomainProblem(dr.GetHost()))
	}
	trafficPolicyProblems(f, "spec.trafficPolicy", dr.GetTrafficPolicy())

	names := map[string]bool{}
	for i, s := range dr.GetSubsets() {
		sp := indexPath("spec.subsets", i)
		if s == nil {
			f.errorf(sp, "subset must not be null")
			continue
		}
		if names[s.GetName()] && s.GetName() != "" {
			f.errorf(fieldPath(sp, "name"), "duplicate subset name %q", s.GetName())
		}
		names[s.GetName()] = true
		f.reason(fieldPath(sp, "name"), subsetNameProblem(s.GetName()))
		labelProblems(f, fieldPath(sp, "labels"), s.GetLabels())
		trafficPolicyProblems(f, fieldPath(sp, "trafficPolicy"), s.GetTrafficPolicy())
	}

	exportToProblems(f, "spec.exportTo", obj.Meta.Namespace, dr.GetExportTo(), false)
	if dr.GetWorkloadSelector() != nil && len(dr.GetExportTo()) > 0 {
		// A rule for selected workloads only makes sense in their namespace.
		local := 0
		for _, e := range dr.GetExportTo() {
			if e == "." || e == obj.Meta.Namespace {
				local++
			}
		}
		switch {
		case local == 0:
			f.errorf("spec.exportTo", "a destination rule with a workload selector cannot be exported beyond its namespace")
		case len(dr.GetExportTo()) > 1:
			f.errorf("spec.exportTo", "a destination rule with a workload selector can only be exported to its own namespace")
		}
	}
	workloadSelectorProblems(f, "spec.workloadSelector", dr.GetWorkloadSelector())
	return f.list
}

func trafficPolicyProblems(f *fieldErrors, p string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.GetOutlierDetection() == nil && tp.GetConnectionPool() == nil && tp.GetLoadBalancer() == nil &&
		tp.GetTls() == nil && tp.GetPortLevelSettings() == nil && tp.GetTunnel() == nil &&
		tp.GetProxyProtocol() == nil && tp.GetRetryBudget() == nil {
		f.errorf(p, "traffic policy must set at least one field")
		return
	}
	if tp.GetTunnel() != nil && tp.GetProxyProtocol() != nil {
		f.errorf(fieldPath(p, "tunnel"), "tunnel and proxyProtocol cannot both be set")
		return
	}
	outlierDetectionProblems(f, fieldPath(p, "outlierDetection"), tp.GetOutlierDetection())
	connectionPoolProblems(f, fieldPath(p, "connectionPool"), tp.GetConnectionPool())
	loadBalancerProblems(f, fieldPath(p, "loadBalancer"), tp.GetLoadBalancer(), tp.GetOutlierDetection())
	clientTLSProblems(f, fieldPath(p, "tls"), tp.GetTls())
	portTrafficPolicyProblems(f, fieldPath(p, "portLevelSettings"), tp.GetPortLevelSettings())
	tunnelProblems(f, fieldPath(p, "tunnel"), tp.GetTunnel())
	if rb := tp.GetRetryBudget(); rb != nil {
		rp := fieldPath(p, "retryBudget")
		if pc := rb.GetPercent(); pc != nil && (pc.GetValue() < 0 || pc.GetValue() > 100) {
			f.errorf(fieldPath(rp, "percent"), "must be between 0 and 100, got %v", pc.GetValue())
		}
		durationProblems(f, fieldPath(rp, "budgetInterval"), rb.GetBudgetInterval())
	}
}

func portTrafficPolicyProblems(f *fieldErrors, p string, pls []*networking.TrafficPolicy_PortTrafficPolicy) {
	ports := map[uint32]int{}
	for i, pl := range pls {
		pp := indexPath(p, i)
		if pl == nil {
			f.errorf(pp, "port traffic policy must not be null")
			continue
		}
		if pl.GetPort() == nil {
			f.errorf(fieldPath(pp, "port"), "port is required")
		} else {
			n := pl.GetPort().GetNumber()
			f.reason(fieldPath(pp, "port.number"), portProblem(int64(n)))
			if prev, dup := ports[n]; dup && n != 0 {
				f.errorf(fieldPath(pp, "port.number"), "port %d already has settings in portLevelSettings[%d]", n, prev)
			} else {
				ports[n] = i
			}
		}
		if pl.GetOutlierDetection() == nil && pl.GetConnectionPool() == nil && pl.GetLoadBalancer() == nil && pl.GetTls() == nil {
			f.errorf(pp, "port traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection or tls")
			continue
		}
		outlierDetectionProblems(f, fieldPath(pp, "outlierDetection"), pl.GetOutlierDetection())
		connectionPoolProblems(f, fieldPath(pp, "connectionPool"), pl.GetConnectionPool())
		loadBalancerProblems(f, fieldPath(pp, "loadBalancer"), pl.GetLoadBalancer(), pl.GetOutlierDetection())
		clientTLSProblems(f, fieldPath(pp, "tls"), pl.GetTls())
	}
}

func outlierDetectionProblems(f *fieldErrors, p string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	durationProblems(f, fieldPath(p, "baseEjectionTime"), o.GetBaseEjectionTime())
	durationProblems(f, fieldPath(p, "interval"), o.GetInterval())
	//nolint:staticcheck // consecutiveErrors is deprecated but still accepted.
	if o.GetConsecutiveErrors() != 0 {
		f.warnf(fieldPath(p, "consecutiveErrors"), "consecutiveErrors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors")
	}
	if !o.GetSplitExternalLocalOriginErrors() && o.GetConsecutiveLocalOriginFailures().GetValue() > 0 {
		f.errorf(fieldPath(p, "consecutiveLocalOriginFailures"), "needs splitExternalLocalOriginErrors: true")
	}
	f.reason(fieldPath(p, "maxEjectionPercent"), percentProblem(int64(o.GetMaxEjectionPercent())))
	f.reason(fieldPath(p, "minHealthPercent"), percentProblem(int64(o.GetMinHealthPercent())))
	for i, c := range o.GetOutlierDetectionHttpErrorCodes() {
		if c < 100 || c > 599 {
			f.errorf(indexPath(fieldPath(p, "outlierDetectionHttpErrorCodes"), i), "http status %d must be between 100 and 599", c)
		}
	}
}

func connectionPoolProblems(f *fieldErrors, p string, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.GetHttp() == nil && cp.GetTcp() == nil {
		f.errorf(p, "connection pool must set tcp or http")
		return
	}
	if h := cp.GetHttp(); h != nil {
		hp := fieldPath(p, "http")
		for _, c := range []struct {
			name string
			v    int32
		}{
			{"http1MaxPendingRequests", h.GetHttp1MaxPendingRequests()},
			{"http2MaxRequests", h.GetHttp2MaxRequests()},
			{"maxRequestsPerConnection", h.GetMaxRequestsPerConnection()},
			{"maxRetries", h.GetMaxRetries()},
			{"maxConcurrentStreams", h.GetMaxConcurrentStreams()},
		} {
			if c.v < 0 {
				f.errorf(fieldPath(hp, c.name), "must not be negative")
			}
		}
		durationProblems(f, fieldPath(hp, "idleTimeout"), h.GetIdleTimeout())
		if ka := h.GetHttp2KeepAlive(); ka != nil {
			durationProblems(f, fieldPath(hp, "http2KeepAlive.interval"), ka.GetInterval())
			durationProblems(f, fieldPath(hp, "http2KeepAlive.timeout"), ka.GetTimeout())
		}
		if h.GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.GetUseClientProtocol() {
			f.errorf(fieldPath(hp, "useClientProtocol"), "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE")
		}
	}
	if t := cp.GetTcp(); t != nil {
		tp := fieldPath(p, "tcp")
		if t.GetMaxConnections() < 0 {
			f.errorf(fieldPath(tp, "maxConnections"), "must not be negative")
		}
		durationProblems(f, fieldPath(tp, "connectTimeout"), t.GetConnectTimeout())
		durationProblems(f, fieldPath(tp, "maxConnectionDuration"), t.GetMaxConnectionDuration())
		durationProblems(f, fieldPath(tp, "idleTimeout"), t.GetIdleTimeout())
		if ka := t.GetTcpKeepalive(); ka != nil {
			durationProblems(f, fieldPath(tp, "tcpKeepalive.time"), ka.GetTime())
			durationProblems(f, fieldPath(tp, "tcpKeepalive.interval"), ka.GetInterval())
		}
	}
}

// maglevMaxTableSize is Envoy's upper bound for the Maglev table.
const maglevMaxTableSize = 5000011

func loadBalancerProblems(f *fieldErrors, p string, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		chp := fieldPath(p, "consistentHash")
		if c := ch.GetHttpCookie(); c != nil && c.GetName() == "" {
			f.errorf(fieldPath(chp, "httpCookie.name"), "cookie name is required")
		}
		//nolint:staticcheck // minimumRingSize is deprecated but still accepted.
		if ch.GetMinimumRingSize() != 0 {
			f.warnf(fieldPath(chp, "minimumRingSize"), "minimumRingSize is deprecated, use ringHash.minimumRingSize")
			if ch.GetHashAlgorithm() != nil {
				f.errorf(fieldPath(chp, "minimumRingSize"), "minimumRingSize cannot be combined with ringHash or maglev")
			}
		}
		if m := ch.GetMaglev(); m != nil {
			tp := fieldPath(chp, "maglev.tableSize")
			switch n := m.GetTableSize(); {
			case n == 0:
				f.errorf(tp, "tableSize is required for maglev")
			case n >= maglevMaxTableSize:
				f.errorf(tp, "tableSize %d must be less than %d", n, maglevMaxTableSize)
			case !isPrime(n):
				f.errorf(tp, "tableSize %d must be a prime number", n)
			}
		}
	}
	localityLBProblems(f, fieldPath(p, "localityLbSetting"), lb.GetLocalityLbSetting(), outlier)
	durationProblems(f, fieldPath(p, "warmupDurationSecs"), lb.GetWarmupDurationSecs())
	if w := lb.GetWarmup(); w != nil {
		wp := fieldPath(p, "warmup")
		if w.GetDuration() == nil {
			f.errorf(fieldPath(wp, "duration"), "duration is required")
		}
		durationProblems(f, fieldPath(wp, "duration"), w.GetDuration())
		if mp := w.GetMinimumPercent(); mp != nil && (mp.GetValue() < 0 || mp.GetValue() > 100) {
			f.errorf(fieldPath(wp, "minimumPercent"), "must be between 0 and 100, got %v", mp.GetValue())
		}
		if a := w.GetAggression(); a != nil && a.GetValue() < 0 {
			f.errorf(fieldPath(wp, "aggression"), "must not be negative")
		}
	}
}

// isPrime follows Envoy's check for the Maglev table size.
func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	}
	if x&1 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for d := uint64(3); d <= limit; d += 2 {
		if x%d == 0 {
			return false
		}
	}
	return true
}

// Topology labels that failoverPriority may not use together with failover.
var topologyLabels = map[string]bool{
	"topology.kubernetes.io/region": true,
	"topology.kubernetes.io/zone":   true,
	"topology.istio.io/subzone":     true,
}

func localityLBProblems(f *fieldErrors, p string, lb *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.GetDistribute()) > 0 && len(lb.GetFailover()) > 0 {
		f.errorf(p, "distribute and failover cannot both be set")
		return
	}
	if len(lb.GetFailover()) > 0 {
		for i, l := range lb.GetFailoverPriority() {
			if topologyLabels[l] {
				f.errorf(indexPath(fieldPath(p, "failoverPriority"), i), "topology label %q cannot be used together with failover", l)
				return
			}
		}
	}
	var from []string
	for i, d := range lb.GetDistribute() {
		dp := indexPath(fieldPath(p, "distribute"), i)
		from = append(from, d.GetFrom())
		var total uint64
		var to []string
		for _, k := range sortedMapKeys(d.GetTo()) {
			w := d.GetTo()[k]
			to = append(to, k)
			if w == 0 || w > 100 {
				f.errorf(keyPath(fieldPath(dp, "to"), k), "locality weight %d must be between 1 and 100", w)
				return
			}
			total += uint64(w)
		}
		if total != 100 {
			f.errorf(fieldPath(dp, "to"), "total locality weight %d must be 100", total)
			return
		}
		f.reason(fieldPath(dp, "to"), localitiesProblem(to))
	}
	f.reason(fieldPath(p, "distribute"), localitiesProblem(from))
	if (len(lb.GetFailover()) > 0 || len(lb.GetFailoverPriority()) > 0) && outlier == nil {
		f.warnf(p, "failover only works with an outlierDetection policy")
	}
	for i, fo := range lb.GetFailover() {
		fp := indexPath(fieldPath(p, "failover"), i)
		if fo.GetFrom() == fo.GetTo() {
			f.errorf(fp, "failover from and to must be different regions")
		}
		if strings.Contains(fo.GetFrom(), "/") || strings.Contains(fo.GetTo(), "/") {
			f.errorf(fp, "failover only takes regions (no zone or subzone)")
		}
		if strings.Contains(fo.GetFrom(), "*") || strings.Contains(fo.GetTo(), "*") {
			f.errorf(fp, "failover regions cannot contain the wildcard \"*\"")
		}
	}
}

// localitiesProblem checks "region/zone/subzone" localities: a single
// trailing "*" wildcard, no empty parts and no overlap between entries.
func localitiesProblem(localities []string) string {
	type zones map[string]map[string]bool
	seen := map[string]zones{}
	for _, l := range localities {
		if n := strings.Count(l, "*"); n > 1 || (n == 1 && !strings.HasSuffix(l, "*")) {
			return fmt.Sprintf("locality %q may have a single \"*\" wildcard, at the end", l)
		}
		if _, all := seen["*"]; all {
			return fmt.Sprintf("locality %q overlaps an earlier one", l)
		}
		parts := strings.SplitN(l, "/", 3)
		for _, part := range parts {
			if part == "" {
				return fmt.Sprintf("locality %q must not have an empty region, zone or subzone", l)
			}
		}
		region := parts[0]
		z, haveRegion := seen[region]
		switch len(parts) {
		case 1:
			if haveRegion {
				return fmt.Sprintf("locality %q overlaps an earlier one", l)
			}
			seen[region] = zones{"*": {"*": true}}
		case 2:
			if haveRegion && (z["*"] != nil || z[parts[1]] != nil) {
				return fmt.Sprintf("locality %q overlaps an earlier one", l)
			}
			if !haveRegion {
				z = zones{}
				seen[region] = z
			}
			z[parts[1]] = map[string]bool{"*": true}
		case 3:
			if haveRegion && (z["*"] != nil || z[parts[1]]["*"] || z[parts[1]][parts[2]]) {
				return fmt.Sprintf("locality %q overlaps an earlier one", l)
			}
			if !haveRegion {
				z = zones{}
				seen[region] = z
			}
			if z[parts[1]] == nil {
				z[parts[1]] = map[string]bool{}
			}
			z[parts[1]][parts[2]] = true
		}
	}
	return ""
}

// clientTLSProblems checks the TLS settings for connections to upstreams.
func clientTLSProblems(f *fieldErrors, p string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	mode := t.GetMode()
	if t.GetInsecureSkipVerify().GetValue() {
		switch mode {
		case networking.ClientTLSSettings_SIMPLE:
			if t.GetCaCertificates() != "" || t.GetCredentialName() != "" || t.GetSubjectAltNames() != nil {
				f.errorf(fieldPath(p, "insecureSkipVerify"), "caCertificates, credentialName and subjectAltNames cannot be set when insecureSkipVerify is true")
			}
		case networking.ClientTLSSettings_MUTUAL:
			if t.GetCaCertificates() != "" || t.GetSubjectAltNames() != nil {
				f.errorf(fieldPath(p, "insecureSkipVerify"), "caCertificates and subjectAltNames cannot be set when insecureSkipVerify is true")
			}
		}
	}
	if (mode == networking.ClientTLSSettings_SIMPLE || mode == networking.ClientTLSSettings_MUTUAL) && t.GetCredentialName() != "" {
		if t.GetClientCertificate() != "" || t.GetCaCertificates() != "" || t.GetPrivateKey() != "" || t.GetCaCrl() != "" {
			f.errorf(fieldPath(p, "credentialName"), "clientCertificate, privateKey, caCertificates and caCrl cannot be set with credentialName")
		}
		return
	}
	if mode == networking.ClientTLSSettings_MUTUAL {
		if t.GetClientCertificate() == "" {
			f.errorf(fieldPath(p, "clientCertificate"), "MUTUAL mode needs clientCertificate (or credentialName)")
		}
		if t.GetPrivateKey() == "" {
			f.errorf(fieldPath(p, "privateKey"), "MUTUAL mode needs privateKey (or credentialName)")
		}
	}
}

func tunnelProblems(f *fieldErrors, p string, t *networking.TrafficPolicy_TunnelSettings) {
	if t == nil {
		return
	}
	if pr := t.GetProtocol(); pr != "" && pr != "CONNECT" && pr != "POST" {
		f.errorf(fieldPath(p, "protocol"), "tunnel protocol %q must be CONNECT or POST", pr)
	}
	if h := t.GetTargetHost(); h == "" {
		f.errorf(fieldPath(p, "targetHost"), "targetHost is required")
	} else if fqdnProblem(h) != "" && !isIP(h) {
		f.errorf(fieldPath(p, "targetHost"), "targetHost %q must be a fully qualified domain name or an IP address", h)
	}
	f.reason(fieldPath(p, "targetPort"), portProblem(int64(t.GetTargetPort())))
}
