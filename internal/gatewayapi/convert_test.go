package gatewayapi

import (
	"regexp"
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestCORSWildcardOrigins(t *testing.T) {
	p := cors(&gwv1.HTTPCORSFilter{AllowOrigins: []gwv1.CORSOrigin{"https://www.foo.com", "https://*.bar.com", "*"}})
	if got := p.AllowOrigins[0].GetExact(); got != "https://www.foo.com" {
		t.Errorf("an origin without a wildcard: exact %q", got)
	}
	re, err := regexp.Compile("^(?:" + p.AllowOrigins[1].GetRegex() + ")$")
	if err != nil {
		t.Fatalf("https://*.bar.com: regex %q: %v", p.AllowOrigins[1].GetRegex(), err)
	}
	for origin, want := range map[string]bool{
		"https://www.bar.com": true, "https://a.b.bar.com": true,
		"https://bar.com": false, "http://www.bar.com": false, "https://www.bar.com.evil.org": false, "https://evilbar.com": false,
	} {
		if re.MatchString(origin) != want {
			t.Errorf("https://*.bar.com matches %s: %v, want %v", origin, !want, want)
		}
	}
	if p.AllowOrigins[2].GetRegex() != ".*" {
		t.Errorf(`"*": %v, want any origin`, p.AllowOrigins[2])
	}
}
