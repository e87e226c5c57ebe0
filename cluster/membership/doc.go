// Package membership tracks which nodes of a Starling cluster are alive, by
// gossip with hashicorp/memberlist v0.6.0.
//
// # What it owns
//
// The node's gossip identity and view: its name (the memberlist name), its
// site id (LoadOrCreateSiteID; the id of its data directory), its published
// metadata (site id, peer and MQTT addresses, boot incarnation, in a
// versioned encoding, see meta.go), encryption with the gossip key, finding
// peers through seed addresses or DNS names, and the join, leave and update
// events of other nodes. A node that restarts with a new address takes its
// name back within seconds (profile.go gives the arithmetic), and a node
// that returns under its old name with a new site id is reported with an
// EventUpdate that carries PrevSiteID.
//
// # What it does not own
//
// Decisions. Gossip suspicion and death change nothing by themselves: the
// Raft layer decides when a node is dead, which voters to replace and which
// routes to purge, from Members and Events. The peer port and its TLS
// certificates belong to that layer too, as does persisting the boot
// incarnation.
//
// # Goroutines and locks
//
// memberlist runs its own goroutines and stops them in Shutdown, which
// Close calls. Membership adds one: the join loop, started by Start when
// Config.Join is set and stopped by Leave or Close, which wait for it.
// memberlist calls the delegates (delegate.go, events.go) from its
// goroutines, some with its node lock held, so they never block and never
// call back into memberlist. Lock order: Membership.mu is held while
// calling memberlist (Leave, UpdateMeta), so it comes before memberlist's
// locks. The delegates' own locks (eventDelegate.mu, eventQueue.mu,
// metaDelegate.mu) are taken inside memberlist's node lock and never nest
// with each other.
//
// # Security
//
// Gossip on a non-loopback address must be encrypted with Config.GossipKey
// unless Config.Insecure is set, and Start logs a warning on every start with
// Insecure set. Nothing secret is logged.
//
// # Limitations
//
// memberlist keeps one address per name and exchanges IP addresses, so a
// host name in AdvertiseAddr is resolved once, at Start. DNS seeds are plain
// address lookups: every address shares the port of the Join entry (SRV
// records are not read). A node does not verify that a peer's metadata
// claims are true; the peer port's mutual TLS does that for the layers that
// act on them.
package membership
