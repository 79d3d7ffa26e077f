package validation

import (
	"fmt"
	"regexp"
	"strings"

	networkingbeta "istio.io/api/networking/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// proxyConfigImageTypes are the proxy image variants Istio publishes.
var proxyConfigImageTypes = map[string]bool{"default": true, "debug": true, "distroless": true}

// proxyConfigEnvNameRE is a portable environment variable name.
var proxyConfigEnvNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateProxyConfig applies Istio's rules for ProxyConfig: selector,
// non-negative concurrency, environment variables and image type.
func validateProxyConfig(obj *config.Object) []config.FieldError {
	pc, ok := obj.Spec.(*networkingbeta.ProxyConfig)
	if !ok {
		return []config.FieldError{{Path: "spec", Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	secCheckDryRun(r, obj)
	secCheckSelector(r, "spec.selector", pc.GetSelector())
	if c := pc.GetConcurrency(); c != nil && c.GetValue() < 0 {
		r.errorf("spec.concurrency", "must be 0 (one worker per CPU) or more, got %d", c.GetValue())
	}
	for _, name := range sortedMapKeys(pc.GetEnvironmentVariables()) {
		path := keyPath("spec.environmentVariables", name)
		value := pc.GetEnvironmentVariables()[name]
		switch {
		case name == "":
			r.errorf(path, "environment variable name must not be empty")
		case strings.Contains(name, "="):
			r.errorf(path, "environment variable name %q must not contain '='", name)
		case !proxyConfigEnvNameRE.MatchString(name):
			r.warnf(path, "environment variable name %q is not portable (letters, digits and '_', not starting with a digit)", name)
		}
		if len(value) > 2048 {
			r.errorf(path, "value must be at most 2048 characters, got %d", len(value))
		}
	}
	if t := pc.GetImage().GetImageType(); t != "" && !proxyConfigImageTypes[t] {
		r.warnf("spec.image.imageType", "%q is not an image type Istio publishes (default, debug, distroless); it must exist in the configured hub", t)
	}
	return r.list
}
