package authz

import (
	"strings"
	"testing"
)

// istioDefault is what Bowline's inbound listeners configure.
var istioDefault = PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}

func TestNormalizePath(t *testing.T) {
	cases := []struct {
		in, want string
		o        PathOptions
	}{
		{"/admin", "/admin", istioDefault},
		{"/admin/../admin", "/admin", istioDefault},
		{"/public/../admin", "/admin", istioDefault},
		{"/./admin", "/admin", istioDefault},
		{"//admin", "/admin", istioDefault},
		{"///admin//x", "/admin/x", istioDefault},
		{"/%2e%2e/admin", "/admin", istioDefault},
		{"/%2E%2E/%2e/admin", "/admin", istioDefault},
		{"/public/%2e%2e/admin", "/admin", istioDefault},
		{"/%61dmin", "/admin", istioDefault},
		{"/ADMIN", "/ADMIN", istioDefault}, // paths are case-sensitive
		{"/admin?x=1", "/admin?x=1", istioDefault},
		{"/a/../admin?q=/../x", "/admin?q=/../x", istioDefault},
		{"/admin#frag", "/admin", istioDefault},
		{"/admin;x", "/admin;x", istioDefault},
		{"/public%2F..%2Fadmin", "/admin", istioDefault},
		{"/%2Fadmin", "/admin", istioDefault},
		{`/public\..\admin`, "/admin", istioDefault},
		{"/public%5C..%5Cadmin", "/admin", istioDefault},
		{"/a%2fb", "/a/b", istioDefault},
		{"/a%3fb", "/a%3Fb", istioDefault},
		{"/a%zz", "/a%25zz", istioDefault},
		{"/..", "/", istioDefault},
		{"/a/b/..", "/a/", istioDefault},
		{"/a/.", "/a/", istioDefault},
		{"", "/", istioDefault},
		{"admin", "/admin", istioDefault},
		// Options off: only the fragment goes and the leading slash is ensured.
		{"//a/../b%2F", "//a/../b%2F", PathOptions{}},
		{"/a%2Fb", "/a%2Fb", PathOptions{Normalize: true}},
		{"//a", "//a", PathOptions{Normalize: true}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, _, err := NormalizePath(tc.in, tc.o)
			if err != nil || got != tc.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNormalizePathEscapedSlashActions(t *testing.T) {
	if _, _, err := NormalizePath("/a%2Fb", PathOptions{EscapedSlashes: RejectEscapedSlashes}); err != ErrEscapedSlash {
		t.Fatalf("reject: got %v, want ErrEscapedSlash", err)
	}
	got, redirect, err := NormalizePath("/a%5cb", PathOptions{Normalize: true, EscapedSlashes: UnescapeAndRedirect})
	if err != nil || !redirect || got != "/a/b" {
		t.Fatalf("redirect: got %q, %v, %v", got, redirect, err)
	}
	if _, redirect, _ := NormalizePath("/a/b", PathOptions{EscapedSlashes: UnescapeAndRedirect}); redirect {
		t.Fatal("redirect without escaped slash")
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/admin/../admin", "//admin", "/%2e%2e/admin", "/a%2F%5C%2f", `\\a\..\b`, "/a?b#c", "%", "/%2%46", "/.%2e/", "?", "#", "/a/./b/../../c/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, o := range []PathOptions{istioDefault, {Normalize: true}, {MergeSlashes: true}, {}, {Normalize: true, EscapedSlashes: UnescapeAndRedirect}} {
			out, _, err := NormalizePath(in, o)
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			if !strings.HasPrefix(out, "/") {
				t.Fatalf("%q -> %q: no leading slash", in, out)
			}
			again, _, err := NormalizePath(out, o)
			if err != nil || again != out {
				t.Fatalf("%+v not idempotent: %q -> %q -> %q", o, in, out, again)
			}
			if o == istioDefault {
				p := out
				if i := strings.IndexByte(p, '?'); i >= 0 {
					p = p[:i]
				}
				if strings.Contains(p, "//") || strings.Contains(p, "/../") || strings.Contains(p, "/./") || strings.HasSuffix(p, "/..") || strings.Contains(p, `\`) || hasEscapedSlash(p) {
					t.Fatalf("%q -> %q still has a bypass shape", in, out)
				}
			}
		}
	})
}
