// Package identity is the workload side of Bowline's identity (Istio's
// istio-agent secret manager): it generates an ECDSA P-256 key in memory,
// requests an X.509 SVID from the CA over IstioCertificateService with the
// workload's bootstrap token, keeps the certificate, key and trust bundle in
// memory, rotates them at half their lifetime with jitter, retries with
// backoff while the current certificate stays in use, and serves them to the
// proxy through Current and tls.Config hooks that verify peers' SPIFFE IDs.
//
// It must not import the CA, the control plane, the proxy or the CLI; it
// reaches the CA only over gRPC.
package identity
