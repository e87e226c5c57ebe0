package membership

// Log keys of every membership log line, so that logs stay searchable.
const (
	keyComponent  = "component"
	keyNode       = "node"
	keySiteID     = "site_id"
	keyPrevSiteID = "prev_site_id"
	keyAddr       = "addr"
	keyPeers      = "peers" // number of peers contacted
	keySeeds      = "seeds" // the configured Join entries
	keyMembers    = "members"
	keyAttempts   = "attempts"
	keyWaited     = "waited"
	keyDropped    = "dropped_total"
	keyBind       = "bind"
	keyEncrypted  = "encrypted"
	keyProfile    = "profile"
	keyErr        = "err"
	keySuppressed = "suppressed"
)

// componentName is the value of keyComponent on every log line.
const componentName = "membership"
