package router

import "sync"

// Tree stores one value per topic name, such as the retained message of each
// topic, and finds the values whose topic matches a filter. Each topic level
// is one tree level, so Match visits only the branches that the filter can
// match rather than scanning every topic.
//
// The zero value is an empty tree ready to use. A Tree is safe for concurrent
// use. Get, Len and Match take the read lock, and Set and Delete take the
// write lock.
type Tree[V any] struct {
	mu struct {
		sync.RWMutex
		root treeNode[V]
		len  int // number of topics with a value
	}
}

// treeNode is one topic level. All fields are guarded by Tree.mu.
type treeNode[V any] struct {
	children map[string]*treeNode[V] // nil when there are none
	topic    string                  // full topic name; set only when hasValue
	value    V
	hasValue bool
}

// TreeItem is one topic and its value, as collected by Tree.Match.
type TreeItem[V any] struct {
	Topic string
	Value V
}

// NewTree returns an empty Tree. It is the same as new(Tree[V]).
func NewTree[V any]() *Tree[V] {
	return new(Tree[V])
}

// Set stores v for topic and reports whether it replaced a value. Set does
// not validate topic. A topic containing '+' or '#' is stored, but Match
// treats those characters as wildcards in the filter only.
func (t *Tree[V]) Set(topic string, v V) (replaced bool) {
	t.mu.Lock()
	defer t.mu.Unlock()

	n := &t.mu.root
	for start := 0; start <= len(topic); {
		level, next := nextLevel(topic, start)
		c := n.children[level]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*treeNode[V])
			}
			c = new(treeNode[V])
			n.children[level] = c
		}
		n = c
		start = next
	}

	replaced = n.hasValue
	n.topic, n.value, n.hasValue = topic, v, true
	if !replaced {
		t.mu.len++
	}
	return replaced
}

// Delete removes the value of topic and reports whether there was one. Nodes
// left without a value or children are pruned.
func (t *Tree[V]) Delete(topic string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()

	deleted, _ := t.mu.root.delete(topic, 0)
	if deleted {
		t.mu.len--
	}
	return deleted
}

// Get returns the value of topic and whether there is one.
func (t *Tree[V]) Get(topic string) (V, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()

	n := &t.mu.root
	for start := 0; start <= len(topic); {
		level, next := nextLevel(topic, start)
		if n = n.children[level]; n == nil {
			var zero V
			return zero, false
		}
		start = next
	}
	return n.value, n.hasValue
}

// Len returns the number of topics with a value.
func (t *Tree[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.len
}

// Match calls fn for each topic that filter matches, in unspecified order,
// until fn returns false. The filter follows MatchFilter, so a '+' or '#' in
// the first level skips topics starting with '$' [MQTT-4.7.2-1].
//
// Match copies the matching items under the read lock and calls fn after
// releasing it. fn may therefore call back into the Tree or block without
// stalling publishers, and it receives the items as they were when Match took
// the lock. The copy costs one allocation per call, growing with the number of
// matches. Use AppendMatch to reuse a buffer instead.
func (t *Tree[V]) Match(filter string, fn func(topic string, v V) bool) {
	items := t.AppendMatch(filter, nil)
	for i := range items {
		if !fn(items[i].Topic, items[i].Value) {
			return
		}
	}
}

// AppendMatch appends the items whose topic filter matches to dst, in
// unspecified order, and returns the extended slice. It holds the read lock
// while it appends and allocates nothing when dst has room for the result.
func (t *Tree[V]) AppendMatch(filter string, dst []TreeItem[V]) []TreeItem[V] {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.root.match(filter, 0, true, dst)
}

// match appends the items below n that match the levels of filter from
// offset start. root is true for the top level, where wildcards skip topics
// starting with '$'.
func (n *treeNode[V]) match(filter string, start int, root bool, dst []TreeItem[V]) []TreeItem[V] {
	if start > len(filter) {
		if n.hasValue {
			dst = append(dst, TreeItem[V]{n.topic, n.value})
		}
		return dst
	}

	level, next := nextLevel(filter, start)
	switch level {
	case "#":
		// '#' matches only as the last level, like in MatchFilter.
		if next <= len(filter) {
			return dst
		}
		// '#' also matches the parent level, so "a/#" matches "a". The root
		// has no value because every topic has at least one level.
		if n.hasValue {
			dst = append(dst, TreeItem[V]{n.topic, n.value})
		}
		for key, c := range n.children {
			if root && isDollar(key) {
				continue
			}
			dst = c.appendAll(dst)
		}
	case "+":
		for key, c := range n.children {
			if root && isDollar(key) {
				continue
			}
			dst = c.match(filter, next, false, dst)
		}
	default:
		if c := n.children[level]; c != nil {
			dst = c.match(filter, next, false, dst)
		}
	}
	return dst
}

// appendAll appends the item of n and of every node below it.
func (n *treeNode[V]) appendAll(dst []TreeItem[V]) []TreeItem[V] {
	if n.hasValue {
		dst = append(dst, TreeItem[V]{n.topic, n.value})
	}
	for _, c := range n.children {
		dst = c.appendAll(dst)
	}
	return dst
}

// delete removes the value of the topic whose levels start at offset start
// below n. It reports whether there was a value and whether n is now empty,
// in which case the parent drops it.
func (n *treeNode[V]) delete(topic string, start int) (deleted, empty bool) {
	if start > len(topic) {
		if !n.hasValue {
			return false, false
		}
		var zero V
		n.topic, n.value, n.hasValue = "", zero, false
		return true, len(n.children) == 0
	}

	level, next := nextLevel(topic, start)
	c := n.children[level]
	if c == nil {
		return false, false
	}
	deleted, childEmpty := c.delete(topic, next)
	if childEmpty {
		delete(n.children, level)
		if len(n.children) == 0 {
			n.children = nil
		}
	}
	return deleted, !n.hasValue && len(n.children) == 0
}

func isDollar(level string) bool {
	return level != "" && level[0] == '$'
}
