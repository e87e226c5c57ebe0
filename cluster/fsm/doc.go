// Package fsm is the state machine of the cluster's Raft group
// (hashicorp/raft v1.7.2): a deterministic library that applies committed
// commands (proto/starling/cluster/v1/fsm.proto) to the replicated state
// and serves reads of it to the node.
//
// # What it owns
//
// The replicated state and the rules for changing it: the route table,
// keyed by (site id, filter, share group) with a durable flag; node records
// keyed by name, with site id, boot incarnation, state and addresses; the
// membership epoch, raised by every committed change of a node's state or
// site id and by a node's first record; the cluster version; auth records
// (users, groups, roles, global rules) as opaque JSON bytes, so that the
// package does not depend on node/auth. It also owns the snapshot format
// (snapshot.go) and the command encoding helper EncodeCommand.
//
// # What it does not own
//
// Raft itself, its log and snapshot stores, the transport, leadership, and
// every decision of when to propose: the route syncer, the leader's
// reconciliation of memberlist events, grace and reap timers. Those live in
// the cluster layer, which proposes commands and reads the results.
//
// # Rules of apply
//
//   - A route batch applies only when a node record holds its site id with
//     the batch's incarnation and a state other than left. Anything else is
//     stale and ignored: a lower incarnation was sent before a restart, a
//     site id without a record was retired. A node must therefore commit its
//     record with a new incarnation before it sends routes under it.
//   - A restarted node replaces its routes with batches marked replace; the
//     old routes stay in force until the batch marked replace_last, then the
//     staged set takes their place in one apply. Plain batches of the same
//     incarnation in between change both sets.
//   - A node record with a new site id for an existing name retires the old
//     site id and purges its routes in the same apply. A record in state left
//     and NodeLeave purge all the node's routes; PurgeRoutes can keep the
//     durable ones.
//   - A command whose body is invalid is rejected (Result.Err wraps
//     ErrInvalidCommand) and changes nothing. Every replica sees the same
//     bytes and rejects it the same way, so this cannot make them diverge.
//
// # Unknown commands stop the node
//
// Apply panics with a *CommandError when a command's type is unknown to this
// build, when it requires a cluster version above the committed one, or when
// a SetClusterVersion asks for more than MaxClusterVersion, unless the
// command's skippable flag is set, in which case it is ignored
// (StatusSkipped). A replica that skipped a command the others applied would
// serve a different state from then on, so stopping is the safe choice;
// the operator upgrades the node and it replays the log. Proposers set
// cluster_version_required on every type added after version 1, and the
// leader raises the cluster version only when every member supports it.
//
// # Determinism
//
// Apply reads nothing but its state and the log entry: no clock, no random
// numbers, no I/O. Maps are never iterated where the order could reach the
// state, a result or a snapshot: snapshots and read results are sorted.
// Snapshots of equal states are equal byte for byte, which the tests check.
//
// # Concurrency and lock order
//
// Raft calls Apply, ApplyBatch, Snapshot and Restore from its FSM goroutine,
// one at a time. They take FSM.mu for writing. The read methods (Routes,
// RoutesFor, Nodes, Node, Epoch, ClusterVersion, AppliedIndex, AuthRecord,
// AuthRecords, WaitApplied) take it for reading and return copies. Subscribe
// channels are signalled under subscribers.mu after FSM.mu is released, so
// the two locks are never held together. FSMSnapshot.Persist runs concurrently with Apply without a lock:
// it reads route sets that Apply copies before changing (routeSet.gen).
//
// # Limitations
//
// Snapshot copies the maps of nodes, sites and auth records and deep-copies
// staged route sets, so its cost grows with those, not with the route
// count. Reads copy and sort what they return, which costs O(n log n) per
// call; a router that rebuilds its view on every notification pays that
// once per coalesced change. Cluster settings are not part of the state yet.
package fsm
