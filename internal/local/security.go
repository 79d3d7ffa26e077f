package local

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Security is how `bowline up` gives every sidecar and the gateway a
// workload identity: the in-process CA serves on the xDS port; each proxy
// gets a bootstrap token for its namespace/service account in a 0600 file
// under the state directory (never on a command line) and talks xDS over
// mTLS with the certificate it obtains.
type Security struct {
	// RootCert is the PEM file proxies verify the CA (and control plane) with.
	RootCert string
	// WriteToken mints a token for namespace/serviceAccount and writes it to
	// path with mode 0600.
	WriteToken func(path, namespace, serviceAccount string) error
}

// proxyIdentity mints tokens once per identity and returns the proxy flags.
type proxyIdentity struct {
	mu    sync.Mutex
	files map[string]string // "ns/sa" -> token file
}

// securityArgs returns the proxy flags for namespace/sa: the CA flags, or
// --insecure-xds when up runs without a CA.
func (u *Up) securityArgs(namespace, sa string) ([]string, error) {
	sec := u.cfg.Security
	if sec == nil {
		return []string{"--insecure-xds"}, nil
	}
	u.ids.mu.Lock()
	defer u.ids.mu.Unlock()
	key := namespace + "/" + sa
	path, ok := u.ids.files[key]
	if !ok {
		dir := filepath.Join(u.cfg.StateDir, "tokens")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("token dir: %w", err)
		}
		path = filepath.Join(dir, namespace+"."+sa+".token")
		if err := sec.WriteToken(path, namespace, sa); err != nil {
			return nil, fmt.Errorf("token for %s: %w", key, err)
		}
		if u.cfg.Network != nil {
			// netns: the sidecar runs as uid/gid 1337, which may not be able to
			// enter the state directory: hand it a copy it owns.
			copied, err := u.cfg.Network.ProxyFile(path, namespace+"."+sa+".token", 0o600)
			if err != nil {
				return nil, fmt.Errorf("token for %s: %w", key, err)
			}
			path = copied
		}
		if u.ids.files == nil {
			u.ids.files = map[string]string{}
		}
		u.ids.files[key] = path
	}
	root := sec.RootCert
	if u.cfg.Network != nil {
		var err error
		if root, err = u.cfg.Network.ProxyFile(sec.RootCert, "root-cert.pem", 0o644); err != nil {
			return nil, err
		}
	}
	return []string{"--ca-address", u.state.ControlPlane.XDS, "--ca-root-cert", root, "--ca-token-file", path}, nil
}
