// Package router matches MQTT topic names against topic filters.
//
// It owns three things:
//
//   - The topic rules: ValidateTopicName and ValidateFilter check names and
//     filters against MQTT 3.1.1 and 5.0 section 4.7 and, for shared
//     subscriptions, MQTT 5.0 section 4.8.2. MatchFilter is the reference
//     matcher, and ParseShared splits "$share/{group}/{filter}".
//   - Trie, the subscriptions of one node, which returns every subscription
//     that matches the topic of a PUBLISH.
//   - Tree, a store keyed by topic name, which returns every retained message
//     that matches the filter of a SUBSCRIBE.
//
// Trie.Match, Tree.Match and MatchFilter agree on every input, including
// invalid filters. FuzzMatchFilter and the randomized tests check this.
//
// The package does not own delivery, persistence or policy. It does not send
// messages, merge the QoS of overlapping subscriptions of one client, or store
// anything on disk. For a shared subscription, Trie.Match returns every member
// of the group and the caller picks the one that receives the message. Whether
// "$share/" is special for an MQTT 3.1.1 client is up to the node, because
// 3.1.1 has no shared subscriptions.
//
// Spec tags such as [MQTT-4.7.1-2] use the MQTT 5.0 numbering. Where MQTT
// 3.1.1 numbers the same rule differently, the 3.1.1 tag follows in brackets.
//
// # Locking
//
// Trie and Tree each have one sync.RWMutex, and no method holds it while it
// runs caller-supplied code. Tree.Match calls its callback after releasing
// the lock. Both locks are therefore leaves of the broker's lock
// order. A caller may hold its own locks while it calls into this package,
// but code called from this package never runs under a router lock.
//
// # Limitations
//
//   - One lock per structure: Add, Remove, Set and Delete wait for every
//     Match in progress and block new ones while they run. Sharding by first
//     level would reduce that contention and has not been needed yet.
//   - Trie.Match returns one entry per matching filter. A client subscribed to
//     both "a/+" and "a/#" appears twice, and the caller merges them.
//   - Tree.Match copies its matches before it calls back, so one call with a
//     broad filter such as "#" allocates in proportion to the retained store.
//     Tree.AppendMatch avoids the allocation when the caller keeps a buffer.
//   - Length and level limits are whatever the caller passes. A limit of zero
//     means none here, and the 65535-byte bound of the wire format
//     [MQTT-4.7.3-3] is left to the packet codec.
//   - Matching compares bytes. Topics are not Unicode-normalized
//     [MQTT-4.7.3-4], so two spellings of one character are different topics.
package router
