// Package analysis runs Istio's configuration analyzers ("istioctl analyze")
// over a set of loaded objects: cross-resource checks such as a
// VirtualService naming a subset no DestinationRule defines, a gateway that
// does not exist, or a DestinationRule whose TLS mode contradicts a
// PeerAuthentication. Every finding is a Message carrying Istio's own code
// (IST0101, ...), level and message template, located at the file and line of
// the field it is about.
//
// It imports only config, config/validation and the Istio API types; it must
// not import the model, registry, xds, proxy or cli packages.
package analysis
