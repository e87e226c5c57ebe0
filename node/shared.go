package node

import (
	"sync"
	"sync/atomic"

	"github.com/starling-mqtt/starling/router"
)

// sharedPicker chooses one member of a shared subscription group per message,
// round robin, preferring members that are connected.
type sharedPicker struct {
	counters sync.Map // group + "\x00" + filter -> *atomic.Uint64
}

// pickShared returns the member of a shared group that gets the next message.
// NOTE: only round robin is implemented; other strategies and the redelivery
// rules of MQTT 5.0 section 4.8.2 for broken connections are still missing.
func (s *Server) pickShared(key string, members []router.Entry) *router.Entry {
	v, _ := s.shared.counters.LoadOrStore(key, new(atomic.Uint64))
	n := v.(*atomic.Uint64).Add(1)
	for i := range members {
		e := &members[(int(n)+i)%len(members)]
		if sess := s.reg.get(e.ClientID); sess != nil && sess.online() {
			return e
		}
	}
	return &members[int(n)%len(members)]
}

// online reports whether a client is connected to the session.
func (ss *session) online() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.mu.conn != nil
}
