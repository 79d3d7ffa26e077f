// Package model owns the control plane's immutable mesh snapshot: validated
// configuration plus the service registry, resolved with Istio's rules (host
// names, exportTo, Sidecar scoping, DestinationRule merging, delegation), and
// the Proxy type describing a connected xDS client.
//
// It must not import xds, proxy, cli or any transport package.
package model
