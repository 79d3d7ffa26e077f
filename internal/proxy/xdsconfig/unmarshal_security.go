package xdsconfig

import (
	"errors"
	"fmt"
	"strings"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
	"github.com/bowline-mesh/bowline/internal/proxy/jwtauthn"
)

// Type URLs of the security filters.
const (
	typeRBACHTTP    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	typeRBACNetwork = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
	typeJWTAuthn    = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"

	typeRBACPerRoute = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
	typeJWTPerRoute  = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
)

// unmarshalRBACHTTP compiles an http rbac filter; the engine's error names
// the field inside the filter config.
func unmarshalRBACHTTP(a *anypb.Any, path string) (*RBACFilter, error) {
	c := &rbachttpv3.RBAC{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	e, err := authz.NewHTTP(c)
	if err != nil {
		return nil, nestField(path, err)
	}
	return &RBACFilter{Engine: e}, nil
}

// unmarshalRBACPerRoute compiles a route's RBACPerRoute; without rbac it
// turns the filter off there, as in Envoy.
func unmarshalRBACPerRoute(a *anypb.Any, path string) (*RBACPerRoute, error) {
	c := &rbachttpv3.RBACPerRoute{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	if c.GetRbac() == nil {
		return &RBACPerRoute{Disabled: true}, nil
	}
	e, err := authz.NewHTTP(c.GetRbac())
	if err != nil {
		return nil, nestField(path+".rbac", err)
	}
	return &RBACPerRoute{Engine: e}, nil
}

// unmarshalJWTPerRoute checks a route's jwt_authn PerRouteConfig.
func unmarshalJWTPerRoute(a *anypb.Any, path string) (*JWTPerRoute, error) {
	c := &jwtv3.PerRouteConfig{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	switch o := c.GetRequirementSpecifier().(type) {
	case *jwtv3.PerRouteConfig_Disabled:
		if !o.Disabled {
			return nil, fmt.Errorf("field %s.disabled: must be true when set", path)
		}
		return &JWTPerRoute{Disabled: true}, nil
	case *jwtv3.PerRouteConfig_RequirementName:
		if o.RequirementName == "" {
			return nil, fmt.Errorf("field %s.requirement_name: empty", path)
		}
		return &JWTPerRoute{RequirementName: o.RequirementName}, nil
	}
	return nil, fmt.Errorf("field %s: one of disabled and requirement_name is required", path)
}

// unmarshalJWTAuthn checks a jwt_authn filter by compiling it.
func unmarshalJWTAuthn(a *anypb.Any, path string) (*JWTAuthnFilter, error) {
	c := &jwtv3.JwtAuthentication{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	if _, err := jwtauthn.New(c, jwtauthn.Options{}); err != nil {
		return nil, nestField(path, err)
	}
	f := &JWTAuthnFilter{Config: c}
	for _, p := range c.GetProviders() {
		f.ClearRouteCache = f.ClearRouteCache || p.GetClearRouteCache()
	}
	return f, nil
}

// unmarshalNetworkRBAC compiles a network rbac filter of a filter chain.
func unmarshalNetworkRBAC(a *anypb.Any, path string) (*authz.Engine, error) {
	c := &rbacnetv3.RBAC{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	e, err := authz.NewNetwork(c)
	if err != nil {
		return nil, nestField(path, err)
	}
	return e, nil
}

// pathOptions reads the HCM's path handling fields (normalize_path,
// merge_slashes, path_with_escaped_slashes_action).
func pathOptions(h *hcmv3.HttpConnectionManager, path string) (authz.PathOptions, error) {
	o := authz.PathOptions{Normalize: h.GetNormalizePath().GetValue(), MergeSlashes: h.GetMergeSlashes()}
	switch h.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		o.EscapedSlashes = authz.KeepEscapedSlashes
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		o.EscapedSlashes = authz.RejectEscapedSlashes
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		o.EscapedSlashes = authz.UnescapeAndRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		o.EscapedSlashes = authz.UnescapeAndForward
	default:
		return o, fmt.Errorf("field %s.path_with_escaped_slashes_action: %s unsupported", path, h.GetPathWithEscapedSlashesAction())
	}
	return o, nil
}

// nestField puts an engine's "field X: reason" error under path, giving
// "field PATH.X: reason"; other errors become "field PATH: error".
func nestField(path string, err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "field "); ok {
		return errors.New("field " + path + "." + rest)
	}
	return fmt.Errorf("field %s: %w", path, err)
}
