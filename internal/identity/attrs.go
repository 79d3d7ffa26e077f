package identity

// Log attribute keys.
const (
	attrAddress  = "address"
	attrError    = "error"
	attrID       = "spiffe_id"
	attrNotAfter = "not_after"
	attrRetryIn  = "retry_in"
	attrRotateAt = "rotate_at"
	attrRoots    = "roots"
)
