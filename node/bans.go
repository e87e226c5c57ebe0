package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// BanKind is the kind of value a ban matches.
type BanKind string

// Ban kinds.
const (
	BanClientID BanKind = "client_id"
	BanUsername BanKind = "username"
	BanAddress  BanKind = "address" // an IP address or a CIDR range
)

// Ban refuses connections from a client id, a user name or an address range
// until it expires. Bans are kept in the node's store and survive restarts.
type Ban struct {
	Kind   BanKind   `json:"kind"`
	Value  string    `json:"value"`
	Until  time.Time `json:"until,omitzero"` // zero: until removed
	Reason string    `json:"reason,omitempty"`
}

// bansKey names the ban list in RecordMeta. The list is small (operators add
// bans by hand or from scripts), so it is stored whole.
const bansKey = "bans"

// banList is the node's bans. It is safe for concurrent use.
type banList struct {
	mu     sync.RWMutex
	bans   []Ban
	prefix []netip.Prefix // parsed address bans
	addr   []int          // index in bans of each prefix
}

func (l *banList) rebuildLocked() {
	l.prefix, l.addr = l.prefix[:0], l.addr[:0]
	for i, b := range l.bans {
		if b.Kind != BanAddress {
			continue
		}
		if p, err := parseAddrOrPrefix(b.Value); err == nil {
			l.prefix = append(l.prefix, p)
			l.addr = append(l.addr, i)
		}
	}
}

func parseAddrOrPrefix(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address or CIDR range %q", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// match returns the ban that refuses a connection, if any.
func (l *banList) match(clientID, username, host string, now time.Time) (Ban, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	live := func(b Ban) bool { return b.Until.IsZero() || now.Before(b.Until) }
	for _, b := range l.bans {
		if !live(b) {
			continue
		}
		if (b.Kind == BanClientID && b.Value == clientID) || (b.Kind == BanUsername && username != "" && b.Value == username) {
			return b, true
		}
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		for i, p := range l.prefix {
			if b := l.bans[l.addr[i]]; live(b) && p.Contains(addr) {
				return b, true
			}
		}
	}
	return Ban{}, false
}

func (s *Server) loadBans() error {
	raw, err := s.store.Record(storage.RecordMeta, bansKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read bans: %w", err)
	}
	var bans []Ban
	if err := json.Unmarshal(raw, &bans); err != nil {
		return fmt.Errorf("decode bans: %w", err)
	}
	s.bans.mu.Lock()
	defer s.bans.mu.Unlock()
	s.bans.bans = bans
	s.bans.rebuildLocked()
	return nil
}

// saveBansLocked writes the ban list, dropping expired bans.
func (s *Server) saveBansLocked(now time.Time) error {
	s.bans.bans = slices.DeleteFunc(s.bans.bans, func(b Ban) bool { return !b.Until.IsZero() && !now.Before(b.Until) })
	raw, err := json.Marshal(s.bans.bans)
	if err != nil {
		return err
	}
	b := s.store.NewBatch()
	defer b.Close()
	b.PutRecord(storage.RecordMeta, bansKey, raw)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("store bans: %w", err)
	}
	s.bans.rebuildLocked()
	return nil
}

// AddBan adds or replaces a ban, stores it, and disconnects the connected
// clients it matches (MQTT 5.0: DISCONNECT 0x98).
func (s *Server) AddBan(ban Ban) error {
	switch ban.Kind {
	case BanClientID, BanUsername:
		if ban.Value == "" {
			return fmt.Errorf("node: a %s ban needs a value", ban.Kind)
		}
	case BanAddress:
		if _, err := parseAddrOrPrefix(ban.Value); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	default:
		return fmt.Errorf("node: unknown ban kind %q: use client_id, username or address", ban.Kind)
	}
	s.bans.mu.Lock()
	s.bans.bans = slices.DeleteFunc(s.bans.bans, func(b Ban) bool { return b.Kind == ban.Kind && b.Value == ban.Value })
	s.bans.bans = append(s.bans.bans, ban)
	err := s.saveBansLocked(time.Now())
	s.bans.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.Info("ban added", "kind", ban.Kind, "value", ban.Value, "until", ban.Until, keyReason, ban.Reason)
	s.kickBanned()
	return nil
}

// RemoveBan removes a ban; removing a missing ban is not an error.
func (s *Server) RemoveBan(kind BanKind, value string) error {
	s.bans.mu.Lock()
	defer s.bans.mu.Unlock()
	s.bans.bans = slices.DeleteFunc(s.bans.bans, func(b Ban) bool { return b.Kind == kind && b.Value == value })
	return s.saveBansLocked(time.Now())
}

// Bans returns the bans in force.
func (s *Server) Bans() []Ban {
	now := time.Now()
	s.bans.mu.RLock()
	defer s.bans.mu.RUnlock()
	var out []Ban
	for _, b := range s.bans.bans {
		if b.Until.IsZero() || now.Before(b.Until) {
			out = append(out, b)
		}
	}
	return out
}

// kickBanned disconnects connected clients that a ban now matches.
func (s *Server) kickBanned() {
	now := time.Now()
	for _, ss := range s.reg.all() {
		ss.mu.Lock()
		c := ss.mu.conn
		ss.mu.Unlock()
		if c == nil {
			continue
		}
		if _, banned := s.bans.match(c.clientID, c.username(), hostOf(c.remote), now); banned {
			s.log.Info("banned client disconnected", keyClientID, c.clientID, keyRemote, c.remote)
			c.kick(packet.ReasonAdministrativeAction)
		}
	}
}
