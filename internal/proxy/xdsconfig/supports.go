package xdsconfig

import (
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/config/envoypatch"
)

// Supports reports whether the proxy runs an extension of kind whose config
// has type typeURL (named name): the question `bowline analyze` asks of the
// extensions an EnvoyFilter patches in. It answers with the checks that
// NACK a config, so the two cannot disagree.
func Supports(kind envoypatch.Kind, name, typeURL string) bool {
	switch kind {
	case envoypatch.HTTPFilter:
		_, ok, _ := unmarshalHTTPFilterConfig(&anypb.Any{TypeUrl: typeURL}, "")
		return ok
	case envoypatch.NetworkFilter:
		return typeURL == typeHCM || typeURL == typeTCPProxy || typeURL == typeRBACNetwork || typeURL == typeExtAuthzNetwork
	case envoypatch.ListenerFilter:
		return listenerFilterSupported(name)
	case envoypatch.PerFilterConfig:
		switch {
		case typeURL == typeFault, name == filterCORS:
			return true
		}
		_, err := unmarshalPerFilter(name, &anypb.Any{TypeUrl: typeURL}, "")
		return !isUnsupported(err)
	}
	return false
}
