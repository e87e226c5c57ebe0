// Package node is one Starling broker node: listeners, client connections, the
// session state machines with their QoS flows, keepalive, wills, takeover of a
// client id on this node, retained messages and the limits that bound them.
//
// It does not own topic matching (package router), the on-disk layout
// (package storage) or the wire format (package packet), and it knows nothing
// of other nodes.
//
// # Goroutines
//
// A connection's packets are handled by one goroutine at a time, its owner,
// which also drives the session's QoS flows while the client is connected.
// The accept loop starts the first owner (conn.serve). When the socket stays
// quiet, at once or after activeLinger on a busy connection, the owner
// starts a fresh goroutine that waits for the next byte (conn.idleWait) and
// returns. So an idle connection costs one small stack. Server.wg counts
// each connection from accept to its last owner's finish. Outbound packets
// are written by whoever holds a connection's write token: a reader for its
// own replies and for the deliveries of its publishes, the persister for
// what it sends (flushSet), each writing without blocking, or else a writer
// goroutine that runs only while packets wait. Every token holder counts in
// the connection's own WaitGroup, which finish waits for. The persister
// goroutine runs only while inflight entries wait to be written. Will and
// session-expiry timers run on time.AfterFunc and check the session's
// generation before acting, so a timer armed for an old connection never
// touches a newer one. Shutdown stops all of them.
//
// # Durability
//
// A PUBACK or PUBREC is sent only after the publish's storage batch has
// committed: message body and queue entries for persistent subscribers,
// retained changes, inbound QoS 2 state. A connection's pipelined publishes
// share one batch (flushPending), and concurrent connections share fsyncs
// through Pebble's commit pipeline. Deliveries to clean sessions are never
// written.
//
// # Lock order
//
// registry stripe lock (per client id) → session.mu → conn.outMu. The
// registry's map lock and the router's locks are leaves: nothing else is
// acquired while they are held.
//
// # Known limitations
//
// A persistent session's queue is held in memory as well as on disk, so the
// memory a node needs grows with its offline queues (bounded per session by
// the queue limits). Retained messages owed to a new subscription are not
// written to disk: if the node stops before they are acknowledged, the client
// gets them again only by subscribing again.
package node
