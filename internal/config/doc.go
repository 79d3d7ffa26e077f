// Package config owns how Istio configuration enters Bowline: reading YAML/JSON
// from files, directories and stdin, decoding each document into the typed
// istio.io/api messages with a strict schema check (unknown fields are errors),
// keeping the source position of every field for error messages, and the
// versioned config store that later stages subscribe to.
//
// It must not import the model, xds, proxy or cli packages.
package config
