package peer

// Log keys of every peer port log line, so that logs stay searchable.
const (
	keyComponent  = "component"
	keyRemote     = "remote" // remote address of a connection
	keyNode       = "node"   // node name: this node's on lifecycle lines, else the peer's
	keyProtocol   = "protocol"
	keyRetryIn    = "retry_in"
	keyAddr       = "addr"
	keyAdvertise  = "advertise"
	keyTLS        = "tls"
	keyLoopback   = "loopback"
	keyReason     = "reason"
	keyErr        = "err"
	keySuppressed = "suppressed"
)

// componentName is the value of keyComponent on every log line.
const componentName = "peer"
