package node

import (
	"hash/maphash"
	"sync"
)

// registry maps client ids to sessions and serializes connection attempts per
// client id, so that two connections racing for one id end with exactly one
// connected and no cleanup of the loser touches the winner's state.
type registry struct {
	seed    maphash.Seed
	stripes [256]sync.Mutex // held for the whole attach, takeover and expiry of an id

	mu       sync.RWMutex
	sessions map[string]*session
}

func newRegistry() *registry {
	return &registry{seed: maphash.MakeSeed(), sessions: make(map[string]*session)}
}

// lock returns the stripe lock of a client id.
func (r *registry) lock(id string) *sync.Mutex {
	return &r.stripes[maphash.String(r.seed, id)%uint64(len(r.stripes))]
}

func (r *registry) get(id string) *session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.sessions[id]
}

func (r *registry) put(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions[s.id] = s
}

// remove deletes the entry only if it still refers to s.
func (r *registry) remove(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[s.id] == s {
		delete(r.sessions, s.id)
	}
}

func (r *registry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions)
}

// all returns a snapshot of the sessions.
func (r *registry) all() []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	return out
}
