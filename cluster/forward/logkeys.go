package forward

// Log keys of every forward log line, so that logs stay searchable.
const (
	keyComponent   = "component"
	keyPeer        = "peer"    // node name
	keySiteID      = "site_id" // the peer's site id
	keyErr         = "err"
	keyHighWater   = "high_water"
	keyResend      = "resend" // outbox entries to resend after a reconnect
	keyRetryIn     = "retry_in"
	keyAttempts    = "attempts"
	keyDepth       = "outbox_depth"
	keyBytes       = "outbox_bytes"
	keyDroppedQoS0 = "dropped_qos0_total"
	keyDiskReads   = "disk_mode_total"
	keySender      = "sender" // node name of a stream's sender
)

// componentName is the value of keyComponent on every log line.
const componentName = "forward"
