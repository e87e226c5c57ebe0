package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
)

// This file is the node's operations API: what the admin endpoints and
// `starling ctl` read and change. Every method is safe for concurrent use and
// takes locks one session at a time, so it never stalls the whole node.

// ClientInfo describes one session and its connection, if any.
type ClientInfo struct {
	ClientID       string    `json:"client_id"`
	Connected      bool      `json:"connected"`
	Username       string    `json:"username,omitempty"`
	Remote         string    `json:"remote,omitempty"`
	Listener       string    `json:"listener,omitempty"`
	Version        byte      `json:"protocol_version"`
	Persistent     bool      `json:"persistent"`
	ExpiryInterval uint32    `json:"session_expiry_interval"`
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	Subscriptions  int       `json:"subscriptions"`
	Queued         int       `json:"queued"`
	Inflight       int       `json:"inflight"`
}

// SubscriptionInfo is one subscription of a session.
type SubscriptionInfo struct {
	ClientID          string `json:"client_id"`
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	SubscriptionID    uint32 `json:"subscription_id,omitempty"`
}

// RetainedInfo is one retained message.
type RetainedInfo struct {
	Topic   string `json:"topic"`
	QoS     byte   `json:"qos"`
	Size    int    `json:"size"`
	Payload []byte `json:"payload"`
}

// Errors of the operations API, to check with errors.Is.
var (
	ErrNoSession  = errors.New("node: no session for this client id")
	ErrNoRetained = errors.New("node: no retained message on this topic")
)

// Name returns the node's name: Config.NodeName, or the host name when that
// is empty.
func (s *Server) Name() string { return s.name }

// StartedAt returns when Start bound the listeners.
func (s *Server) StartedAt() time.Time { return s.startedAt }

// CheckAccess reports whether a user, connected as clientID through a
// listener that is (or is not) loopback-only, may publish to (subscribe is
// false) or subscribe to (subscribe is true) topic, with the node's own rules
// and modes. An empty username means an anonymous client.
func (s *Server) CheckAccess(ctx context.Context, username, clientID string, loopback, subscribe bool, topic string, qos byte, retain bool) (bool, error) {
	id := auth.Identity{Method: auth.MethodAnonymous}
	if username != "" {
		u, err := s.sec.store.User(ctx, username)
		if err != nil {
			return false, err
		}
		id = auth.IdentityOfUser(u, auth.MethodPassword)
	}
	a := &access{sec: s.sec, policy: s.sec.authorizer.Policy(id, clientID), loopback: loopback}
	if subscribe {
		return a.maySubscribe(topic, qos), nil
	}
	return a.mayPublish(topic, qos, retain), nil
}

func (ss *session) infoLocked() ClientInfo {
	info := ClientInfo{
		ClientID:       ss.id,
		Version:        ss.mu.version,
		Persistent:     ss.persistent.Load(),
		ExpiryInterval: ss.mu.expiry,
		DisconnectedAt: ss.mu.disconnectedAt,
		Subscriptions:  len(ss.mu.subs),
		Queued:         ss.mu.queue.len() + ss.mu.retainedQ.len(),
		Inflight:       len(ss.mu.inflight),
	}
	if c := ss.mu.conn; c != nil {
		info.Connected = true
		info.Username = c.username()
		info.Remote = c.remote
		info.Listener = c.ls.name
		info.DisconnectedAt = time.Time{}
	}
	return info
}

// Clients returns the sessions whose client id contains match (all when
// empty), sorted by client id, at most limit of them (no limit when 0).
func (s *Server) Clients(match string, limit int) []ClientInfo {
	var out []ClientInfo
	for _, ss := range s.reg.all() {
		if match != "" && !strings.Contains(ss.id, match) {
			continue
		}
		ss.mu.Lock()
		out = append(out, ss.infoLocked())
		ss.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b ClientInfo) int { return cmp.Compare(a.ClientID, b.ClientID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Client returns one session.
func (s *Server) Client(clientID string) (ClientInfo, error) {
	ss := s.reg.get(clientID)
	if ss == nil {
		return ClientInfo{}, fmt.Errorf("%w: %q", ErrNoSession, clientID)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.infoLocked(), nil
}

// Kick closes the client's connection with DISCONNECT 0x98 (Administrative
// action) for MQTT 5.0. The session stays, as after any disconnection; its
// will is published. It reports whether a connection was closed.
func (s *Server) Kick(clientID string) bool {
	ss := s.reg.get(clientID)
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	c := ss.mu.conn
	ss.mu.Unlock()
	if c == nil {
		return false
	}
	s.log.Info("client disconnected by an administrator", keyClientID, clientID, keyRemote, c.remote)
	c.kick(packet.ReasonAdministrativeAction)
	<-c.doneChan()
	return true
}

// DeleteSession closes the client's connection, if any, and discards its
// session: subscriptions, queued messages and stored state.
func (s *Server) DeleteSession(clientID string) error {
	stripe := s.reg.lock(clientID)
	stripe.Lock()
	defer stripe.Unlock()
	ss := s.reg.get(clientID)
	if ss == nil {
		return fmt.Errorf("%w: %q", ErrNoSession, clientID)
	}
	s.waitForOldConnection(ss)
	ss.mu.Lock()
	if ss.mu.ended {
		ss.mu.Unlock()
		return nil
	}
	will, orphans := ss.endSessionLocked(ss.persistent.Load())
	ss.mu.Unlock()
	s.publishWill(ss.id, will)
	s.redeliverShared(ss.id, orphans)
	s.log.Info("session deleted by an administrator", keyClientID, clientID)
	return nil
}

// SubscriptionsOf returns a session's subscriptions, sorted by filter.
func (s *Server) SubscriptionsOf(clientID string) ([]SubscriptionInfo, error) {
	ss := s.reg.get(clientID)
	if ss == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSession, clientID)
	}
	ss.mu.Lock()
	out := make([]SubscriptionInfo, 0, len(ss.mu.subs))
	for _, sub := range ss.mu.subs {
		out = append(out, SubscriptionInfo{ClientID: clientID, Filter: sub.filter, QoS: sub.opts.QoS, NoLocal: sub.opts.NoLocal,
			RetainAsPublished: sub.opts.RetainAsPublished, SubscriptionID: sub.subID})
	}
	ss.mu.Unlock()
	slices.SortFunc(out, func(a, b SubscriptionInfo) int { return cmp.Compare(a.Filter, b.Filter) })
	return out, nil
}

// Retained returns the retained messages matching a topic filter (all for
// "#" or empty), sorted by topic, at most limit of them (no limit when 0).
func (s *Server) Retained(filter string, limit int) ([]RetainedInfo, error) {
	if filter == "" {
		filter = "#"
	}
	if err := router.ValidateFilter(filter, 0, 0); err != nil {
		return nil, err
	}
	var out []RetainedInfo
	s.retained.Match(filter, func(topic string, m *message) bool {
		out = append(out, RetainedInfo{Topic: topic, QoS: m.qos, Size: len(m.payload), Payload: m.payload})
		return limit == 0 || len(out) < limit
	})
	slices.SortFunc(out, func(a, b RetainedInfo) int { return cmp.Compare(a.Topic, b.Topic) })
	return out, nil
}

// DeleteRetained removes the retained message of a topic, durably.
func (s *Server) DeleteRetained(topic string) error {
	if _, ok := s.retained.Get(topic); !ok {
		return fmt.Errorf("%w: %q", ErrNoRetained, topic)
	}
	b := s.store.NewBatch()
	defer b.Close()
	b.DeleteRetained(topic)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("delete retained %q: %w", topic, err)
	}
	s.applyRetained([]retainedUpdate{{topic: topic}})
	return nil
}

// Publish publishes a message as the node itself, for tests and operations.
// It bypasses the ACL rules but not the topic rules, and returns once the
// message is durable where it has to be.
func (s *Server) Publish(topic string, payload []byte, qos byte, retain bool) error {
	lim := s.lim()
	if err := router.ValidateTopicName(topic, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
		return err
	}
	if qos > 2 {
		return fmt.Errorf("node: QoS %d is invalid: use 0, 1 or 2", qos)
	}
	msg := &message{topic: topic, payload: payload, qos: qos, retain: retain, publisher: "$admin"}
	return s.publishMessage(msg)
}

// publishMessage publishes a message that did not come from a client's
// PUBLISH (a will, an administrator's message): it stores what must be
// durable, then delivers.
func (s *Server) publishMessage(msg *message) error {
	b := s.store.NewBatch()
	defer b.Close()
	var updates []retainedUpdate
	if msg.retain {
		if code := s.stageRetained(msg, b, &updates); code != packet.ReasonSuccess {
			return fmt.Errorf("node: retained store is full; %q not retained", msg.topic)
		}
	}
	var fw forwards
	targets := s.route(msg, b, nil, &fw)
	if !b.Empty() {
		if err := b.Commit(); err != nil {
			s.stats.storageErrors.Add(1)
			fw.release(s.cluster, false)
			return fmt.Errorf("store message on %q: %w", msg.topic, err)
		}
	}
	fw.release(s.cluster, true)
	s.applyRetained(updates)
	for _, t := range targets {
		t.sess.deliver(t.d)
	}
	return nil
}
