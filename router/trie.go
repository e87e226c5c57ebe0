package router

import "sync"

// Entry is one subscription as stored in a Trie. The key of an entry is
// (ClientID, Group, Filter): a client has at most one subscription per
// filter and share group.
type Entry struct {
	ClientID          string
	Group             string // share group; "" for a non-shared subscription
	Filter            string // topic filter without the "$share/{group}/" prefix
	QoS               byte   // maximum QoS granted, 0 to 2
	NoLocal           bool   // MQTT 5.0 No Local option
	RetainAsPublished bool   // MQTT 5.0 Retain As Published option
	SubID             uint32 // MQTT 5.0 subscription identifier; 0 means none
}

// entryKey identifies an entry within the node of its filter.
type entryKey struct {
	clientID string
	group    string
}

// indexThreshold is the number of entries on one node above which the node
// keeps a map from key to position. Below it a linear scan is faster than a
// map and costs no memory, which matters because most filters have one or two
// subscribers. Popular filters such as "#" can have one entry per client.
const indexThreshold = 16

// Trie stores the subscriptions of one node by topic filter and finds the
// subscriptions that match a topic name. Each filter level is one trie
// level. '+' and '#' have their own child pointers, and literal levels sit in
// a map.
//
// The zero value is an empty trie ready to use. A Trie is safe for concurrent
// use. Match takes the read lock only, and Add and Remove take the write lock,
// so a writer waits for matches in progress.
type Trie struct {
	mu struct {
		sync.RWMutex
		root trieNode
		len  int // number of entries in the whole trie
	}
}

// trieNode is one filter level. All fields are guarded by Trie.mu.
type trieNode struct {
	children map[string]*trieNode // literal levels; nil when there are none
	plus     *trieNode            // the '+' level
	hash     *trieNode            // the '#' level

	// entries holds the subscriptions whose filter ends at this node, in no
	// particular order because Remove moves the last entry into the gap.
	entries []Entry

	// index maps a key to its position in entries, or is nil. It is built
	// when entries grows past indexThreshold and dropped when entries shrinks
	// to indexThreshold/2, so churn around the threshold does not rebuild it
	// on every call.
	index map[entryKey]int
}

// NewTrie returns an empty Trie. It is the same as new(Trie).
func NewTrie() *Trie {
	return new(Trie)
}

// Add stores e under the key (e.ClientID, e.Group, e.Filter) and reports
// whether an entry with that key existed. A replaced entry takes the options
// of e, because a SUBSCRIBE to an existing filter replaces the subscription
// [MQTT-3.8.4-3].
//
// Add does not validate e.Filter. An invalid filter is stored and then
// matches what MatchFilter would match for it.
func (t *Trie) Add(e Entry) (replaced bool) {
	t.mu.Lock()
	defer t.mu.Unlock()

	n := &t.mu.root
	for start := 0; start <= len(e.Filter); {
		level, next := nextLevel(e.Filter, start)
		n = n.child(level)
		start = next
	}

	if i, ok := n.find(entryKey{e.ClientID, e.Group}); ok {
		n.entries[i] = e
		return true
	}
	n.insert(e)
	t.mu.len++
	return false
}

// Remove deletes the entry with the key (clientID, group, filter) and reports
// whether it existed. Nodes left without entries or children are pruned, so
// the trie does not keep nodes for filters without subscriptions.
func (t *Trie) Remove(clientID, group, filter string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()

	removed, _ := t.mu.root.remove(filter, 0, entryKey{clientID, group})
	if removed {
		t.mu.len--
	}
	return removed
}

// Match appends to dst every entry whose filter matches topic, and returns
// the extended slice. Shared entries are included with Group set, and the
// caller picks one member per group. A client with several matching filters
// appears once per filter, and the order of entries is unspecified.
//
// Match walks the levels of topic by offset, without splitting it, and
// allocates nothing when dst has room for the result.
func (t *Trie) Match(topic string, dst []Entry) []Entry {
	t.mu.RLock()
	// A leading '+' or '#' does not match a topic starting with '$'
	// [MQTT-4.7.2-1].
	wild := topic == "" || topic[0] != '$'
	dst = t.mu.root.match(topic, 0, wild, dst)
	t.mu.RUnlock()
	return dst
}

// Len returns the number of entries.
func (t *Trie) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.len
}

// child returns the child node for one filter level, creating it if needed.
func (n *trieNode) child(level string) *trieNode {
	switch level {
	case "+":
		if n.plus == nil {
			n.plus = new(trieNode)
		}
		return n.plus
	case "#":
		if n.hash == nil {
			n.hash = new(trieNode)
		}
		return n.hash
	}

	c := n.children[level]
	if c == nil {
		if n.children == nil {
			n.children = make(map[string]*trieNode)
		}
		c = new(trieNode)
		n.children[level] = c
	}
	return c
}

// match appends the entries below n that match the levels of topic from
// offset start. wild is false when the wildcard children of n must be
// skipped, which is only the case at the root for a topic starting with '$'.
func (n *trieNode) match(topic string, start int, wild bool, dst []Entry) []Entry {
	if start > len(topic) {
		// All levels are consumed. '#' also matches the parent level, so
		// "a/#" matches "a".
		dst = append(dst, n.entries...)
		if n.hash != nil {
			dst = append(dst, n.hash.entries...)
		}
		return dst
	}

	level, next := nextLevel(topic, start)
	if wild {
		if n.hash != nil {
			dst = append(dst, n.hash.entries...)
		}
		if n.plus != nil {
			dst = n.plus.match(topic, next, true, dst)
		}
	}
	// Indexing the map with a substring does not allocate.
	if c := n.children[level]; c != nil {
		dst = c.match(topic, next, true, dst)
	}
	return dst
}

// remove deletes the entry with key from the node of filter below n. It
// reports whether the entry existed and whether n is now empty, in which case
// the parent drops it.
func (n *trieNode) remove(filter string, start int, key entryKey) (removed, empty bool) {
	if start > len(filter) {
		removed = n.delete(key)
		return removed, n.isEmpty()
	}

	level, next := nextLevel(filter, start)
	var c *trieNode
	switch level {
	case "+":
		c = n.plus
	case "#":
		c = n.hash
	default:
		c = n.children[level]
	}
	if c == nil {
		return false, false
	}

	removed, childEmpty := c.remove(filter, next, key)
	if childEmpty {
		switch level {
		case "+":
			n.plus = nil
		case "#":
			n.hash = nil
		default:
			delete(n.children, level)
			if len(n.children) == 0 {
				n.children = nil
			}
		}
	}
	return removed, n.isEmpty()
}

func (n *trieNode) isEmpty() bool {
	return len(n.entries) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// find returns the position of the entry with key.
func (n *trieNode) find(key entryKey) (int, bool) {
	if n.index != nil {
		i, ok := n.index[key]
		return i, ok
	}
	for i := range n.entries {
		if n.entries[i].ClientID == key.clientID && n.entries[i].Group == key.group {
			return i, true
		}
	}
	return 0, false
}

// insert appends e, whose key must not be present yet.
func (n *trieNode) insert(e Entry) {
	n.entries = append(n.entries, e)
	if n.index != nil {
		n.index[entryKey{e.ClientID, e.Group}] = len(n.entries) - 1
		return
	}
	if len(n.entries) > indexThreshold {
		n.index = make(map[entryKey]int, len(n.entries))
		for i := range n.entries {
			n.index[entryKey{n.entries[i].ClientID, n.entries[i].Group}] = i
		}
	}
}

// delete removes the entry with key and reports whether it existed. The last
// entry moves into the gap, which keeps removal O(1) with an index.
func (n *trieNode) delete(key entryKey) bool {
	i, ok := n.find(key)
	if !ok {
		return false
	}

	last := len(n.entries) - 1
	if i != last {
		n.entries[i] = n.entries[last]
		if n.index != nil {
			n.index[entryKey{n.entries[i].ClientID, n.entries[i].Group}] = i
		}
	}
	// Clear the moved slot so the strings it points to can be collected.
	n.entries[last] = Entry{}
	n.entries = n.entries[:last]

	if n.index != nil {
		delete(n.index, key)
		if len(n.entries) <= indexThreshold/2 {
			n.index = nil
		}
	}
	if len(n.entries) == 0 {
		n.entries = nil
	}
	return true
}
