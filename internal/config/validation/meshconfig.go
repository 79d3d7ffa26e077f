package validation

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/config"
	bltelemetry "github.com/bowline-mesh/bowline/internal/telemetry"
)

// validateMeshConfig applies istiod's mesh config checks (extension
// providers, sampling, trust domain, root namespace) to the MeshConfig of a
// ConfigMap `istio` or a --mesh-config file, and warns about providers
// Bowline does not implement.
func validateMeshConfig(obj *config.Object) []config.FieldError {
	mc := config.MeshConfigOf(obj)
	if mc == nil {
		return []config.FieldError{{Path: config.MeshConfigPath(obj, ""), Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	path := func(field string) string { return config.MeshConfigPath(obj, field) }
	names := map[string]bool{}
	for i, p := range mc.GetExtensionProviders() {
		pp := path(indexPath("extensionProviders", i))
		switch {
		case p.GetName() == "":
			r.errorf(pp+".name", "required")
		case names[p.GetName()]:
			r.errorf(pp+".name", "duplicate extension provider name %q", p.GetName())
		}
		names[p.GetName()] = true
		meshCheckProvider(r, pp, p)
	}
	if s := mc.GetDefaultConfig().GetTracing().GetSampling(); s < 0 || s > 100 {
		r.errorf(path("defaultConfig.tracing.sampling"), "must be between 0 and 100, got %v", s)
	}
	if t := mc.GetDefaultConfig().GetTracing(); t != nil && t.GetTracer() != nil {
		r.warnf(path("defaultConfig.tracing"), "the legacy tracer settings (zipkin, lightstep, datadog, stackdriver, openCensusAgent) are not used by Bowline; configure an extensionProviders entry and defaultProviders.tracing or a Telemetry resource")
	}
	dp := mc.GetDefaultProviders()
	for kind, list := range map[string][]string{"tracing": dp.GetTracing(), "metrics": dp.GetMetrics(), "accessLogging": dp.GetAccessLogging()} {
		for i, n := range list {
			if !names[n] {
				r.errorf(path(indexPath("defaultProviders."+kind, i)), "unknown extension provider %q (defined: %s)", n, providerNames(mc))
			}
		}
	}
	if td := mc.GetTrustDomain(); td != "" {
		if msg := fqdnProblem(td); msg != "" {
			r.errorf(path("trustDomain"), "%s", msg)
		}
	}
	if ns := mc.GetRootNamespace(); ns != "" && !isDNSLabel(ns) {
		r.errorf(path("rootNamespace"), "%q is not a valid namespace name", ns)
	}
	if f := mc.GetAccessLogFormat(); f != "" && mc.GetAccessLogEncoding() == meshv1alpha1.MeshConfig_JSON && !strings.HasPrefix(strings.TrimSpace(f), "{") {
		r.errorf(path("accessLogFormat"), "with accessLogEncoding JSON the format must be a JSON object of fields to command operators")
	}
	return r.list
}

func providerNames(mc *meshv1alpha1.MeshConfig) string {
	var out []string
	for _, p := range mc.GetExtensionProviders() {
		out = append(out, p.GetName())
	}
	return strings.Join(out, ", ")
}

// meshCheckProvider checks the service and port of providers that send to a
// service, and warns about kinds Bowline does not implement.
func meshCheckProvider(r *fieldErrors, pp string, p *meshv1alpha1.MeshConfig_ExtensionProvider) {
	service := func(kind, svc string, port uint32) {
		if svc == "" {
			r.errorf(pp+"."+kind+".service", "required")
		} else {
			host := svc
			if _, h, ok := strings.Cut(svc, "/"); ok {
				host = h
			}
			if msg := fqdnProblem(host); msg != "" && !isIP(host) {
				r.errorf(pp+"."+kind+".service", "%s", msg)
			}
		}
		if port == 0 || port > 65535 {
			r.errorf(pp+"."+kind+".port", "must be between 1 and 65535, got %d", port)
		}
	}
	unsupported := func(kind string) {
		r.warnf(pp+"."+kind, "the %s provider is not implemented by Bowline; it is ignored", kind)
	}
	switch v := p.GetProvider().(type) {
	case nil:
		r.errorf(pp, "one provider kind is required (opentelemetry, zipkin, envoyFileAccessLog, prometheus, envoyExtAuthzHttp, envoyExtAuthzGrpc, ...)")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry:
		service("opentelemetry", v.Opentelemetry.GetService(), v.Opentelemetry.GetPort())
		if h := v.Opentelemetry.GetHttp(); h != nil && h.GetPath() != "" && !strings.HasPrefix(h.GetPath(), "/") {
			r.errorf(pp+".opentelemetry.http.path", "must start with '/'")
		}
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin:
		service("zipkin", v.Zipkin.GetService(), v.Zipkin.GetPort())
		if v.Zipkin.GetPath() != "" && !strings.HasPrefix(v.Zipkin.GetPath(), "/") {
			r.errorf(pp+".zipkin.path", "must start with '/'")
		}
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
		h := v.EnvoyExtAuthzHttp
		service("envoyExtAuthzHttp", h.GetService(), h.GetPort())
		kp := pp + ".envoyExtAuthzHttp"
		meshCheckStatusOnError(r, kp+".statusOnError", h.GetStatusOnError())
		if p := h.GetPathPrefix(); p != "" && !strings.HasPrefix(p, "/") {
			r.errorf(kp+".pathPrefix", "must begin with '/', got %q", p)
		}
		for _, l := range []struct {
			field string
			names []string
		}{
			{"includeRequestHeadersInCheck", h.GetIncludeRequestHeadersInCheck()},
			{"includeHeadersInCheck", h.GetIncludeHeadersInCheck()}, //nolint:staticcheck // still read when set
			{"headersToUpstreamOnAllow", h.GetHeadersToUpstreamOnAllow()},
			{"headersToDownstreamOnDeny", h.GetHeadersToDownstreamOnDeny()},
			{"headersToDownstreamOnAllow", h.GetHeadersToDownstreamOnAllow()},
		} {
			for i, name := range l.names {
				if name == "*" {
					r.errorf(indexPath(kp+"."+l.field, i), "a single wildcard (\"*\") is not supported, change it to either prefix or suffix match")
				}
			}
		}
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
		service("envoyExtAuthzGrpc", v.EnvoyExtAuthzGrpc.GetService(), v.EnvoyExtAuthzGrpc.GetPort())
		meshCheckStatusOnError(r, pp+".envoyExtAuthzGrpc.statusOnError", v.EnvoyExtAuthzGrpc.GetStatusOnError())
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus:
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog:
		if lf := v.EnvoyFileAccessLog.GetLogFormat(); lf != nil && lf.GetText() != "" && lf.GetLabels() != nil {
			r.errorf(pp+".envoyFileAccessLog.logFormat", "only one of text and labels may be set")
		} else if lf != nil {
			if _, err := bltelemetry.ParseLogFormat(lf.GetText()); err != nil {
				r.errorf(pp+".envoyFileAccessLog.logFormat.text", "%v", err)
			}
			for _, k := range sortedMapKeys(lf.GetLabels().GetFields()) {
				sv, ok := lf.GetLabels().GetFields()[k].GetKind().(*structpb.Value_StringValue)
				if !ok {
					r.errorf(pp+".envoyFileAccessLog.logFormat.labels."+k, "must be a string of Envoy command operators")
				} else if _, err := bltelemetry.ParseLogFormat(sv.StringValue); err != nil {
					r.errorf(pp+".envoyFileAccessLog.logFormat.labels."+k, "%v", err)
				}
			}
		}
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Datadog:
		service("datadog", v.Datadog.GetService(), v.Datadog.GetPort())
		unsupported("datadog")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Lightstep:
		service("lightstep", v.Lightstep.GetService(), v.Lightstep.GetPort())
		unsupported("lightstep")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Skywalking:
		service("skywalking", v.Skywalking.GetService(), v.Skywalking.GetPort())
		unsupported("skywalking")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Opencensus:
		service("opencensus", v.Opencensus.GetService(), v.Opencensus.GetPort())
		unsupported("opencensus")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyHttpAls:
		service("envoyHttpAls", v.EnvoyHttpAls.GetService(), v.EnvoyHttpAls.GetPort())
		unsupported("envoyHttpAls")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyTcpAls:
		service("envoyTcpAls", v.EnvoyTcpAls.GetService(), v.EnvoyTcpAls.GetPort())
		unsupported("envoyTcpAls")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyOtelAls:
		service("envoyOtelAls", v.EnvoyOtelAls.GetService(), v.EnvoyOtelAls.GetPort())
		unsupported("envoyOtelAls")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Stackdriver:
		unsupported("stackdriver")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Sds:
		unsupported("sds")
	}
}

// meshCheckStatusOnError checks an ext_authz provider's statusOnError: an
// HTTP status code as a string ("" keeps 403).
func meshCheckStatusOnError(r *fieldErrors, path, s string) {
	if s == "" {
		return
	}
	code, err := strconv.Atoi(s)
	if err != nil || code < 100 || code > 599 {
		r.errorf(path, "must be an HTTP status code such as \"503\", got %q", s)
	}
}
