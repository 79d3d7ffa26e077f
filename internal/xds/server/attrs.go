package server

// Log attribute keys.
const (
	attrProxy    = "proxy"
	attrStream   = "stream"
	attrType     = "type"
	attrVersion  = "version"
	attrNonce    = "nonce"
	attrError    = "error"
	attrAddress  = "address"
	attrProxies  = "proxies"
	attrChanged  = "changed"
	attrDuration = "duration"
	attrEvents   = "events"
	attrObjects  = "objects"
	attrProblems = "problems"
	attrWorkload = "workload"
)
