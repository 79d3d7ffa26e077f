package local

import (
	"slices"
	"strings"
	"testing"
)

func TestServiceHosts(t *testing.T) {
	hosts := []serviceHost{
		{host: "reviews.default.svc.cluster.local", namespace: "default", addr: "240.240.84.44"},
		{host: "db.other.svc.cluster.local", namespace: "other", addr: "240.240.1.2"},
		{host: "api.example.com", namespace: "default", addr: "10.9.9.9"},
	}
	got := serviceHosts(hosts, "default", "cluster.local")
	byAddr := map[string][]string{}
	for _, e := range got {
		byAddr[e.Addr] = e.Names
	}
	if want := []string{"reviews.default.svc.cluster.local", "reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster"}; !slices.Equal(byAddr["240.240.84.44"], want) {
		t.Errorf("reviews names = %v, want %v", byAddr["240.240.84.44"], want)
	}
	// The bare name only resolves in the service's own namespace.
	if slices.Contains(byAddr["240.240.1.2"], "db") || !slices.Contains(byAddr["240.240.1.2"], "db.other") {
		t.Errorf("db names from namespace default = %v", byAddr["240.240.1.2"])
	}
	if !slices.Equal(byAddr["10.9.9.9"], []string{"api.example.com"}) {
		t.Errorf("external host names = %v", byAddr["10.9.9.9"])
	}
}

func TestPodCommand(t *testing.T) {
	p := &Pod{Netns: podNetnsName("reviews-v1-0", "default")}
	if p.Netns != "bowline-reviews-v1-0.default" {
		t.Errorf("netns name = %q", p.Netns)
	}
	_, args := p.Command("/bin/bowline", []string{"proxy", "--ip", "10.250.0.5"}, true)
	got := strings.Join(args, " ")
	for _, want := range []string{"netns exec bowline-reviews-v1-0.default ", "--reuid=1337 --regid=1337 --clear-groups --pdeathsig=TERM -- /bin/bowline proxy --ip 10.250.0.5"} {
		if !strings.Contains(got, want) {
			t.Errorf("sidecar command %q lacks %q", got, want)
		}
	}
	_, args = p.Command("/app", nil, false)
	if got := strings.Join(args, " "); got != "netns exec bowline-reviews-v1-0.default /app" {
		t.Errorf("app command = %q", got)
	}
}

func TestGuardRules(t *testing.T) {
	var got []string
	for _, r := range guardRules() {
		got = append(got, strings.Join(r, " "))
	}
	for _, want := range []string{"OUTPUT -d 10.250.0.0/16 -j BOWLINE-GUARD", "FORWARD -d 240.240.0.0/16 -j BOWLINE-GUARD", "FORWARD -s 10.250.0.0/16 -j BOWLINE-GUARD"} {
		if !slices.Contains(got, want) {
			t.Errorf("guard rules %v lack %q", got, want)
		}
	}
}
