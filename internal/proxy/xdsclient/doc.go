// Package xdsclient is the Bowline proxy's ADS client: it subscribes to
// listeners and clusters (wildcard) and to the routes and endpoints they name,
// over delta xDS (falling back to state-of-the-world when the server does not
// implement delta), validates every response with xdsconfig, hands the whole
// accepted state to the proxy, and ACKs or NACKs with the error text. It
// reconnects with exponential backoff and jitter; the proxy keeps serving its
// last good config meanwhile.
//
// It must not import the proxy's data path or the control plane (internal/xds).
package xdsclient
