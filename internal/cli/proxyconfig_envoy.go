package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// The summaries below print istioctl proxy-config's "short" tables, with
// its columns and the same descriptions of matches and destinations, so
// that what Istio's docs show reads the same here.

const (
	filterHCM      = "envoy.filters.network.http_connection_manager"
	filterTCPProxy = "envoy.filters.network.tcp_proxy"
	blackHole      = "BlackHoleCluster"
	passthrough    = "PassthroughCluster"
)

// writeProtos prints msgs as a JSON array (proto field names), or YAML.
func writeProtos[T proto.Message](w io.Writer, msgs []T, format string) error {
	mo := protojson.MarshalOptions{UseProtoNames: true}
	raws := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		b, err := mo.Marshal(m)
		if err != nil {
			return err
		}
		raws = append(raws, b)
	}
	return writeJSON(w, raws, format)
}

// writeJSON prints v as indented JSON, or as YAML when format is yaml.
func writeJSON(w io.Writer, v any, format string) error {
	out, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if out, err = yaml.JSONToYAML(out); err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

// clusterKey splits Istio's cluster name DIRECTION|PORT|SUBSET|FQDN.
func clusterKey(name string) (direction, subset, fqdn string, port int, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return "", "", name, 0, false
	}
	port, _ = strconv.Atoi(parts[1])
	return parts[0], parts[2], parts[3], port, true
}

type clusterFilter struct {
	fqdn, direction, subset string
	port                    int
}

func (f clusterFilter) keep(c *clusterv3.Cluster) bool {
	direction, subset, fqdn, port, _ := clusterKey(c.GetName())
	return (f.fqdn == "" || strings.HasPrefix(fqdn, f.fqdn)) && (f.direction == "" || direction == f.direction) &&
		(f.subset == "" || subset == f.subset) && (f.port == 0 || port == f.port)
}

func sortClusters(cs []*clusterv3.Cluster) {
	slices.SortStableFunc(cs, func(a, b *clusterv3.Cluster) int {
		ad, as, af, ap, _ := clusterKey(a.GetName())
		bd, bs, bf, bp, _ := clusterKey(b.GetName())
		switch {
		case af != bf:
			return strings.Compare(af, bf)
		case as != bs:
			return strings.Compare(as, bs)
		case ap != bp:
			return ap - bp
		}
		return strings.Compare(ad, bd)
	})
}

// clusterType is the discovery type as istioctl shows it (EDS, STATIC, ORIGINAL_DST, ...).
func clusterType(c *clusterv3.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

func writeClusterSummary(w io.Writer, cs []*clusterv3.Cluster, f clusterFilter) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tDESTINATION RULE")
	for _, c := range cs {
		if !f.keep(c) {
			continue
		}
		if direction, subset, fqdn, port, ok := clusterKey(c.GetName()); ok {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", fqdn, port, dash(subset), direction, clusterType(c), describeManagement(c.GetMetadata()))
			continue
		}
		fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\n", c.GetName(), clusterType(c), describeManagement(c.GetMetadata()))
	}
	return tw.Flush()
}

// describeManagement names the Istio object a resource came from
// (filter_metadata istio.config), as NAME.NAMESPACE.
func describeManagement(md *corev3.Metadata) string {
	cfg := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	if cfg == "" {
		return ""
	}
	// /apis/networking.istio.io/v1/namespaces/NS/KIND/NAME
	if p := strings.Split(cfg, "/"); len(p) == 8 && strings.HasPrefix(cfg, "/apis/networking.istio.io/") {
		return p[7] + "." + p[5]
	}
	return "<unknown>"
}

type listenerFilter struct {
	port    int
	address string
}

func (f listenerFilter) keep(l *listenerv3.Listener) bool {
	sa := l.GetAddress().GetSocketAddress()
	return (f.port == 0 || int(sa.GetPortValue()) == f.port) && (f.address == "" || sa.GetAddress() == f.address)
}

func sortListeners(ls []*listenerv3.Listener) {
	slices.SortStableFunc(ls, func(a, b *listenerv3.Listener) int {
		as, bs := a.GetAddress().GetSocketAddress(), b.GetAddress().GetSocketAddress()
		if as.GetPortValue() != bs.GetPortValue() {
			return int(as.GetPortValue()) - int(bs.GetPortValue())
		}
		return strings.Compare(as.GetAddress(), bs.GetAddress())
	})
}

func writeListenerSummary(w io.Writer, ls []*listenerv3.Listener, f listenerFilter) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "ADDRESSES\tPORT\tMATCH\tDESTINATION")
	for _, l := range ls {
		if !f.keep(l) {
			continue
		}
		sa := l.GetAddress().GetSocketAddress()
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(slices.Clip(chains), l.GetDefaultFilterChain())
		}
		type row struct{ match, dest string }
		rows := make([]row, 0, len(chains))
		for _, fc := range chains {
			rows = append(rows, row{describeChainMatch(fc.GetFilterChainMatch()), describeDestination(fc.GetFilters())})
		}
		slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(b.dest, a.dest) })
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", sa.GetAddress(), sa.GetPortValue(), r.match, r.dest)
		}
	}
	return tw.Flush()
}

// appProtocolNames are istioctl's names for Istio's ALPN lists.
var appProtocolNames = []struct {
	name   string
	protos []string
}{
	{"App: HTTP TLS", []string{"http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
	{"App: Istio HTTP Plain", []string{"istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
	{"App: TCP TLS", []string{"istio-peer-exchange", "istio"}},
	{"App: HTTP", []string{"http/1.0", "http/1.1", "h2c"}},
}

func describeChainMatch(m *listenerv3.FilterChainMatch) string {
	var d []string
	if len(m.GetServerNames()) > 0 {
		d = append(d, "SNI: "+strings.Join(m.GetServerNames(), ","))
	}
	if m.GetTransportProtocol() != "" {
		d = append(d, "Trans: "+m.GetTransportProtocol())
	}
	if ap := m.GetApplicationProtocols(); len(ap) > 0 {
		name := "App: " + strings.Join(ap, ",")
		for _, n := range appProtocolNames {
			if reflect.DeepEqual(ap, n.protos) {
				name = n.name
				break
			}
		}
		d = append(d, name)
	}
	port := ""
	if m.GetDestinationPort() != nil {
		port = fmt.Sprintf(":%d", m.GetDestinationPort().GetValue())
	}
	if len(m.GetPrefixRanges()) > 0 {
		var pf []string
		for _, p := range m.GetPrefixRanges() {
			pf = append(pf, fmt.Sprintf("%s/%d", p.GetAddressPrefix(), p.GetPrefixLen().GetValue()))
		}
		d = append(d, "Addr: "+strings.Join(pf, ",")+port)
	} else if port != "" {
		d = append(d, "Addr: *"+port)
	}
	if len(d) == 0 {
		return "ALL"
	}
	return strings.Join(d, "; ")
}

func describeDestination(filters []*listenerv3.Filter) string {
	for _, f := range filters {
		switch f.GetName() {
		case filterHCM:
			var h hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
				return err.Error()
			}
			if rc := h.GetRouteConfig(); rc != nil {
				return describeInlineRoute(rc)
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				return "Route: " + n
			}
			return "HTTP"
		case filterTCPProxy:
			var tp tcpv3.TcpProxy
			if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
				return err.Error()
			}
			if c := tp.GetCluster(); c != "" {
				if c == blackHole || c == passthrough {
					return c
				}
				return "Cluster: " + c
			}
			return "TCP"
		}
	}
	return "Non-HTTP/Non-TCP"
}

func describeInlineRoute(rc *routev3.RouteConfiguration) string {
	if vhs := rc.GetVirtualHosts(); len(vhs) == 1 && slices.Equal(vhs[0].GetDomains(), []string{"*"}) && len(vhs[0].GetRoutes()) == 1 {
		r := vhs[0].GetRoutes()[0]
		if c := r.GetRoute().GetCluster(); c != "" && r.GetMatch().GetPrefix() == "/" {
			if c == blackHole || c == passthrough {
				return c
			}
			return "Cluster: " + c
		}
	}
	var vhosts []string
	for _, vh := range rc.GetVirtualHosts() {
		routes := describeRoutes(vh)
		if d := describeDomainsInline(vh); d != "" {
			routes = d + " " + routes
		}
		vhosts = append(vhosts, routes)
	}
	return "Inline Route: " + strings.Join(vhosts, "; ")
}

func describeDomainsInline(vh *routev3.VirtualHost) string {
	if slices.Equal(vh.GetDomains(), []string{"*"}) {
		return ""
	}
	return strings.Join(vh.GetDomains(), "/")
}

func describeRoutes(vh *routev3.VirtualHost) string {
	rs := make([]string, 0, len(vh.GetRoutes()))
	for _, r := range vh.GetRoutes() {
		rs = append(rs, describeMatch(r.GetMatch()))
	}
	return strings.Join(rs, ", ")
}

func describeMatch(m *routev3.RouteMatch) string {
	var c []string
	if p := m.GetPrefix(); p != "" {
		c = append(c, p+"*")
	}
	if p := m.GetPathSeparatedPrefix(); p != "" {
		c = append(c, "PathPrefix:"+p)
	}
	if p := m.GetPath(); p != "" {
		c = append(c, p)
	}
	if re := m.GetSafeRegex(); re != nil {
		c = append(c, "regex "+re.GetRegex())
	}
	return strings.Join(c, " ")
}

// describeRouteDomains shows one domain, or the shortest names without
// ports (two at most, then "+ N more..."), as istioctl does.
func describeRouteDomains(domains []string) string {
	if len(domains) <= 1 {
		return strings.Join(domains, "")
	}
	var noPort []string
	for _, d := range domains {
		if !strings.Contains(d, ":") || (strings.Count(d, ":") > 2 && strings.HasSuffix(d, "]")) {
			noPort = append(noPort, d)
		}
	}
	set := map[string]bool{}
	for _, d := range noPort {
		set[d] = true
	}
	var short []string
	for _, d := range noPort {
		full, partial := strings.TrimSuffix(d, ".svc.cluster.local"), strings.TrimSuffix(d, ".svc")
		if (full != d && set[full]) || (partial != d && set[partial]) {
			continue
		}
		short = append(short, d)
	}
	if len(short) > 2 {
		return fmt.Sprintf("%s + %d more...", strings.Join(short[:2], ", "), len(short)-2)
	}
	return strings.Join(short, ", ")
}

func writeRouteSummary(w io.Writer, rcs []*routev3.RouteConfiguration, name string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVHOST NAME\tDOMAINS\tMATCH\tVIRTUAL SERVICE")
	for _, rc := range rcs {
		if name != "" && rc.GetName() != name {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetRoute().GetCluster() == passthrough {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rc.GetName(), vh.GetName(), describeRouteDomains(vh.GetDomains()), describeMatch(r.GetMatch()), describeManagement(r.GetMetadata()))
			}
			if len(vh.GetRoutes()) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t/*\t404\n", rc.GetName(), vh.GetName(), describeRouteDomains(vh.GetDomains()))
			}
		}
	}
	return tw.Flush()
}

// endpointRow is one endpoint of one cluster.
type endpointRow struct {
	addr    string
	port    uint32
	status  corev3.HealthStatus
	outlier bool
	cluster string
}

// endpointRows lists the endpoints of the load assignments; failed holds
// "cluster::host:port" of hosts the proxy's /clusters reports ejected.
func endpointRows(clas []*endpointv3.ClusterLoadAssignment, failed map[string]bool, cluster string) []endpointRow {
	var rows []endpointRow
	for _, cla := range clas {
		if cluster != "" && cla.GetClusterName() != cluster {
			continue
		}
		for _, le := range cla.GetEndpoints() {
			for _, ep := range le.GetLbEndpoints() {
				sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
				status := ep.GetHealthStatus()
				if status == corev3.HealthStatus_UNKNOWN {
					status = corev3.HealthStatus_HEALTHY // Envoy routes to UNKNOWN as to HEALTHY
				}
				hp := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
				rows = append(rows, endpointRow{addr: sa.GetAddress(), port: sa.GetPortValue(), status: status,
					outlier: failed[cla.GetClusterName()+"::"+hp], cluster: cla.GetClusterName()})
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b endpointRow) int {
		switch {
		case a.addr != b.addr:
			return strings.Compare(a.addr, b.addr)
		case a.port != b.port:
			return int(a.port) - int(b.port)
		}
		return strings.Compare(a.cluster, b.cluster)
	})
	return rows
}

func writeEndpointSummary(w io.Writer, rows []endpointRow) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER")
	for _, r := range rows {
		check := "OK"
		if r.outlier {
			check = "FAILED"
		}
		fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s\n", r.addr, r.port, r.status, check, r.cluster)
	}
	return tw.Flush()
}

// outlierFailed reads the proxy's /clusters text for hosts failing outlier
// detection: lines "CLUSTER::HOST:PORT::health_flags::/failed_outlier_check".
func outlierFailed(clustersText []byte) map[string]bool {
	failed := map[string]bool{}
	for _, line := range bytes.Split(clustersText, []byte("\n")) {
		s := string(line)
		key, flags, ok := strings.Cut(s, "::health_flags::")
		if ok && strings.Contains(flags, "failed_outlier_check") {
			failed[key] = true
		}
	}
	return failed
}
