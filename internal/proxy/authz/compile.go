package authz

import (
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/bowline-mesh/bowline/internal/proxy/match"
)

const typeURITemplate = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"

// onlyFields is match.OnlyFields: the one proto field check of the data plane.
func onlyFields(m proto.Message, path string, allowed ...string) error {
	return match.OnlyFields(m, path, allowed...)
}

// node is one compiled permission or principal: a small tree evaluated
// without allocation.
type node struct {
	op       byte // 'a'nd, 'o'r, 'n'ot, '*' any, 'h'eader, 'u'rl path, 't'emplate, 'i'p, 'P'ort, 'R'ange, 'm'etadata, 's'ni, 'A'uthenticated
	children []*node
	header   *headerMatcher
	str      *stringMatcher // url path, sni, principal name (nil: any authenticated)
	tmpl     *pathTemplate
	prefix   netip.Prefix
	ipSource byte // 'd'estination, 'D'irect remote, 'r'emote
	port     uint32
	portEnd  uint32
	meta     *metadataMatcher
}

func compilePermission(p *rbacv3.Permission, path string) (*node, error) {
	if p == nil {
		return nil, fmt.Errorf("field %s: missing", path)
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_AndRules:
		return compilePermSet('a', r.AndRules.GetRules(), path+".and_rules.rules")
	case *rbacv3.Permission_OrRules:
		return compilePermSet('o', r.OrRules.GetRules(), path+".or_rules.rules")
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fmt.Errorf("field %s.any: must be true", path)
		}
		return &node{op: '*'}, nil
	case *rbacv3.Permission_NotRule:
		c, err := compilePermission(r.NotRule, path+".not_rule")
		if err != nil {
			return nil, err
		}
		return &node{op: 'n', children: []*node{c}}, nil
	case *rbacv3.Permission_Header:
		h, err := compileHeader(r.Header, path+".header")
		return &node{op: 'h', header: h}, err
	case *rbacv3.Permission_UrlPath:
		return compileURLPath(r.UrlPath, path+".url_path")
	case *rbacv3.Permission_UriTemplate:
		return compileTemplate(r.UriTemplate, path+".uri_template")
	case *rbacv3.Permission_DestinationIp:
		pr, err := cidr(r.DestinationIp, path+".destination_ip")
		return &node{op: 'i', prefix: pr, ipSource: 'd'}, err
	case *rbacv3.Permission_DestinationPort:
		return &node{op: 'P', port: r.DestinationPort}, nil
	case *rbacv3.Permission_DestinationPortRange:
		return &node{op: 'R', port: uint32(max(r.DestinationPortRange.GetStart(), 0)), portEnd: uint32(max(r.DestinationPortRange.GetEnd(), 0))}, nil
	case *rbacv3.Permission_Metadata:
		m, err := compileMetadata(r.Metadata, path+".metadata")
		return &node{op: 'm', meta: m}, err
	case *rbacv3.Permission_RequestedServerName:
		s, err := compileString(r.RequestedServerName, path+".requested_server_name")
		return &node{op: 's', str: s}, err
	case nil:
		return nil, fmt.Errorf("field %s.rule: missing", path)
	default:
		return nil, fmt.Errorf("field %s.%s: unsupported", path, p.ProtoReflect().WhichOneof(p.ProtoReflect().Descriptor().Oneofs().ByName("rule")).Name())
	}
}

func compilePermSet(op byte, rules []*rbacv3.Permission, path string) (*node, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("field %s: empty", path)
	}
	n := &node{op: op}
	for i, r := range rules {
		c, err := compilePermission(r, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
	return n, nil
}

func compilePrincipal(p *rbacv3.Principal, path string) (*node, error) {
	if p == nil {
		return nil, fmt.Errorf("field %s: missing", path)
	}
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_AndIds:
		return compilePrinSet('a', id.AndIds.GetIds(), path+".and_ids.ids")
	case *rbacv3.Principal_OrIds:
		return compilePrinSet('o', id.OrIds.GetIds(), path+".or_ids.ids")
	case *rbacv3.Principal_Any:
		if !id.Any {
			return nil, fmt.Errorf("field %s.any: must be true", path)
		}
		return &node{op: '*'}, nil
	case *rbacv3.Principal_NotId:
		c, err := compilePrincipal(id.NotId, path+".not_id")
		if err != nil {
			return nil, err
		}
		return &node{op: 'n', children: []*node{c}}, nil
	case *rbacv3.Principal_Authenticated_:
		n := &node{op: 'A'}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			s, err := compileString(pn, path+".authenticated.principal_name")
			if err != nil {
				return nil, err
			}
			n.str = s
		}
		return n, nil
	case *rbacv3.Principal_SourceIp:
		pr, err := cidr(id.SourceIp, path+".source_ip")
		return &node{op: 'i', prefix: pr, ipSource: 'D'}, err
	case *rbacv3.Principal_DirectRemoteIp:
		pr, err := cidr(id.DirectRemoteIp, path+".direct_remote_ip")
		return &node{op: 'i', prefix: pr, ipSource: 'D'}, err
	case *rbacv3.Principal_RemoteIp:
		pr, err := cidr(id.RemoteIp, path+".remote_ip")
		return &node{op: 'i', prefix: pr, ipSource: 'r'}, err
	case *rbacv3.Principal_Header:
		h, err := compileHeader(id.Header, path+".header")
		return &node{op: 'h', header: h}, err
	case *rbacv3.Principal_UrlPath:
		return compileURLPath(id.UrlPath, path+".url_path")
	case *rbacv3.Principal_Metadata:
		m, err := compileMetadata(id.Metadata, path+".metadata")
		return &node{op: 'm', meta: m}, err
	case nil:
		return nil, fmt.Errorf("field %s.identifier: missing", path)
	default:
		return nil, fmt.Errorf("field %s.%s: unsupported", path, p.ProtoReflect().WhichOneof(p.ProtoReflect().Descriptor().Oneofs().ByName("identifier")).Name())
	}
}

func compilePrinSet(op byte, ids []*rbacv3.Principal, path string) (*node, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("field %s: empty", path)
	}
	n := &node{op: op}
	for i, id := range ids {
		c, err := compilePrincipal(id, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
	return n, nil
}

func compileURLPath(m *matcherv3.PathMatcher, path string) (*node, error) {
	s, err := compileString(m.GetPath(), path+".path")
	return &node{op: 'u', str: s}, err
}

func compileTemplate(tc *corev3.TypedExtensionConfig, path string) (*node, error) {
	if tc.GetTypedConfig().GetTypeUrl() != typeURITemplate {
		return nil, fmt.Errorf("field %s.typed_config: type %q unsupported", path, tc.GetTypedConfig().GetTypeUrl())
	}
	cfg := &uritemplatev3.UriTemplateMatchConfig{}
	if err := tc.GetTypedConfig().UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("field %s.typed_config: %w", path, err)
	}
	t, err := parseTemplate(cfg.GetPathTemplate())
	if err != nil {
		return nil, fmt.Errorf("field %s.typed_config.path_template: %w", path, err)
	}
	return &node{op: 't', tmpl: t}, nil
}

func cidr(c *corev3.CidrRange, path string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("field %s.address_prefix: %w", path, err)
	}
	bits := a.BitLen()
	if pl := c.GetPrefixLen(); pl != nil {
		bits = int(pl.GetValue())
	}
	p, err := a.Unmap().Prefix(min(bits, a.Unmap().BitLen()))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("field %s.prefix_len: %w", path, err)
	}
	return p, nil
}

// match evaluates the node for r.
func (n *node) match(r *Request) bool {
	switch n.op {
	case 'a':
		for _, c := range n.children {
			if !c.match(r) {
				return false
			}
		}
		return true
	case 'o':
		for _, c := range n.children {
			if c.match(r) {
				return true
			}
		}
		return false
	case 'n':
		return !n.children[0].match(r)
	case '*':
		return true
	case 'h':
		return n.header.match(r)
	case 'u':
		return r.Path != "" && n.str.match(r.pathOnly())
	case 't':
		return r.Path != "" && n.tmpl.match(r.pathOnly())
	case 'i':
		var a netip.Addr
		switch n.ipSource {
		case 'd':
			a = r.Destination.Addr()
		case 'D':
			a = r.Source.Addr()
		default:
			a = r.remote()
		}
		return a.IsValid() && n.prefix.Contains(a.Unmap())
	case 'P':
		return r.Destination.IsValid() && uint32(r.Destination.Port()) == n.port
	case 'R':
		p := uint32(r.Destination.Port())
		return r.Destination.IsValid() && p >= n.port && p < n.portEnd
	case 'm':
		return n.meta.match(r)
	case 's':
		return n.str.match(r.SNI)
	case 'A':
		return r.Authenticated && (n.str == nil || n.str.match(r.Principal))
	}
	return false
}
