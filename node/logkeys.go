package node

// Log keys used by every node log line, so that logs stay searchable.
const (
	keyClientID = "client_id"
	keyRemote   = "remote"
	keyListener = "listener"
	keyNode     = "node"
	keyErr      = "err"
	keyReason   = "reason"
	keyTopic    = "topic"
)
