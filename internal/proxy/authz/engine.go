package authz

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
)

// Action is what a rule set does with a request its policies match.
type Action int

// Actions, as envoy.config.rbac.v3.RBAC.Action.
const (
	Allow Action = iota // only matching requests pass
	Deny                // matching requests are refused
	Log                 // everything passes; matching requests are marked for the access log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return "LOG"
}

// Envoy's local reply for an RBAC denial.
const (
	// DeniedStatus and DeniedBody are the HTTP response Envoy sends.
	DeniedStatus = 403
	DeniedBody   = "RBAC: access denied"
)

// Engine is one compiled RBAC filter (HTTP or network): its enforced rules
// and its shadow (dry-run) rules. It is immutable and safe for concurrent use.
type Engine struct {
	rules, shadow *ruleSet
	// RulesStatPrefix and ShadowStatPrefix are the filter's stat prefixes
	// (rules_stat_prefix / shadow_rules_stat_prefix; stat_prefix for network).
	RulesStatPrefix, ShadowStatPrefix string
}

type ruleSet struct {
	action   Action
	policies []policy // sorted by name, Envoy's evaluation order
}

type policy struct {
	name        string
	permissions []*node
	principals  []*node
}

// Decision is the outcome of Evaluate.
type Decision struct {
	// Allowed is false when the enforced rules refuse the request.
	Allowed bool
	// Policy is the enforced policy that matched ("" when none did).
	Policy string
	// Logged is true when a LOG rule set matched (Envoy's access_log_hint).
	Logged bool
	// Shadow reports the dry-run rules: ShadowPolicy matched, and whether
	// they would have allowed the request. Both are zero without shadow rules.
	ShadowPolicy  string
	ShadowAllowed bool
	HasShadow     bool
}

// ResponseDetails is Envoy's response_code_details for a denial:
// rbac_access_denied_matched_policy[NAME or none], whitespace as "_".
func (d Decision) ResponseDetails() string {
	name := d.Policy
	if name == "" {
		name = "none"
	}
	return "rbac_access_denied_matched_policy[" + strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return '_'
		}
		return r
	}, name) + "]"
}

// NewHTTP compiles an envoy.filters.http.rbac config. The error names the
// unsupported or invalid field (a NACK reason).
func NewHTTP(cfg *rbachttpv3.RBAC) (*Engine, error) {
	if err := onlyFields(cfg, "", "rules", "shadow_rules", "shadow_rules_stat_prefix", "rules_stat_prefix"); err != nil {
		return nil, err
	}
	return newEngine(cfg.GetRules(), cfg.GetShadowRules(), cfg.GetRulesStatPrefix(), cfg.GetShadowRulesStatPrefix())
}

// NewNetwork compiles an envoy.filters.network.rbac config.
func NewNetwork(cfg *rbacnetv3.RBAC) (*Engine, error) {
	if err := onlyFields(cfg, "", "rules", "shadow_rules", "shadow_rules_stat_prefix", "stat_prefix", "enforcement_type"); err != nil {
		return nil, err
	}
	if cfg.GetEnforcementType() != rbacnetv3.RBAC_ONE_TIME_ON_FIRST_BYTE {
		return nil, fmt.Errorf("field enforcement_type: %s unsupported", cfg.GetEnforcementType())
	}
	return newEngine(cfg.GetRules(), cfg.GetShadowRules(), cfg.GetStatPrefix(), cfg.GetShadowRulesStatPrefix())
}

func newEngine(rules, shadow *rbacv3.RBAC, statPrefix, shadowPrefix string) (*Engine, error) {
	e := &Engine{RulesStatPrefix: statPrefix, ShadowStatPrefix: shadowPrefix}
	var err error
	if e.rules, err = compileRules(rules, "rules"); err != nil {
		return nil, err
	}
	if e.shadow, err = compileRules(shadow, "shadow_rules"); err != nil {
		return nil, err
	}
	return e, nil
}

func compileRules(r *rbacv3.RBAC, path string) (*ruleSet, error) {
	if r == nil {
		return nil, nil
	}
	if err := onlyFields(r, path, "action", "policies"); err != nil {
		return nil, err
	}
	rs := &ruleSet{}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		rs.action = Allow
	case rbacv3.RBAC_DENY:
		rs.action = Deny
	case rbacv3.RBAC_LOG:
		rs.action = Log
	default:
		return nil, fmt.Errorf("field %s.action: %s unsupported", path, r.GetAction())
	}
	for _, name := range slices.Sorted(maps.Keys(r.GetPolicies())) {
		p := r.GetPolicies()[name]
		pp := fmt.Sprintf("%s.policies[%q]", path, name)
		if err := onlyFields(p, pp, "permissions", "principals"); err != nil {
			return nil, err
		}
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("field %s: permissions and principals must not be empty", pp)
		}
		cp := policy{name: name}
		for i, perm := range p.GetPermissions() {
			n, err := compilePermission(perm, fmt.Sprintf("%s.permissions[%d]", pp, i))
			if err != nil {
				return nil, err
			}
			cp.permissions = append(cp.permissions, n)
		}
		for i, prin := range p.GetPrincipals() {
			n, err := compilePrincipal(prin, fmt.Sprintf("%s.principals[%d]", pp, i))
			if err != nil {
				return nil, err
			}
			cp.principals = append(cp.principals, n)
		}
		rs.policies = append(rs.policies, cp)
	}
	return rs, nil
}

// matched returns the first policy (by name) whose permissions and
// principals both match r.
func (rs *ruleSet) matched(r *Request) (string, bool) {
	for i := range rs.policies {
		p := &rs.policies[i]
		if anyMatch(p.permissions, r) && anyMatch(p.principals, r) {
			return p.name, true
		}
	}
	return "", false
}

func anyMatch(ns []*node, r *Request) bool {
	for _, n := range ns {
		if n.match(r) {
			return true
		}
	}
	return false
}

// decide applies the action: ALLOW passes only matches, DENY refuses
// matches, LOG passes everything.
func (rs *ruleSet) decide(r *Request) (allowed bool, name string, matched bool) {
	name, matched = rs.matched(r)
	switch rs.action {
	case Allow:
		return matched, name, matched
	case Deny:
		return !matched, name, matched
	}
	return true, name, matched
}

// Evaluate decides r. Without enforced rules everything is allowed.
func (e *Engine) Evaluate(r *Request) Decision {
	d := Decision{Allowed: true}
	if e.rules != nil {
		allowed, name, matched := e.rules.decide(r)
		d.Allowed, d.Policy = allowed, name
		d.Logged = e.rules.action == Log && matched
	}
	if e.shadow != nil {
		d.HasShadow = true
		d.ShadowAllowed, d.ShadowPolicy, _ = e.shadow.decide(r)
	}
	return d
}

// Action returns the enforced rules' action and whether there are any.
func (e *Engine) Action() (Action, bool) {
	if e.rules == nil {
		return Allow, false
	}
	return e.rules.action, true
}
