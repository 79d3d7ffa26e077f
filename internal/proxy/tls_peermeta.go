package proxy

import (
	"encoding/base64"
	"encoding/json"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// Headers of the mesh identity data path.
const (
	// headerXFCC is Envoy's x-forwarded-client-cert (canonical form).
	headerXFCC = "X-Forwarded-Client-Cert"
	// headerPeerMetadata carries the calling proxy's workload metadata to a
	// mesh peer over mTLS: base64 of JSON peerMetadata. It is Bowline's
	// stand-in for Istio's istio-peer-exchange; the receiver strips it and
	// believes it only on an mTLS connection (the namespace always comes
	// from the verified SPIFFE ID).
	headerPeerMetadata = "X-Bowline-Peer-Metadata"
)

// peerMetadata is what a proxy tells mesh peers about its workload.
type peerMetadata struct {
	Workload string `json:"workload,omitempty"`
	App      string `json:"app,omitempty"`
	Version  string `json:"version,omitempty"`
}

func encodePeerMetadata(n xdsclient.NodeInfo) string {
	md := peerMetadata{Workload: n.Workload,
		App:     firstNonEmpty(n.Labels["app"], n.Labels["service.istio.io/canonical-name"]),
		Version: firstNonEmpty(n.Labels["version"], n.Labels["service.istio.io/canonical-revision"])}
	if md == (peerMetadata{}) {
		return ""
	}
	b, _ := json.Marshal(md)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePeerMetadata(v string) peerMetadata {
	var md peerMetadata
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) > 4096 {
		return md
	}
	_ = json.Unmarshal(b, &md)
	return md
}

// peerMetaCache is the last peer metadata header decoded on a connection.
type peerMetaCache struct {
	raw string
	md  peerMetadata
}

// peerMetadataOf decodes the peer metadata header of a request on the mTLS
// connection of pi; a peer proxy sends the same value on every request, so
// it is decoded once per connection (JSON decoding is reflection-heavy).
func (pi *peerInfo) peerMetadataOf(v string) peerMetadata {
	if c := pi.metaCache.Load(); c != nil && c.raw == v {
		return c.md
	}
	md := decodePeerMetadata(v)
	pi.metaCache.Store(&peerMetaCache{raw: v, md: md})
	return md
}
