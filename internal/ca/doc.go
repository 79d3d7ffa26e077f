// Package ca is Bowline's certificate authority (Istio's Citadel). It owns the
// signing key and certificate, persisted in Istio's cacerts layout (ca-cert.pem,
// ca-key.pem, root-cert.pem, cert-chain.pem): a self-signed root created on
// first start, or a plugged-in intermediate. It signs CSRs into SPIFFE X.509
// SVIDs for the identity of the authenticated caller, keeps the trust bundle
// (several roots during a root rotation), issues the control plane's own
// serving certificates, and serves Istio's IstioCertificateService over gRPC
// with TLS.
//
// It must not import the proxy, the xDS control plane, the CLI or identity;
// workloads reach it only over gRPC.
package ca
