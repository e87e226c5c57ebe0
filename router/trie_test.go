package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// entryString formats an entry for sorting and comparing match results.
func entryString(e Entry) string {
	return fmt.Sprintf("%s|%s|%s|%d|%v|%v|%d", e.ClientID, e.Group, e.Filter, e.QoS, e.NoLocal, e.RetainAsPublished, e.SubID)
}

func sortedStrings(entries []Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = entryString(e)
	}
	slices.Sort(out)
	return out
}

func TestTrie_Match(t *testing.T) {
	for _, tt := range matchCases {
		t.Run(tt.name, func(t *testing.T) {
			var trie Trie
			trie.Add(Entry{ClientID: "c", Filter: tt.filter})
			got := trie.Match(tt.topic, nil)
			if (len(got) == 1) != tt.want || len(got) > 1 {
				t.Errorf("Match(%q) with filter %q = %v, want match %v", tt.topic, tt.filter, got, tt.want)
			}
		})
	}
}

func TestTrie_OverlappingFilters(t *testing.T) {
	var trie Trie
	trie.Add(Entry{ClientID: "c1", Filter: "a/+", QoS: 1, SubID: 1})
	trie.Add(Entry{ClientID: "c1", Filter: "a/#", QoS: 2, SubID: 2})
	trie.Add(Entry{ClientID: "c1", Filter: "a/b", QoS: 0})
	trie.Add(Entry{ClientID: "c2", Filter: "#"})
	trie.Add(Entry{ClientID: "c3", Filter: "a/c"})

	got := sortedStrings(trie.Match("a/b", nil))
	want := sortedStrings([]Entry{
		{ClientID: "c1", Filter: "a/+", QoS: 1, SubID: 1},
		{ClientID: "c1", Filter: "a/#", QoS: 2, SubID: 2},
		{ClientID: "c1", Filter: "a/b", QoS: 0},
		{ClientID: "c2", Filter: "#"},
	})
	if !slices.Equal(got, want) {
		t.Errorf("Match(a/b) = %v, want %v", got, want)
	}
}

func TestTrie_AddReplaces(t *testing.T) {
	var trie Trie
	if trie.Add(Entry{ClientID: "c", Filter: "a/+", QoS: 0, SubID: 7}) {
		t.Fatal("first Add reported a replacement")
	}
	// Same client and filter: the new options replace the old ones [MQTT-3.8.4-3].
	if !trie.Add(Entry{ClientID: "c", Filter: "a/+", QoS: 2, NoLocal: true, RetainAsPublished: true}) {
		t.Fatal("second Add did not report a replacement")
	}
	if trie.Len() != 1 {
		t.Fatalf("Len = %d, want 1", trie.Len())
	}

	got := trie.Match("a/b", nil)
	want := Entry{ClientID: "c", Filter: "a/+", QoS: 2, NoLocal: true, RetainAsPublished: true}
	if len(got) != 1 || got[0] != want {
		t.Errorf("Match = %+v, want [%+v]", got, want)
	}

	// A share group is part of the key, so the same client and filter in a
	// group is a second entry.
	if trie.Add(Entry{ClientID: "c", Group: "g", Filter: "a/+"}) {
		t.Error("Add in a share group replaced the non-shared entry")
	}
	if trie.Len() != 2 {
		t.Errorf("Len = %d, want 2", trie.Len())
	}
}

func TestTrie_RemovePrunes(t *testing.T) {
	var trie Trie
	trie.Add(Entry{ClientID: "c1", Filter: "a/b/c"})
	trie.Add(Entry{ClientID: "c1", Filter: "a/+/#"})
	trie.Add(Entry{ClientID: "c2", Filter: "a/b"})

	if trie.Remove("c1", "", "a/b/x") {
		t.Error("Remove of an unknown filter reported true")
	}
	if trie.Remove("c9", "", "a/b/c") {
		t.Error("Remove of an unknown client reported true")
	}
	if trie.Remove("c1", "g", "a/b/c") {
		t.Error("Remove with the wrong group reported true")
	}

	if !trie.Remove("c1", "", "a/b/c") {
		t.Fatal("Remove(a/b/c) = false")
	}
	b := trie.mu.root.children["a"].children["b"]
	if b == nil || b.children != nil {
		t.Fatalf("node a/b after removing a/b/c = %+v, want it kept without children", b)
	}

	if !trie.Remove("c1", "", "a/+/#") {
		t.Fatal("Remove(a/+/#) = false")
	}
	if a := trie.mu.root.children["a"]; a.plus != nil {
		t.Errorf("node a/+ survived the removal of its only filter")
	}

	if !trie.Remove("c2", "", "a/b") {
		t.Fatal("Remove(a/b) = false")
	}
	if !trie.mu.root.isEmpty() || trie.Len() != 0 {
		t.Errorf("trie not empty after removing every entry: len %d, root %+v", trie.Len(), trie.mu.root)
	}
	if trie.Remove("c2", "", "a/b") {
		t.Error("second Remove reported true")
	}
}

func TestTrie_Shared(t *testing.T) {
	var trie Trie
	trie.Add(Entry{ClientID: "c1", Group: "g1", Filter: "jobs/+"})
	trie.Add(Entry{ClientID: "c2", Group: "g1", Filter: "jobs/+"})
	trie.Add(Entry{ClientID: "c3", Group: "g2", Filter: "jobs/#"})
	trie.Add(Entry{ClientID: "c1", Filter: "jobs/+"})

	got := sortedStrings(trie.Match("jobs/1", nil))
	want := sortedStrings([]Entry{
		{ClientID: "c1", Group: "g1", Filter: "jobs/+"},
		{ClientID: "c2", Group: "g1", Filter: "jobs/+"},
		{ClientID: "c3", Group: "g2", Filter: "jobs/#"},
		{ClientID: "c1", Filter: "jobs/+"},
	})
	if !slices.Equal(got, want) {
		t.Errorf("Match(jobs/1) = %v, want %v", got, want)
	}

	if !trie.Remove("c1", "g1", "jobs/+") {
		t.Fatal("Remove of a shared entry = false")
	}
	if n := len(trie.Match("jobs/1", nil)); n != 3 {
		t.Errorf("Match after removing one member = %d entries, want 3", n)
	}
}

// TestTrie_ManyEntriesOneFilter drives one node past indexThreshold and back,
// so the index is built, used and dropped.
func TestTrie_ManyEntriesOneFilter(t *testing.T) {
	const n = 5 * indexThreshold
	var trie Trie
	for i := range n {
		trie.Add(Entry{ClientID: fmt.Sprint("c", i), Filter: "#", SubID: uint32(i)})
	}
	if trie.mu.root.hash.index == nil {
		t.Fatalf("no index on a node with %d entries", n)
	}
	if !trie.Add(Entry{ClientID: "c3", Filter: "#", QoS: 1}) {
		t.Error("Add of an existing key through the index did not replace")
	}

	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(n)
	for k, i := range order {
		if !trie.Remove(fmt.Sprint("c", i), "", "#") {
			t.Fatalf("Remove(c%d) = false", i)
		}
		left := trie.Match("x", nil)
		if len(left) != n-k-1 || trie.Len() != n-k-1 {
			t.Fatalf("after %d removals: %d matches, Len %d, want %d", k+1, len(left), trie.Len(), n-k-1)
		}
		for _, e := range left {
			if e.ClientID == fmt.Sprint("c", i) {
				t.Fatalf("removed client c%d still matches", i)
			}
		}
	}
	if !trie.mu.root.isEmpty() {
		t.Error("root not empty after removing every entry")
	}
}

func TestTrie_MatchNoAllocation(t *testing.T) {
	var trie Trie
	for _, f := range []string{"a/b/c", "a/+/c", "a/#", "#", "+/+/+", "$SYS/#"} {
		trie.Add(Entry{ClientID: "c", Filter: f})
	}
	dst := make([]Entry, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		dst = trie.Match("a/b/c", dst[:0])
	})
	if allocs != 0 {
		t.Errorf("Match allocated %v times per call, want 0", allocs)
	}
	if len(dst) != 5 {
		t.Errorf("Match(a/b/c) = %d entries, want 5", len(dst))
	}
}

// randomLevel picks a topic level from a small vocabulary so that random
// filters and topics overlap often. It includes empty and '$' levels.
func randomLevel(rng *rand.Rand) string {
	levels := [...]string{"a", "b", "c", "", "$SYS", "$x"}
	return levels[rng.IntN(len(levels))]
}

func randomTopic(rng *rand.Rand) string {
	n := 1 + rng.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = randomLevel(rng)
	}
	return strings.Join(parts, "/")
}

func randomFilter(rng *rand.Rand) string {
	n := 1 + rng.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		if rng.IntN(3) == 0 {
			parts[i] = "+"
		} else {
			parts[i] = randomLevel(rng)
		}
	}
	if rng.IntN(4) == 0 {
		parts[n-1] = "#"
	}
	return strings.Join(parts, "/")
}

// TestTrie_MatchAgainstMatchFilter applies random adds and removes to a trie
// and to a map, and checks that Trie.Match returns exactly the map entries
// for which MatchFilter is true.
func TestTrie_MatchAgainstMatchFilter(t *testing.T) {
	type key struct{ client, group, filter string }
	rng := rand.New(rand.NewPCG(42, 7))
	var trie Trie
	model := make(map[key]Entry)

	for range 3000 {
		e := Entry{
			ClientID: fmt.Sprint("c", rng.IntN(20)),
			Filter:   randomFilter(rng),
			QoS:      byte(rng.IntN(3)),
			SubID:    uint32(rng.IntN(5)),
		}
		if rng.IntN(4) == 0 {
			e.Group = fmt.Sprint("g", rng.IntN(2))
		}
		k := key{e.ClientID, e.Group, e.Filter}

		if rng.IntN(3) == 0 {
			_, existed := model[k]
			if got := trie.Remove(e.ClientID, e.Group, e.Filter); got != existed {
				t.Fatalf("Remove(%v) = %v, want %v", k, got, existed)
			}
			delete(model, k)
			continue
		}
		_, existed := model[k]
		if got := trie.Add(e); got != existed {
			t.Fatalf("Add(%v) = %v, want %v", k, got, existed)
		}
		model[k] = e
	}
	if trie.Len() != len(model) {
		t.Fatalf("Len = %d, want %d", trie.Len(), len(model))
	}

	var dst []Entry
	for range 2000 {
		topic := randomTopic(rng)
		dst = trie.Match(topic, dst[:0])

		var want []Entry
		for _, e := range model {
			if MatchFilter(e.Filter, topic) {
				want = append(want, e)
			}
		}
		if got, want := sortedStrings(dst), sortedStrings(want); !slices.Equal(got, want) {
			t.Fatalf("Match(%q):\n got %v\nwant %v", topic, got, want)
		}
	}
}

// TestTrie_Concurrent runs matches against adds and removes, for the race
// detector.
func TestTrie_Concurrent(t *testing.T) {
	var trie Trie
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			client := fmt.Sprint("c", w)
			for range 2000 {
				f := randomFilter(rng)
				trie.Add(Entry{ClientID: client, Filter: f})
				if rng.IntN(2) == 0 {
					trie.Remove(client, "", f)
				}
			}
		})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			var dst []Entry
			for range 2000 {
				dst = trie.Match(randomTopic(rng), dst[:0])
				_ = trie.Len()
			}
		})
	}
	wg.Wait()
}

// benchTrie builds a trie with n subscriptions over topics of the form
// "site{0..99}/dev{i}/{metric}". About 80% of the filters are exact, 10% use
// '+' and 10% use '#'. It returns topics that hit existing devices.
func benchTrie(n int) (*Trie, []string) {
	metrics := [...]string{"temp", "humidity", "pressure", "battery"}
	rng := rand.New(rand.NewPCG(1, 1))
	trie := NewTrie()
	topics := make([]string, 0, 1024)
	for i := 0; trie.Len() < n; i++ {
		site := fmt.Sprint("site", rng.IntN(100))
		dev := fmt.Sprint("dev", rng.IntN(n/4+1))
		metric := metrics[rng.IntN(len(metrics))]
		topic := site + "/" + dev + "/" + metric

		var filter string
		switch r := rng.IntN(10); {
		case r < 8:
			filter = topic
		case r == 8:
			filter = site + "/+/" + metric
		default:
			filter = site + "/" + dev + "/#"
		}
		trie.Add(Entry{ClientID: fmt.Sprint("c", i), Filter: filter, QoS: 1})
		if len(topics) < cap(topics) {
			topics = append(topics, topic)
		}
	}
	// A few broad subscriptions, as monitoring clients have.
	trie.Add(Entry{ClientID: "monitor", Filter: "#"})
	trie.Add(Entry{ClientID: "monitor", Filter: "+/+/battery"})
	return trie, topics
}

// BenchmarkTrie_Match matches topics of existing devices against the mix of
// benchTrie: mostly exact filters, some '+' and '#', and two broad ones.
func BenchmarkTrie_Match(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("subs=%dk", n/1000), func(b *testing.B) {
			trie, topics := benchTrie(n)
			dst := make([]Entry, 0, 256)
			matched := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst = trie.Match(topics[i%len(topics)], dst[:0])
				matched += len(dst)
			}
			b.ReportMetric(float64(matched)/float64(b.N), "entries/op")
		})
	}
}

// BenchmarkTrie_MatchExact matches one device's topic among n exact
// subscriptions of other devices, with no wildcard filters: the path of a
// fleet where each device subscribes to its own command topic. The target
// is under 1 µs per match at 1 M subscriptions.
func BenchmarkTrie_MatchExact(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("subs=%dk", n/1000), func(b *testing.B) {
			trie := NewTrie()
			topics := make([]string, 0, 1024)
			for i := range n {
				topic := fmt.Sprintf("site%d/dev%d/cmd", i%100, i)
				trie.Add(Entry{ClientID: fmt.Sprint("c", i), Filter: topic, QoS: 1})
				if i%(n/cap(topics)) == 0 && len(topics) < cap(topics) {
					topics = append(topics, topic)
				}
			}
			dst := make([]Entry, 0, 4)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst = trie.Match(topics[i%len(topics)], dst[:0])
				if len(dst) != 1 {
					b.Fatalf("matched %d entries, want 1", len(dst))
				}
			}
		})
	}
}

func BenchmarkTrie_MatchParallel(b *testing.B) {
	trie, topics := benchTrie(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]Entry, 0, 256)
		i := 0
		for pb.Next() {
			dst = trie.Match(topics[i%len(topics)], dst[:0])
			i++
		}
	})
}

func BenchmarkTrie_Add(b *testing.B) {
	trie, _ := benchTrie(100_000)
	filters := make([]string, b.N)
	for i := range filters {
		filters[i] = fmt.Sprintf("site%d/new%d/temp", i%100, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		trie.Add(Entry{ClientID: "bench", Filter: filters[i]})
	}
}

func BenchmarkTrie_Remove(b *testing.B) {
	trie, _ := benchTrie(100_000)
	filters := make([]string, b.N)
	for i := range filters {
		filters[i] = fmt.Sprintf("site%d/new%d/temp", i%100, i)
		trie.Add(Entry{ClientID: "bench", Filter: filters[i]})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		trie.Remove("bench", "", filters[i])
	}
}

// BenchmarkTrie_AddRemove measures one subscribe and one unsubscribe of a
// filter whose nodes already exist, as when a client reconnects.
func BenchmarkTrie_AddRemove(b *testing.B) {
	trie, _ := benchTrie(100_000)
	b.ReportAllocs()
	for b.Loop() {
		trie.Add(Entry{ClientID: "bench", Filter: "site7/+/temp"})
		trie.Remove("bench", "", "site7/+/temp")
	}
}
