package server

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/bowline-mesh/bowline/internal/model"
)

func TestParseNodeInterceptionMode(t *testing.T) {
	const id = "sidecar~10.250.0.2~reviews-v1.default~default.svc.cluster.local"
	for _, tc := range []struct {
		mode    any
		want    model.InterceptionMode
		wantErr string
	}{
		{mode: nil, want: ""},
		{mode: "REDIRECT", want: model.InterceptionRedirect},
		{mode: "NONE", want: model.InterceptionNone},
		{mode: "TPROXY", wantErr: `invalid node metadata.INTERCEPTION_MODE: "TPROXY": want REDIRECT or NONE`},
		{mode: 1.0, wantErr: "invalid node metadata.INTERCEPTION_MODE: must be a string"},
	} {
		md := map[string]any{}
		if tc.mode != nil {
			md["INTERCEPTION_MODE"] = tc.mode
		}
		p, err := ParseNode(&core.Node{Id: id, Metadata: mustStruct(t, md)})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("mode %v: error %v, want %q", tc.mode, err, tc.wantErr)
			}
			continue
		}
		if err != nil || p.InterceptionMode != tc.want {
			t.Errorf("mode %v: got %+v, %v; want %q", tc.mode, p, err, tc.want)
		}
	}
}
