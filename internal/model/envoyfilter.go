package model

import (
	"cmp"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/envoypatch"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Labels Istio gives the pods of a Gateway API gateway, which an
// EnvoyFilter's targetRefs select by.
const (
	labelGatewayName = "gateway.networking.k8s.io/gateway-name"
	gatewayAPIGroup  = "gateway.networking.k8s.io"
)

// EnvoyFilter is a validated EnvoyFilter with its patch values converted to
// Envoy protos (envoypatch.Value).
type EnvoyFilter struct {
	Name, Namespace string
	Priority        int32
	// Created is metadata.creationTimestamp (RFC 3339, sorts as a string; ""
	// for files).
	Created  string
	Selector map[string]string
	// Targets are the spec.targetRefs; with them the filter applies only to
	// the gateways they name.
	Targets []targetRef
	Patches []*EnvoyPatch
	// RateLimit marks the EnvoyFilter a RateLimit stands for
	// (RateLimitEnvoyFilter): it applies before every user EnvoyFilter, so
	// those can still adjust what it patched in.
	RateLimit bool
}

type targetRef struct{ group, kind, name, namespace string }

// EnvoyPatch is one configPatches entry.
type EnvoyPatch struct {
	ApplyTo networking.EnvoyFilter_ApplyTo
	// Match is never nil: an absent match is context ANY.
	Match     *networking.EnvoyFilter_EnvoyConfigObjectMatch
	Operation networking.EnvoyFilter_Patch_Operation
	// Value is the Envoy message of ApplyTo (nil for REMOVE). Shared: clone
	// before it goes into a resource.
	Value proto.Message
	// From is "namespace/name" of the EnvoyFilter, for messages.
	From string
}

// EnvoyPatches are the patches that apply to one proxy, by applyTo, in the
// order Istio applies them.
type EnvoyPatches map[networking.EnvoyFilter_ApplyTo][]*EnvoyPatch

// newEnvoyFilter converts an EnvoyFilter; a patch whose value does not
// convert (validation reports it) is left out and named in the problem.
func newEnvoyFilter(o *config.Object, spec *networking.EnvoyFilter) (*EnvoyFilter, []string) {
	ef := &EnvoyFilter{Name: o.Meta.Name, Namespace: o.Meta.Namespace, Priority: spec.GetPriority(),
		Created: o.Meta.CreationTimestamp, Selector: spec.GetWorkloadSelector().GetLabels()}
	for _, r := range spec.GetTargetRefs() {
		ns := r.GetNamespace()
		if ns == "" {
			ns = o.Meta.Namespace
		}
		ef.Targets = append(ef.Targets, targetRef{group: r.GetGroup(), kind: r.GetKind(), name: r.GetName(), namespace: ns})
	}
	var problems []string
	for i, cp := range spec.GetConfigPatches() {
		if cp.GetPatch() == nil {
			continue
		}
		v, err := envoypatch.Value(cp.GetApplyTo(), cp.GetPatch().GetValue())
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: spec.configPatches[%d].patch.value: %v", o.Ref(), i, err))
			continue
		}
		p := &EnvoyPatch{ApplyTo: cp.GetApplyTo(), Match: cp.GetMatch(), Operation: cp.GetPatch().GetOperation(),
			Value: v, From: o.Meta.Namespace + "/" + o.Meta.Name}
		if p.Match == nil {
			p.Match = &networking.EnvoyFilter_EnvoyConfigObjectMatch{Context: networking.EnvoyFilter_ANY}
		}
		// Istio: the insert operations only place filters and routes; on
		// anything else they are ADD.
		switch p.Operation {
		case networking.EnvoyFilter_Patch_INSERT_BEFORE, networking.EnvoyFilter_Patch_INSERT_AFTER, networking.EnvoyFilter_Patch_INSERT_FIRST:
			switch p.ApplyTo {
			case networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_ROUTE,
				networking.EnvoyFilter_LISTENER_FILTER:
			default:
				p.Operation = networking.EnvoyFilter_Patch_ADD
			}
		}
		ef.Patches = append(ef.Patches, p)
	}
	return ef, problems
}

// attaches reports whether ef applies to p by Istio's rules: it lives in
// the root namespace (any proxy) or p's namespace; targetRefs select
// gateways by name (never sidecars); otherwise the workload selector, when
// set, must match p's labels.
func (s *Snapshot) attaches(ef *EnvoyFilter, p *Proxy) bool {
	if ef.Namespace != s.rootNamespace && ef.Namespace != p.Namespace {
		return false
	}
	if len(ef.Targets) > 0 {
		if p.Type != Router {
			return false
		}
		for _, t := range ef.Targets {
			if t.group == gatewayAPIGroup && t.kind == "Gateway" && t.namespace == p.Namespace && p.Labels[labelGatewayName] == t.name {
				return true
			}
		}
		return false
	}
	return ef.Selector == nil || registry.LabelsMatch(ef.Selector, p.Labels)
}

// EnvoyFiltersFor returns the patches of the EnvoyFilters that apply to p
// (nil when none does): those RateLimits stand for first, then ordered as
// Istio orders them: by priority, then the root namespace's before the
// workload namespace's, then by creation time, then by name. A patch matching on match.proxy never applies: Bowline's
// proxies report no Istio version or metadata to match.
func (s *Snapshot) EnvoyFiltersFor(p *Proxy) EnvoyPatches {
	var matched []*EnvoyFilter
	for _, ef := range s.envoyFilters {
		if s.attaches(ef, p) {
			matched = append(matched, ef)
		}
	}
	if len(matched) == 0 {
		return nil
	}
	slices.SortStableFunc(matched, func(a, b *EnvoyFilter) int {
		if a.RateLimit != b.RateLimit {
			if a.RateLimit {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		if a.Namespace != b.Namespace && (a.Namespace == s.rootNamespace || b.Namespace == s.rootNamespace) {
			if a.Namespace == s.rootNamespace {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.Created, b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.Name+"."+a.Namespace, b.Name+"."+b.Namespace)
	})
	out := EnvoyPatches{}
	for _, ef := range matched {
		for _, cp := range ef.Patches {
			if cp.Match.GetProxy() != nil && (cp.Match.GetProxy().GetProxyVersion() != "" || len(cp.Match.GetProxy().GetMetadata()) > 0) {
				continue
			}
			out[cp.ApplyTo] = append(out[cp.ApplyTo], cp)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
