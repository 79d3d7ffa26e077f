package xds

import (
	"fmt"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/model"
)

// Names and stat prefixes of the authorization filters, as Istio emits them.
const (
	filterRBACHTTP = "envoy.filters.http.rbac"
	filterRBACNet  = "envoy.filters.network.rbac"
	// rbacTCPStatPrefix is the network RBAC filter's stat_prefix (required by Envoy).
	rbacTCPStatPrefix = "tcp."
	// Shadow (dry-run) stat prefixes, Istio's istio.io/dry-run names.
	rbacDryRunAllowPrefix = "istio_dry_run_allow_"
	rbacDryRunDenyPrefix  = "istio_dry_run_deny_"
	// extAuthzPrefix starts the policy names of CUSTOM rules.
	extAuthzPrefix = "istio-ext-authz"
	// badCustomSuffix ends the policy names of CUSTOM rules whose provider
	// is not configured: they are enforced as DENY instead.
	badCustomSuffix = "-deny-due-to-bad-CUSTOM-action"
	// customNotConfiguredPrefix is the rules_stat_prefix of that DENY filter,
	// so the stats and the access log say why the request was refused.
	customNotConfiguredPrefix = "istio_ext_authz_provider_not_configured_"
)

// authzBuilt holds the RBAC rule sets of one action, split into enforced and
// dry-run (shadow) rules; either may be nil.
type authzBuilt struct {
	rules, shadow *rbacv3.RBAC
	// custom marks the DENY set standing in for CUSTOM policies whose
	// provider cannot be used.
	custom bool
	// ext, when set, makes this the CUSTOM set of one provider: shadow holds
	// its rules (they only name the matched policy), ext the ext_authz configs.
	ext *extAuthzProvider
}

// authzSets builds, in Istio's filter order, the RBAC rule sets of the
// AuthorizationPolicies applying to the proxy: CUSTOM (one set per
// provider, each followed by its ext_authz filter), AUDIT (LOG), DENY,
// ALLOW. forTCP applies Istio's rule for HTTP-only fields on TCP filter
// chains. Port conditions name lp.target and are retargeted to lp.listen
// (inbound.go).
func (g *gen) authzSets(forTCP bool, lp listenPorts) []authzBuilt {
	out := g.newAuthzSets(forTCP)
	for _, b := range out {
		retargetPorts(b.rules, lp.target, lp.listen)
		retargetPorts(b.shadow, lp.target, lp.listen)
	}
	return out
}

func (g *gen) newAuthzSets(forTCP bool) []authzBuilt {
	policies := g.snap.AuthorizationPoliciesFor(g.proxy)
	if len(policies) == 0 {
		return nil
	}
	byAction := map[security.AuthorizationPolicy_Action][]*model.AuthorizationPolicy{}
	for _, p := range policies {
		a := p.Spec.GetAction()
		byAction[a] = append(byAction[a], p)
	}
	out := g.customSets(byAction[security.AuthorizationPolicy_CUSTOM], forTCP)
	for _, step := range []struct {
		action security.AuthorizationPolicy_Action
		rbac   rbacv3.RBAC_Action
	}{
		{security.AuthorizationPolicy_AUDIT, rbacv3.RBAC_LOG},
		{security.AuthorizationPolicy_DENY, rbacv3.RBAC_DENY},
		{security.AuthorizationPolicy_ALLOW, rbacv3.RBAC_ALLOW},
	} {
		if ps := byAction[step.action]; len(ps) > 0 {
			out = append(out, buildRBAC(ps, step.rbac, forTCP, false, g.trustDomains()))
		}
	}
	return out
}

// customSets builds the CUSTOM sets, one per provider in name order, as
// Istio does: the rules become the shadow rules of an RBAC filter that only
// names the matched policy, and the provider's ext_authz filter follows it.
// A provider that is not configured or not usable turns its rules into DENY
// rules (names ending -deny-due-to-bad-CUSTOM-action); so do the rules of
// every provider when one workload's policies name several (Istio's default,
// PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS off). On TCP chains an HTTP
// provider has nothing to check and its policies are skipped. Dry-run
// CUSTOM policies are refused by validation, as Istio refuses them; any
// that reached here would neither call the provider nor deny.
func (g *gen) customSets(policies []*model.AuthorizationPolicy, forTCP bool) []authzBuilt {
	byProvider := map[string][]*model.AuthorizationPolicy{}
	var names []string
	for _, p := range policies {
		if p.DryRun {
			continue
		}
		n := p.Spec.GetProvider().GetName()
		if byProvider[n] == nil {
			names = append(names, n)
		}
		byProvider[n] = append(byProvider[n], p)
	}
	slices.Sort(names)
	var out []authzBuilt
	for _, n := range names {
		b := buildRBAC(byProvider[n], rbacv3.RBAC_DENY, forTCP, true, g.trustDomains())
		if b.rules == nil {
			continue
		}
		prov := g.extAuthzProvider(n)
		if len(names) > 1 {
			prov.err = fmt.Errorf("multiple CUSTOM providers on one workload are not supported: %v", names)
		}
		if prov.err != nil {
			bad := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
			for k, v := range b.rules.Policies {
				bad.Policies[k+badCustomSuffix] = v
			}
			out = append(out, authzBuilt{rules: bad, custom: true})
			continue
		}
		if forTCP && prov.tcp == nil {
			continue
		}
		out = append(out, authzBuilt{shadow: b.rules, ext: &prov})
	}
	return out
}

// authzHTTPFilters returns the envoy.filters.http.rbac (and ext_authz)
// filters for an inbound or gateway HCM on lp, the CUSTOM ones apart (they
// precede jwt_authn); nil when no AuthorizationPolicy applies: everything is
// allowed.
func (g *gen) authzHTTPFilters(lp listenPorts) (custom, rest []*hcmv3.HttpFilter) {
	for _, b := range g.authzSets(false, lp) {
		rbac := func(cfg *rbachttpv3.RBAC) *hcmv3.HttpFilter {
			return &hcmv3.HttpFilter{Name: filterRBACHTTP, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
		}
		switch {
		case b.ext != nil:
			custom = append(custom, rbac(&rbachttpv3.RBAC{ShadowRules: b.shadow, ShadowRulesStatPrefix: extAuthzShadowPrefix}),
				&hcmv3.HttpFilter{Name: filterExtAuthzHTTP, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(b.ext.http)}})
		case b.custom:
			custom = append(custom, rbac(&rbachttpv3.RBAC{Rules: b.rules, RulesStatPrefix: customNotConfiguredPrefix}))
		default:
			rest = append(rest, rbac(&rbachttpv3.RBAC{Rules: b.rules, ShadowRules: b.shadow, ShadowRulesStatPrefix: shadowPrefix(b.shadow)}))
		}
	}
	return custom, rest
}

// authzNetworkFilters returns the envoy.filters.network.rbac (and
// ext_authz) filters that precede tcp_proxy on the inbound TCP filter chain
// on lp.
func (g *gen) authzNetworkFilters(lp listenPorts) []*listenerv3.Filter {
	var fs []*listenerv3.Filter
	for _, b := range g.authzSets(true, lp) {
		prefix := rbacTCPStatPrefix
		if b.custom {
			prefix += customNotConfiguredPrefix
		}
		cfg := &rbacnetv3.RBAC{Rules: b.rules, ShadowRules: b.shadow, ShadowRulesStatPrefix: shadowPrefix(b.shadow), StatPrefix: prefix}
		if b.ext != nil {
			cfg.ShadowRulesStatPrefix = extAuthzShadowPrefix
		}
		fs = append(fs, &listenerv3.Filter{Name: filterRBACNet, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(cfg)}})
		if b.ext != nil {
			fs = append(fs, &listenerv3.Filter{Name: filterExtAuthzNet, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(b.ext.tcp)}})
		}
	}
	return fs
}

func shadowPrefix(shadow *rbacv3.RBAC) string {
	if shadow == nil {
		return ""
	}
	switch shadow.GetAction() {
	case rbacv3.RBAC_ALLOW:
		return rbacDryRunAllowPrefix
	case rbacv3.RBAC_DENY:
		return rbacDryRunDenyPrefix
	}
	return ""
}

// buildRBAC turns the policies of one action into enforced and dry-run rule
// sets. Policy names are Istio's "ns[NS]-policy[NAME]-rule[I]". A policy with
// no rules yields one policy that never matches (so an ALLOW {} denies all).
// A rule that cannot be generated (an HTTP-only field of an ALLOW rule on a
// TCP chain) is left out, which makes the ALLOW narrower.
func buildRBAC(policies []*model.AuthorizationPolicy, action rbacv3.RBAC_Action, forTCP, custom bool, tds trustDomains) authzBuilt {
	var out authzBuilt
	for _, p := range policies {
		set := &out.rules
		if p.DryRun {
			set = &out.shadow
		}
		if *set == nil {
			*set = &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
		}
		name := func(i int) string {
			n := fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", p.Namespace, p.Name, i)
			if custom {
				n = extAuthzPrefix + "-" + p.Spec.GetProvider().GetName() + "-" + n
			}
			return n
		}
		rules := p.Spec.GetRules()
		if len(rules) == 0 {
			(*set).Policies[name(0)] = policyMatchNever()
			continue
		}
		for i, r := range rules {
			if r == nil {
				continue
			}
			pol, err := rulePolicy(p.Namespace, r, forTCP, action, tds)
			if err != nil {
				continue // see above: the rule is dropped
			}
			(*set).Policies[name(i)] = pol
		}
	}
	return out
}

// policyMatchNever matches no request: any permission, no principal.
func policyMatchNever() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{
			NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}},
	}
}

// securityFilters are the HTTP filters an inbound or gateway HCM on lp
// carries first, in Istio's order: the CUSTOM filters (RBAC and ext_authz),
// jwt_authn (when a RequestAuthentication applies), then the AUDIT, DENY and
// ALLOW RBAC filters.
func (g *gen) securityFilters(lp listenPorts) []*hcmv3.HttpFilter {
	fs, rest := g.authzHTTPFilters(lp)
	if f := g.jwtFilter(); f != nil {
		fs = append(fs, f)
	}
	return append(fs, rest...)
}
