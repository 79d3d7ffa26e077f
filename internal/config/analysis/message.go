package analysis

import (
	"fmt"
	"strings"
)

// Level is the severity of a message, ordered Info < Warning < Error.
type Level int

// Levels, in Istio's spelling.
const (
	Info Level = iota
	Warning
	Error
)

func (l Level) String() string {
	switch l {
	case Error:
		return "Error"
	case Warning:
		return "Warning"
	default:
		return "Info"
	}
}

// ParseLevel reads "Info", "Warning" or "Error" in any case.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return Info, fmt.Errorf("unknown level %q (valid: Info, Warning, Error)", s)
}

// MessageType is one of Istio's analysis message codes with its level and
// template, as published in istio/istio pkg/config/analysis/msg/messages.yaml.
type MessageType struct {
	Code     string
	Name     string
	Level    Level
	Template string
	// Docs is the documentation of a Bowline code (BWL...), which Istio's
	// pages do not list.
	Docs string
}

// DocumentationURL is Istio's page for the code, or Docs for Bowline's own.
func (t *MessageType) DocumentationURL() string {
	if t.Docs != "" {
		return t.Docs
	}
	return "https://istio.io/latest/docs/reference/config/analysis/" + strings.ToLower(t.Code) + "/"
}

// The message types Bowline reports. Templates are Istio's, word for word, so
// that users recognise them and Istio's documentation applies.
var (
	ReferencedResourceNotFound = &MessageType{Code: "IST0101", Name: "ReferencedResourceNotFound", Level: Error,
		Template: "Referenced %s not found: %q"}
	SchemaValidationError = &MessageType{Code: "IST0106", Name: "SchemaValidationError", Level: Error,
		Template: "Schema validation error: %v"}
	ConflictingMeshGatewayVirtualServiceHosts = &MessageType{Code: "IST0109", Name: "ConflictingMeshGatewayVirtualServiceHosts", Level: Error,
		Template: "The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."}
	MultipleSidecarsWithoutWorkloadSelectors = &MessageType{Code: "IST0111", Name: "MultipleSidecarsWithoutWorkloadSelectors", Level: Error,
		Template: "The Sidecars %v in namespace %q have no workload selector, which can lead to undefined behavior."}
	VirtualServiceDestinationPortSelectorRequired = &MessageType{Code: "IST0112", Name: "VirtualServiceDestinationPortSelectorRequired", Level: Error,
		Template: "This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port in the destination is required to disambiguate."}
	MTLSPolicyConflict = &MessageType{Code: "IST0113", Name: "MTLSPolicyConflict", Level: Error,
		Template: "A DestinationRule and Policy are in conflict with regards to mTLS for host %s. The DestinationRule %q specifies that mTLS must be %t but the Policy object %q specifies %s."}
	NoServerCertificateVerificationDestinationLevel = &MessageType{Code: "IST0128", Name: "NoServerCertificateVerificationDestinationLevel", Level: Warning,
		Template: "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s"}
	NoServerCertificateVerificationPortLevel = &MessageType{Code: "IST0129", Name: "NoServerCertificateVerificationPortLevel", Level: Warning,
		Template: "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s at port %s"}
	VirtualServiceUnreachableRule = &MessageType{Code: "IST0130", Name: "VirtualServiceUnreachableRule", Level: Warning,
		Template: "VirtualService rule %v not used (%s)."}
	VirtualServiceIneffectiveMatch = &MessageType{Code: "IST0131", Name: "VirtualServiceIneffectiveMatch", Level: Info,
		Template: "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v)."}
	VirtualServiceHostNotFoundInGateway = &MessageType{Code: "IST0132", Name: "VirtualServiceHostNotFoundInGateway", Level: Warning,
		Template: "one or more host %v defined in VirtualService %s not found in Gateway %s."}
	SchemaWarning = &MessageType{Code: "IST0133", Name: "SchemaWarning", Level: Warning,
		Template: "Schema validation warning: %v"}
	ServiceEntryAddressesRequired = &MessageType{Code: "IST0134", Name: "ServiceEntryAddressesRequired", Level: Warning,
		Template: "ServiceEntry addresses are required for this protocol."}
	ConflictingGateways = &MessageType{Code: "IST0145", Name: "ConflictingGateways", Level: Error,
		Template: "Conflict with gateways %s (workload selector %s, port %s, hosts %v)."}
	MultipleTelemetriesWithoutWorkloadSelectors = &MessageType{Code: "IST0160", Name: "MultipleTelemetriesWithoutWorkloadSelectors", Level: Error,
		Template: "The Telemetries %v in namespace %q have no workload selector, which can lead to undefined behavior."}
	InvalidGatewayCredential = &MessageType{Code: "IST0161", Name: "InvalidGatewayCredential", Level: Error,
		Template: "The credential referenced by the Gateway %s in namespace %s is invalid, which can cause the traffic not to work as expected."}
)

// Bowline's own message types: findings Istio has no code for.
var (
	// MTLSWithoutCA: analyze --no-ca found configuration that asks for mTLS.
	MTLSWithoutCA = &MessageType{Code: "BWL0001", Name: "MTLSWithoutCA", Level: Error,
		Template: "%s %s needs workload certificates, but the mesh runs without a CA (discovery --insecure-xds without --ca-dir, up --insecure): %s instead.",
		Docs:     "https://github.com/bowline-mesh/bowline/blob/main/docs/security.md#without-a-ca"}
	// GatewayAPIConditionFalse: a Gateway API status condition the controller computes is False.
	GatewayAPIConditionFalse = &MessageType{Code: "BWL0002", Name: "GatewayAPIConditionFalse", Level: Warning,
		Template: "%s %s%s: %s is False (%s): %s",
		Docs:     "https://github.com/bowline-mesh/bowline/blob/main/docs/gateways.md#status"}
	// UnsupportedEnvoyExtension: an EnvoyFilter patches in an Envoy
	// extension Bowline's proxy does not run.
	UnsupportedEnvoyExtension = &MessageType{Code: "BWL0003", Name: "UnsupportedEnvoyExtension", Level: Warning,
		Template: "%s %q (%s) at %s is not run by Bowline's proxy: proxies this patch applies to refuse (NACK) the patched configuration and keep their last good one.",
		Docs:     "https://github.com/bowline-mesh/bowline/blob/main/docs/policy.md#what-the-proxy-runs"}
)

// Message is one finding.
type Message struct {
	Type *MessageType
	// Kind, Namespace and Name identify the resource the message is about;
	// Kind is empty for a problem not tied to one (a YAML syntax error).
	Kind      string
	Namespace string
	Name      string
	// File and Line locate the field the message is about.
	File string
	Line int
	// Args fill Type.Template.
	Args []any
}

// Text is the filled-in template.
func (m Message) Text() string { return fmt.Sprintf(m.Type.Template, m.Args...) }

// Origin is "Kind namespace/name", or "" for a message without a resource.
func (m Message) Origin() string {
	if m.Kind == "" {
		return ""
	}
	return m.Kind + " " + m.Namespace + "/" + m.Name
}

// Reference is "file:line", or "" when the file is unknown.
func (m Message) Reference() string {
	if m.File == "" {
		return ""
	}
	if m.Line > 0 {
		return fmt.Sprintf("%s:%d", m.File, m.Line)
	}
	return m.File
}

// String renders the message as istioctl does:
//
//	Error [IST0101] (VirtualService default/reviews reviews.yaml:12) Referenced host+subset in destinationrule not found: "reviews+v4"
func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]", m.Type.Level, m.Type.Code)
	var where []string
	if o := m.Origin(); o != "" {
		where = append(where, o)
	}
	if r := m.Reference(); r != "" {
		where = append(where, r)
	}
	if len(where) > 0 {
		b.WriteString(" (" + strings.Join(where, " ") + ")")
	}
	b.WriteString(" " + m.Text())
	return b.String()
}
