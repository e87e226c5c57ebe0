// Package storage is the broker's Pebble store for sessions, subscriptions,
// message queues, inflight messages, inbound QoS 2 state and retained
// messages.
//
// # What it owns
//
// Record shapes and their binary encoding, the key layout, atomic batches,
// durability (when a commit is fsynced), node-unique ids, and the reference
// counts of message bodies shared by many queue and inflight entries.
//
// # What it does not own
//
// MQTT semantics. It does not decide what to queue, when a session expires,
// how QoS is downgraded, or what to do when the disk is full: OverLimit only
// reports. Properties, wills and payloads are opaque bytes. It does not
// replicate anything to other nodes.
//
// # Key layout (layout version 1)
//
// Every key starts with a one-byte record kind. Client ids never contain
// U+0000, which MQTT forbids, so 0x00 ends a client id inside a key, and the
// range [kind id 0x00, kind id 0x01) contains exactly one client's records of
// that kind. Integers are big-endian so that keys sort numerically.
//
//	0x01 "layout"                    uvarint layout version
//	0x01 "idlimit"                   uvarint: every id below it may have been handed out
//	0x01 "rsync" 0x00 siteID         varint unix ms: last completed retained sync with peer siteID (no version byte)
//	0x10 clientID                    Session
//	0x11 clientID 0x00 filter        Subscription (value without client id and filter)
//	0x12 clientID 0x00 seq:8         QueueEntry (value without Seq)
//	0x13 clientID 0x00 packetID:2    InflightEntry (value without PacketID)
//	0x14 clientID 0x00 packetID:2    inbound QoS 2 record (value is the version byte only)
//	0x20 messageID:8                 Message body
//	0x21 topic                       retained Message, stored whole (version 1), or RetainedRecord:
//	                                 clock and tombstone flag, then the Message (version 2; retained.go)
//	0x30 namespace:1 name            security record (user, group, role), encoded by the auth layer
//	0x40 siteID 0x00 seq:8           outbox entry toward peer siteID: version byte, encoded clusterpb.ForwardMessage
//	0x41 siteID                      uvarint: every forward seq toward siteID below it may have been handed out
//	0x42 siteID                      uvarint: highest forward seq received from siteID and delivered
//	0x43 messageID:8                 shared custody: version byte, uvarint unix ms, uvarint length and site id, encoded clusterpb.ForwardMessage
//
// Every value starts with a record version byte, currently 1, followed by
// fixed bytes, varints and length-prefixed fields as documented on each
// append function in codec.go. Decoders reject unknown versions, unknown
// flag bits, out-of-range values and trailing bytes with ErrCorrupt.
//
// # Message references
//
// A message body is written once and referenced by queue and inflight
// entries. Reference counts live only in memory: Open rebuilds them by
// scanning all queue and inflight entries, and deletes bodies without a
// reference. An in-memory index per client (queue Seq and inflight packet id
// to message id) lets DeleteSession release every reference of a client and
// lets PutInflight tell a new packet id from a re-put, without reading from
// disk inside the commit. A batch that adds a reference must put the body
// in the same batch or hold another reference until it commits.
//
// # Durability
//
// With DurabilitySync, Commit returns after the WAL fsync, and concurrent
// commits share fsyncs through Pebble's group commit. With
// DurabilityRelaxed, and for CommitNoSync in either mode, a write sits in
// Pebble's WAL buffer when the call returns (Pebble writes a WAL block to the
// OS when it fills or when a synced write flushes it), and a background
// goroutine fsyncs the WAL every Config.SyncInterval (10ms by default). So a
// process crash as well as a machine crash can lose the relaxed and unsynced
// commits of the last SyncInterval plus one fsync; synced commits are never
// lost.
//
// # Lock order
//
// The only nesting is idAllocator.mu, then gate.mu: NextID enters the gate
// while it reserves an id block. gate.mu is held only to update a counter,
// and operations hold a gate slot, not the mutex, while they run.
// refIndex.mu is taken with no other Store mutex held. No Store mutex is
// held while waiting for an fsync, except idAllocator.mu during the synced
// write that reserves the next id block, and outboxIndex.reserveMu during
// the synced write of ReserveForwardSeq. outboxIndex.mu is a leaf.
//
// # Limitations
//
//   - One disk: losing or corrupting the disk loses every session, queue and
//     retained message of this node. Replication is not done here.
//   - The reference index keeps one map entry per stored queue and inflight
//     entry, so memory grows with the total queue length of all clients.
//   - A failed write leaves the index out of step with the disk, so the Store
//     rejects further writes with ErrFailed until it is reopened.
//   - Ids skip the unused rest of a 65536-id block on every restart.
//   - Open reads every queue, inflight and message key, so start-up time
//     grows with the amount of stored data.
package storage
