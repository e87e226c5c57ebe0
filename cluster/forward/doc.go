// Package forward carries published messages between the nodes of a
// cluster: one ordered gRPC Forward stream per directed pair of nodes,
// with the sender's outbox in Pebble and cumulative acknowledgements from
// the receiver.
//
// # What it owns
//
// On the sending side (Forwarder) it owns the sequence numbers per peer,
// which never repeat across restarts because each block of them is
// reserved on disk before use. It owns the reorder buffer, which hands
// messages to the stream in sequence order although their publishes commit
// in any order, and the byte-bounded send queue per peer. It writes the
// outbox entries of QoS 1 and 2 messages into the publisher's batch and
// deletes them once acknowledged. It reconnects with backoff and resends
// unacknowledged entries. On the receiving side (Receiver) it owns the
// hello check, dropping duplicates at or below the sender's high-water
// mark, and the acknowledgements.
//
// # What it does not own
//
// Which peers exist and when one is reaped (the caller passes SetPeers and
// DropPeer), which messages go to which peer (the router), connections and
// TLS (Config.Dial and the gRPC server), and delivery to sessions (the
// Deliverer, which writes the messages and the high-water mark in one
// durable batch).
//
// # Sending
//
// Stage assigns the next sequence number and, for QoS 1 and 2, puts the
// encoded message into the publisher's batch. After the batch commits,
// Release hands the message on; after a failure, Abort skips its number.
// A message enters the send queue only when every lower number is released
// or aborted. When a QoS 1 or 2 message does not fit in the queue, the
// peer enters disk mode: released QoS 1 and 2 messages stay only in the
// outbox, QoS 0 messages are dropped and counted, and the sender reads the
// outbox up to the highest released number until it catches up (see
// catchUp for why the switch back loses and repeats nothing).
//
// On every (re)connect the sender sends a hello with both site ids. The
// receiver answers with its high-water mark; the sender deletes the outbox
// up to it, resends the entries above it that it had sent before, then
// continues live. A receiver with another site id rejects the stream with
// codes.FailedPrecondition, and the sender retries after
// Config.RejectedRetry.
//
// # Goroutines and locks
//
// Each running peer has one sender goroutine, started by SetPeers and
// stopped by SetPeers, DropPeer or Close, plus one goroutine per stream
// that reads acknowledgements, which the sender goroutine waits for. The
// Receiver starts none. Lock order: Forwarder.mu, then peer.mu or
// peer.deleteMu; peer.mu and peer.deleteMu never nest. No lock is held
// while sending on a stream. peer.mu is held across the synced write that
// reserves a block of sequence numbers.
//
// # Limitations
//
//   - QoS 0 messages are lost when they arrive while the peer is in disk
//     mode or its queue is full, and when they were in a request that a
//     broken stream did not deliver.
//   - Acknowledged entries are deleted in batches: every deleteEvery (1024)
//     sequence numbers, or after Config.DeleteInterval without new
//     messages. Until then they count in OutboxDepth and in Full.
//   - A superseded stream whose connection died silently keeps its handler
//     goroutine until gRPC keepalive or the transport notices.
//   - Shared-subscription accept and decline replies are not carried yet.
//   - One Forwarder may use a Store at a time.
package forward
