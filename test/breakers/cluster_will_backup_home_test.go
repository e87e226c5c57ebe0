package breakers

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClusterWillBackupHome_SurvivesFirstClaim connects client W with a
// will to n1, which is also W's home, so n1 copies W's home record to the
// next node in rendezvous order (K). Then a client whose home is K connects,
// which is the first claim K handles. After `kill -9` of n1, K is W's home
// and must publish W's will (docs/cluster.md, "When a session's node dies").
//
// This was broken at commit 4d2750c: the first claim a node handled
// replaced its home records with an empty map, so the backup copy of W's
// record was gone and no node published the will. By hand, with four nodes
// on 127.77.0.1-4, no will arrived within 40 s of the kill nor after n1
// returned, while the same steps without the trigger client delivered it
// 8 s after the kill. Claims now keep the stored records, so a failure
// here is an error, not a known bug.
func TestClusterWillBackupHome_SurvivesFirstClaim(t *testing.T) {
	nodes := startTestCluster(t, 3)
	sites := make(map[string]string)
	for _, n := range nodes {
		data, err := os.ReadFile(filepath.Join(n.dataDir, "cluster", "site-id"))
		if err != nil {
			t.Fatalf("read the site id of %s: %v", n.name, err)
		}
		sites[n.name] = strings.TrimSpace(string(data))
	}
	// homes returns the node names in the order in which the cluster picks
	// homes, highest score first. The score is the FNV-64a hash of the client
	// id, a zero byte and the site id (rendezvous in cluster/sessions.go).
	homes := func(clientID string) []string {
		names := []string{"n1", "n2", "n3"}
		score := func(name string) uint64 {
			h := fnv.New64a()
			h.Write([]byte(clientID + "\x00" + sites[name]))
			return h.Sum64()
		}
		slices.SortFunc(names, func(a, b string) int {
			if score(a) > score(b) {
				return -1
			}
			return 1
		})
		return names
	}
	pick := func(prefix string, match func([]string) bool) string {
		for i := 0; i < 10000; i++ {
			id := fmt.Sprintf("%s%d", prefix, i)
			if match(homes(id)) {
				return id
			}
		}
		t.Fatalf("no client id with prefix %s has the home order needed", prefix)
		return ""
	}

	will := pick("will", func(h []string) bool { return h[0] == "n1" })
	backup := homes(will)[1]
	watcher := pick("watcher", func(h []string) bool { return h[0] != backup })
	trigger := pick("trigger", func(h []string) bool { return h[0] == backup })
	t.Logf("will client %s (homes %v), watcher %s, trigger %s", will, homes(will), watcher, trigger)

	n1, n2 := nodes[0], nodes[1]
	watch, ack := connect(t, n2.addr, connectOpts{clientID: watcher, clean: true})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("watcher CONNACK reason %#x", code)
	}
	watch.send(subscribePacket(5, 1, "will/#", 1))
	watch.expect(typeSuback, 10*time.Second)

	_, ack = connect(t, n1.addr, connectOpts{clientID: will, clean: true, keepalive: 60,
		willTopic: "will/" + will, willMsg: "gone", willQoS: 1})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("will client CONNACK reason %#x", code)
	}
	time.Sleep(time.Second) // the home's backup copy reaches the backup node

	trig, ack := connect(t, n2.addr, connectOpts{clientID: trigger, clean: true})
	if code := connackCode(ack); code != 0 {
		t.Fatalf("trigger CONNACK reason %#x", code)
	}
	trig.Close()
	time.Sleep(time.Second)

	n1.kill()
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		p, err := watch.read(time.Until(deadline))
		if err != nil {
			break
		}
		if p.typ == typePublish {
			topic, _, payload := publishFields(p, 5)
			if topic == "will/"+will && string(payload) == "gone" {
				return
			}
		}
	}
	t.Errorf("the will of %s was not published within 40 s of the death of its node and home n1 "+
		"after the backup home %s handled its first claim", will, backup)
}
