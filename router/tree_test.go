package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// matchTopics returns the topics that tree.Match calls back with, sorted.
func matchTopics[V any](tree *Tree[V], filter string) []string {
	var topics []string
	tree.Match(filter, func(topic string, _ V) bool {
		topics = append(topics, topic)
		return true
	})
	slices.Sort(topics)
	return topics
}

func TestTree_SetGetDelete(t *testing.T) {
	var tree Tree[string]
	if tree.Set("a/b", "one") {
		t.Error("first Set reported a replacement")
	}
	if !tree.Set("a/b", "two") {
		t.Error("second Set did not report a replacement")
	}
	tree.Set("a", "parent")
	tree.Set("a//b", "empty-level")

	if v, ok := tree.Get("a/b"); !ok || v != "two" {
		t.Errorf("Get(a/b) = %q, %v, want two, true", v, ok)
	}
	if v, ok := tree.Get("a//b"); !ok || v != "empty-level" {
		t.Errorf("Get(a//b) = %q, %v, want empty-level, true", v, ok)
	}
	if _, ok := tree.Get("a/"); ok {
		t.Error("Get(a/) found a value that was never set")
	}
	if _, ok := tree.Get("a/b/c"); ok {
		t.Error("Get(a/b/c) found a value that was never set")
	}
	if tree.Len() != 3 {
		t.Errorf("Len = %d, want 3", tree.Len())
	}

	if tree.Delete("a/x") {
		t.Error("Delete of an unknown topic reported true")
	}
	if !tree.Delete("a") {
		t.Fatal("Delete(a) = false")
	}
	if _, ok := tree.Get("a"); ok {
		t.Error("Get(a) found a deleted value")
	}
	if v, ok := tree.Get("a/b"); !ok || v != "two" {
		t.Errorf("Get(a/b) after deleting its parent = %q, %v", v, ok)
	}
	if tree.Delete("a") {
		t.Error("second Delete(a) reported true")
	}
}

func TestTree_DeletePrunes(t *testing.T) {
	var tree Tree[int]
	tree.Set("a/b/c", 1)
	tree.Set("a/b", 2)

	tree.Delete("a/b/c")
	b := tree.mu.root.children["a"].children["b"]
	if b == nil || b.children != nil {
		t.Fatalf("node a/b after deleting a/b/c = %+v, want it kept without children", b)
	}

	tree.Delete("a/b")
	if tree.mu.root.children != nil || tree.Len() != 0 {
		t.Errorf("tree not empty after deleting every topic: len %d", tree.Len())
	}
}

func TestTree_Match(t *testing.T) {
	for _, tt := range matchCases {
		t.Run(tt.name, func(t *testing.T) {
			var tree Tree[int]
			tree.Set(tt.topic, 1)
			got := len(matchTopics(&tree, tt.filter)) == 1
			if got != tt.want {
				t.Errorf("Match(%q) with topic %q = %v, want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

func TestTree_MatchMany(t *testing.T) {
	var tree Tree[int]
	for i, topic := range []string{"a", "a/b", "a/b/c", "a/c", "b", "/a", "$SYS/x", "$SYS", "a/$x"} {
		tree.Set(topic, i)
	}
	tests := []struct {
		name   string
		filter string
		want   []string
	}{
		{"hash", "#", []string{"/a", "a", "a/$x", "a/b", "a/b/c", "a/c", "b"}},
		{"hash-under-a", "a/#", []string{"a", "a/$x", "a/b", "a/b/c", "a/c"}},
		{"plus", "+", []string{"a", "b"}},
		{"plus-plus", "+/+", []string{"/a", "a/$x", "a/b", "a/c"}},
		{"dollar-sys-hash", "$SYS/#", []string{"$SYS", "$SYS/x"}},
		{"plus-not-dollar", "+/x", nil},
		{"exact", "a/b/c", []string{"a/b/c"}},
		{"none", "z/#", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchTopics(&tree, tt.filter); !slices.Equal(got, tt.want) {
				t.Errorf("Match(%q) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestTree_MatchStops(t *testing.T) {
	var tree Tree[int]
	for i := range 10 {
		tree.Set(fmt.Sprint("a/", i), i)
	}
	calls := 0
	tree.Match("a/+", func(string, int) bool {
		calls++
		return calls < 3
	})
	if calls != 3 {
		t.Errorf("fn called %d times after returning false on call 3", calls)
	}
}

// TestTree_MatchCallbackWrites checks that fn may modify the tree, which
// holds because Match releases the lock before calling fn.
func TestTree_MatchCallbackWrites(t *testing.T) {
	var tree Tree[int]
	tree.Set("a/1", 1)
	tree.Set("a/2", 2)
	tree.Match("a/+", func(topic string, v int) bool {
		tree.Delete(topic)
		tree.Set("b/"+topic, v)
		return true
	})
	if got := matchTopics(&tree, "#"); !slices.Equal(got, []string{"b/a/1", "b/a/2"}) {
		t.Errorf("topics after moving = %v", got)
	}
}

func TestTree_AppendMatchNoAllocation(t *testing.T) {
	var tree Tree[int]
	for i := range 20 {
		tree.Set(fmt.Sprint("a/", i, "/x"), i)
	}
	dst := make([]TreeItem[int], 0, 32)
	allocs := testing.AllocsPerRun(100, func() {
		dst = tree.AppendMatch("a/+/x", dst[:0])
	})
	if allocs != 0 {
		t.Errorf("AppendMatch allocated %v times per call, want 0", allocs)
	}
	if len(dst) != 20 {
		t.Errorf("AppendMatch(a/+/x) = %d items, want 20", len(dst))
	}
}

// TestTree_MatchAgainstMatchFilter applies random sets and deletes to a tree
// and to a map, and checks that Tree.Match returns exactly the map topics for
// which MatchFilter is true.
func TestTree_MatchAgainstMatchFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var tree Tree[int]
	model := make(map[string]int)

	for i := range 3000 {
		topic := randomTopic(rng)
		if rng.IntN(3) == 0 {
			_, existed := model[topic]
			if got := tree.Delete(topic); got != existed {
				t.Fatalf("Delete(%q) = %v, want %v", topic, got, existed)
			}
			delete(model, topic)
			continue
		}
		_, existed := model[topic]
		if got := tree.Set(topic, i); got != existed {
			t.Fatalf("Set(%q) = %v, want %v", topic, got, existed)
		}
		model[topic] = i
	}
	if tree.Len() != len(model) {
		t.Fatalf("Len = %d, want %d", tree.Len(), len(model))
	}

	for range 2000 {
		filter := randomFilter(rng)
		var want []string
		for topic := range model {
			if MatchFilter(filter, topic) {
				want = append(want, topic)
			}
		}
		slices.Sort(want)

		var got []string
		tree.Match(filter, func(topic string, v int) bool {
			if v != model[topic] {
				t.Errorf("Match(%q) gave %q = %d, want %d", filter, topic, v, model[topic])
			}
			got = append(got, topic)
			return true
		})
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q):\n got %v\nwant %v", filter, got, want)
		}
	}
}

func TestTree_Concurrent(t *testing.T) {
	var tree Tree[int]
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range 2000 {
				topic := randomTopic(rng)
				tree.Set(topic, i)
				if rng.IntN(2) == 0 {
					tree.Delete(topic)
				}
			}
		})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 4))
			for range 2000 {
				tree.Match(randomFilter(rng), func(string, int) bool { return true })
				tree.Get(randomTopic(rng))
				_ = tree.Len()
			}
		})
	}
	wg.Wait()
}

// benchTree builds a tree of 100k retained topics of the form
// "site{0..99}/dev{0..249}/{metric}".
func benchTree() *Tree[int] {
	metrics := [...]string{"temp", "humidity", "pressure", "battery"}
	tree := NewTree[int]()
	for i := 0; tree.Len() < 100_000; i++ {
		tree.Set(fmt.Sprintf("site%d/dev%d/%s", i%100, (i/100)%250, metrics[(i/25_000)%4]), i)
	}
	return tree
}

func BenchmarkTree_Match(b *testing.B) {
	tree := benchTree()
	for _, filter := range []string{"site42/dev7/temp", "site42/+/temp", "site42/#", "+/dev7/+", "#"} {
		b.Run("filter="+filter, func(b *testing.B) {
			matched := 0
			b.ReportAllocs()
			for b.Loop() {
				tree.Match(filter, func(string, int) bool {
					matched++
					return true
				})
			}
			b.ReportMetric(float64(matched)/float64(b.N), "items/op")
		})
	}
}

func BenchmarkTree_AppendMatch(b *testing.B) {
	tree := benchTree()
	for _, filter := range []string{"site42/+/temp", "site42/#"} {
		b.Run("filter="+filter, func(b *testing.B) {
			dst := make([]TreeItem[int], 0, 2048)
			b.ReportAllocs()
			for b.Loop() {
				dst = tree.AppendMatch(filter, dst[:0])
			}
		})
	}
}
