package ca

// Log attribute keys.
const (
	attrAddress     = "address"
	attrCaller      = "caller"
	attrDir         = "dir"
	attrError       = "error"
	attrFile        = "file"
	attrIdentity    = "identity"
	attrMethod      = "method"
	attrNotAfter    = "not_after"
	attrRoots       = "roots"
	attrSubject     = "subject"
	attrTrustDomain = "trust_domain"
	attrTTL         = "ttl"
)
