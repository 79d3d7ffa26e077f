package ratelimit

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func d(kv ...string) Descriptor {
	var out Descriptor
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, xdsconfig.DescriptorEntry{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// TestLocalSample is Istio's local rate limit sample: 100 per minute for
// everything, 10 per minute for requests with the productpage descriptor,
// which also take from the default bucket; buckets refill per interval.
func TestLocalSample(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	cfg := &xdsconfig.LocalRateLimit{Key: "k", AlwaysConsumeDefault: true,
		Bucket: &xdsconfig.TokenBucket{MaxTokens: 100, TokensPerFill: 100, FillInterval: time.Minute},
		Descriptors: []xdsconfig.LocalDescriptor{{Entries: d("header_match", "productpage"),
			Bucket: xdsconfig.TokenBucket{MaxTokens: 10, TokensPerFill: 10, FillInterval: time.Minute}}}}
	ls := NewLimiters(clk.now)
	l := ls.For(cfg)
	product := []Descriptor{d("remote_address", "10.0.0.1"), d("header_match", "productpage")}
	var got []string
	for i := 0; i < 11; i++ {
		dec := l.Allow(clk.now(), product)
		got = append(got, fmt.Sprintf("%v/%d", dec.Limited, dec.Remaining))
	}
	want := "false/9 false/8 false/7 false/6 false/5 false/4 false/3 false/2 false/1 false/0 true/0"
	if strings.Join(got, " ") != want {
		t.Fatalf("productpage: got %s, want %s", strings.Join(got, " "), want)
	}
	// The default bucket gave 10 tokens to productpage requests (not to the
	// limited one): 90 left for the rest.
	other := []Descriptor{d("remote_address", "10.0.0.1")}
	for i := 0; i < 90; i++ {
		if dec := l.Allow(clk.now(), other); dec.Limited {
			t.Fatalf("request %d limited, want 90 through", i)
		}
	}
	if dec := l.Allow(clk.now(), other); !dec.Limited || dec.Limit != 100 {
		t.Fatalf("the 91st: %+v, want limited by the 100-token bucket", dec)
	}
	clk.t = clk.t.Add(59 * time.Second)
	if dec := l.Allow(clk.now(), product); !dec.Limited || dec.Reset != time.Second {
		t.Fatalf("before the refill: %+v, want limited, reset in 1s", dec)
	}
	clk.t = clk.t.Add(time.Second)
	if dec := l.Allow(clk.now(), product); dec.Limited || dec.Remaining != 9 {
		t.Fatalf("after the refill: %+v, want allowed with 9 left", dec)
	}
	if ls.For(&xdsconfig.LocalRateLimit{Key: "k"}) != l {
		t.Error("a config with the same key got new buckets")
	}
}

func TestLocalWithoutDefaultBucket(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	l := NewLocal(&xdsconfig.LocalRateLimit{Descriptors: []xdsconfig.LocalDescriptor{{Entries: d("k", "v"),
		Bucket: xdsconfig.TokenBucket{MaxTokens: 1, TokensPerFill: 1, FillInterval: time.Second}}}}, clk.now())
	if dec := l.Allow(clk.now(), nil); dec.Limited || dec.Bucketed {
		t.Fatalf("no descriptor, no default bucket: %+v, want through", dec)
	}
	if dec := l.Allow(clk.now(), []Descriptor{d("k", "v")}); dec.Limited {
		t.Fatal("first k=v limited")
	}
	if dec := l.Allow(clk.now(), []Descriptor{d("k", "v")}); !dec.Limited {
		t.Fatal("second k=v not limited")
	}
}

type fakeRequest map[string]string

func (r fakeRequest) Header(n string) (string, bool) { v, ok := r[n]; return v, ok }
func (r fakeRequest) MatchHeaders(hms []xdsconfig.HeaderMatcher) bool {
	for _, hm := range hms {
		if !hm.String.Match(r[hm.Name]) {
			return false
		}
	}
	return true
}
func (r fakeRequest) RemoteAddress() string      { return r["remote"] }
func (r fakeRequest) SourceCluster() string      { return "productpage.default" }
func (r fakeRequest) DestinationCluster() string { return "inbound|9080||" }

func TestDescriptors(t *testing.T) {
	prefix := &xdsconfig.StringMatcher{Kind: xdsconfig.MatchPrefix, Value: "/productpage"}
	policies := []xdsconfig.RateLimitPolicy{
		{Actions: []xdsconfig.RateLimitAction{{Kind: xdsconfig.ActionRemoteAddress, Key: "remote_address"}}},
		{Actions: []xdsconfig.RateLimitAction{{Kind: xdsconfig.ActionHeaderValueMatch, Key: "header_match", Value: "productpage",
			ExpectMatch: true, Headers: []xdsconfig.HeaderMatcher{{Name: ":path", String: prefix}}}}},
		{Actions: []xdsconfig.RateLimitAction{{Kind: xdsconfig.ActionRequestHeaders, Key: "PATH", Header: ":path"},
			{Kind: xdsconfig.ActionRequestHeaders, Key: "USER", Header: "x-user", SkipIfAbsent: true},
			{Kind: xdsconfig.ActionGenericKey, Key: "generic_key", Value: "g"}}},
		{Actions: []xdsconfig.RateLimitAction{{Kind: xdsconfig.ActionRequestHeaders, Key: "TENANT", Header: "x-tenant"}}},
		{Stage: 1, Actions: []xdsconfig.RateLimitAction{{Kind: xdsconfig.ActionSourceCluster, Key: "source_cluster"}}},
	}
	got := fmt.Sprint(Descriptors(policies, 0, fakeRequest{":path": "/productpage", "remote": "10.0.0.1"}))
	want := "[[{remote_address 10.0.0.1}] [{header_match productpage}] [{PATH /productpage} {generic_key g}]]"
	if got != want {
		t.Errorf("stage 0:\n got %s\nwant %s", got, want)
	}
	got = fmt.Sprint(Descriptors(policies, 1, fakeRequest{":path": "/other"}))
	if want := "[[{source_cluster productpage.default}]]"; got != want {
		t.Errorf("stage 1: got %s, want %s", got, want)
	}
}

// TestInstall: each config snapshot's Install keeps the limiters (and
// tokens) of configs whose content stayed, gives new content full buckets
// and drops the limiters of configs no longer in force, so limiters do not
// pile up over config pushes.
func TestInstall(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	bucket := func(n uint32) *xdsconfig.TokenBucket {
		return &xdsconfig.TokenBucket{MaxTokens: n, TokensPerFill: n, FillInterval: time.Hour}
	}
	a := &xdsconfig.LocalRateLimit{Key: "a", Bucket: bucket(2)}
	b := &xdsconfig.LocalRateLimit{Key: "b", Bucket: bucket(5)}
	ls := NewLimiters(clk.now)
	first := ls.Install([]*xdsconfig.LocalRateLimit{a, b})
	if dec := first[a].Allow(clk.now(), nil); dec.Remaining != 1 {
		t.Fatalf("a: %+v, want 1 left", dec)
	}
	// The next snapshot has a's content again (a new config value) and c.
	a2 := &xdsconfig.LocalRateLimit{Key: "a", Bucket: bucket(2)}
	c := &xdsconfig.LocalRateLimit{Key: "c", Bucket: bucket(3)}
	second := ls.Install([]*xdsconfig.LocalRateLimit{a2, c})
	if second[a2] != first[a] {
		t.Error("a config of unchanged content lost its limiter")
	}
	if dec := second[a2].Allow(clk.now(), nil); dec.Remaining != 0 {
		t.Errorf("a after the push: %+v, want its last token taken", dec)
	}
	if ls.Len() != 2 {
		t.Errorf("%d limiters kept, want 2 (b dropped)", ls.Len())
	}
	// b comes back: full buckets, not the state it had.
	third := ls.Install([]*xdsconfig.LocalRateLimit{b})
	if third[b] == first[b] {
		t.Error("b came back with the limiter it had before it was dropped")
	}
	if ls.Len() != 1 {
		t.Errorf("%d limiters kept, want 1", ls.Len())
	}
	for i := range 1000 { // many pushes of changing content keep one limiter
		k := &xdsconfig.LocalRateLimit{Key: fmt.Sprint("gen", i), Bucket: bucket(1)}
		ls.Install([]*xdsconfig.LocalRateLimit{k})
	}
	if ls.Len() != 1 {
		t.Errorf("after 1000 pushes %d limiters kept, want 1", ls.Len())
	}
}
