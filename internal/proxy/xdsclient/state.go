package xdsclient

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Type URLs of the resources the client subscribes to.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// typeOrder is the order requests are first sent in (Envoy's: CDS before EDS,
// LDS before RDS, SDS for what they name).
var typeOrder = [...]string{ClusterType, ListenerType, RouteType, EndpointType, SecretType}

// byName are the types subscribed to by name: the names the listeners and
// clusters reference (wanted).
var byName = [...]string{RouteType, EndpointType, SecretType}

// subscribedByName reports whether typ is one of byName.
func subscribedByName(typ string) bool {
	return typ == RouteType || typ == EndpointType || typ == SecretType
}

// Resource is one accepted resource: its raw form, version and checked form.
type Resource struct {
	// Name is the resource name.
	Name string
	// Version is the resource version (delta) or the response version (SotW).
	Version string
	// Raw is the resource as received.
	Raw *anypb.Any
	// Value is the checked form: *xdsconfig.Listener, *xdsconfig.RouteConfig,
	// *xdsconfig.Cluster, *xdsconfig.ClusterLoadAssignment or *xdsconfig.Secret.
	Value any
}

// State is the complete accepted xDS state. It is immutable once handed out.
type State struct {
	// Resources maps type URL to resource name to resource.
	Resources map[string]map[string]*Resource
	// Received marks the types for which at least one response was accepted.
	Received map[string]bool
}

// Listeners returns the checked listeners.
func (s *State) Listeners() map[string]*xdsconfig.Listener {
	return values[*xdsconfig.Listener](s, ListenerType)
}

// Routes returns the checked route configurations.
func (s *State) Routes() map[string]*xdsconfig.RouteConfig {
	return values[*xdsconfig.RouteConfig](s, RouteType)
}

// Clusters returns the checked clusters.
func (s *State) Clusters() map[string]*xdsconfig.Cluster {
	return values[*xdsconfig.Cluster](s, ClusterType)
}

// Endpoints returns the checked load assignments.
func (s *State) Endpoints() map[string]*xdsconfig.ClusterLoadAssignment {
	return values[*xdsconfig.ClusterLoadAssignment](s, EndpointType)
}

// Secrets returns the checked SDS secrets fetched over ADS.
func (s *State) Secrets() map[string]*xdsconfig.Secret {
	return values[*xdsconfig.Secret](s, SecretType)
}

func values[T any](s *State, typ string) map[string]T {
	out := make(map[string]T, len(s.Resources[typ]))
	for k, r := range s.Resources[typ] {
		out[k] = r.Value.(T)
	}
	return out
}

// Complete reports whether LDS and CDS were received and every route,
// endpoint set and SDS secret they reference is present.
func (s *State) Complete() bool {
	if !s.Received[ListenerType] || !s.Received[ClusterType] {
		return false
	}
	for _, typ := range byName {
		for _, n := range s.wanted(typ) {
			if s.Resources[typ][n] == nil {
				return false
			}
		}
	}
	return true
}

// wanted returns the sorted names of RDS, EDS or SDS resources the state
// references.
func (s *State) wanted(typ string) []string {
	set := map[string]bool{}
	addTLS := func(t *xdsconfig.TLSContext) {
		if t != nil {
			for _, n := range t.SDSNames() {
				set[n] = true
			}
		}
	}
	switch typ {
	case SecretType:
		for _, r := range s.Resources[ListenerType] {
			l := r.Value.(*xdsconfig.Listener)
			for i := range l.FilterChains {
				addTLS(l.FilterChains[i].TLS)
			}
			if l.DefaultChain != nil {
				addTLS(l.DefaultChain.TLS)
			}
		}
		for _, r := range s.Resources[ClusterType] {
			for _, t := range r.Value.(*xdsconfig.Cluster).TLSContexts() {
				addTLS(t)
			}
		}
	case RouteType:
		for _, r := range s.Resources[ListenerType] {
			l := r.Value.(*xdsconfig.Listener)
			chains := l.FilterChains
			if l.DefaultChain != nil {
				chains = append(chains[:len(chains):len(chains)], *l.DefaultChain)
			}
			for _, fc := range chains {
				if fc.HTTP != nil && fc.HTTP.RDSName != "" {
					set[fc.HTTP.RDSName] = true
				}
			}
		}
	case EndpointType:
		for _, r := range s.Resources[ClusterType] {
			if c := r.Value.(*xdsconfig.Cluster); c.Type == xdsconfig.DiscoveryEDS {
				set[c.EDSName] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// with returns a copy of s in which typ's resources are changed by upserts
// and removals (replace drops every resource of typ not in upserts first).
// Resources are validated; the error lists every rejected resource.
func (s *State) with(typ string, upserts []*Resource, removed []string, replace bool) (*State, error) {
	next := &State{Resources: make(map[string]map[string]*Resource, len(s.Resources)), Received: map[string]bool{}}
	maps.Copy(next.Resources, s.Resources)
	maps.Copy(next.Received, s.Received)
	m := map[string]*Resource{}
	if !replace {
		maps.Copy(m, s.Resources[typ])
	}
	for _, n := range removed {
		delete(m, n)
	}
	var errs []error
	for _, r := range upserts {
		if old := s.Resources[typ][r.Name]; old != nil && proto.Equal(old.Raw, r.Raw) {
			m[r.Name] = &Resource{Name: r.Name, Version: r.Version, Raw: old.Raw, Value: old.Value}
			continue
		}
		v, err := convert(typ, r.Raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Value = v
		if r.Name == "" {
			r.Name = nameOf(v)
		}
		m[r.Name] = r
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	next.Resources[typ] = m
	next.Received[typ] = true
	return next, nil
}

func nameOf(v any) string {
	switch x := v.(type) {
	case *xdsconfig.Listener:
		return x.Name
	case *xdsconfig.RouteConfig:
		return x.Name
	case *xdsconfig.Cluster:
		return x.Name
	case *xdsconfig.ClusterLoadAssignment:
		return x.ClusterName
	case *xdsconfig.Secret:
		return x.Name
	}
	return ""
}

func convert(typ string, a *anypb.Any) (any, error) {
	if a.GetTypeUrl() != typ {
		return nil, fmt.Errorf("resource of type %q in a %q response", a.GetTypeUrl(), typ)
	}
	switch typ {
	case ListenerType:
		m := &listenerv3.Listener{}
		if err := a.UnmarshalTo(m); err != nil {
			return nil, fmt.Errorf("unmarshal listener: %w", err)
		}
		return xdsconfig.UnmarshalListener(m)
	case RouteType:
		m := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(m); err != nil {
			return nil, fmt.Errorf("unmarshal route configuration: %w", err)
		}
		return xdsconfig.UnmarshalRouteConfig(m)
	case ClusterType:
		m := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(m); err != nil {
			return nil, fmt.Errorf("unmarshal cluster: %w", err)
		}
		return xdsconfig.UnmarshalCluster(m)
	case EndpointType:
		m := &endpointv3.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(m); err != nil {
			return nil, fmt.Errorf("unmarshal cluster load assignment: %w", err)
		}
		return xdsconfig.UnmarshalClusterLoadAssignment(m)
	case SecretType:
		m := &tlsv3.Secret{}
		if err := a.UnmarshalTo(m); err != nil {
			return nil, fmt.Errorf("unmarshal secret: %w", err)
		}
		return xdsconfig.UnmarshalSecret(m)
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}
