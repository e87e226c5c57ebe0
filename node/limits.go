package node

import (
	"fmt"
	"reflect"
)

// lim returns the limits in force.
func (s *Server) lim() *Limits { return s.limits.Load() }

// ReloadLimits puts new limits in force while the node runs, for a SIGHUP or
// the admin API. The limits a client was told at CONNECT (Maximum Packet
// Size, Receive Maximum, Topic Alias Maximum) and the disk limit of the
// open store keep their running values: they are returned by their
// configuration keys, to be reported as needing a restart. The others apply
// from the next use: a queue limit to the next message queued, the inflight
// window to the next connection.
func (s *Server) ReloadLimits(next Limits) (restart []string, err error) {
	next.setDefaults()
	if err := next.validate(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	cur := s.lim()
	keep := func(key string, dst, running any) {
		d, r := reflect.ValueOf(dst).Elem(), reflect.ValueOf(running)
		if !d.Equal(r) {
			restart = append(restart, key)
			d.Set(r)
		}
	}
	keep("limits.max_packet_size", &next.MaxPacketSize, cur.MaxPacketSize)
	keep("limits.receive_maximum", &next.ReceiveMaximum, cur.ReceiveMaximum)
	keep("limits.max_topic_alias", &next.MaxTopicAlias, cur.MaxTopicAlias)
	keep("limits.max_disk_bytes", &next.MaxDiskBytes, cur.MaxDiskBytes)
	if next != *cur {
		s.log.Info("limits reloaded", "max_inflight", next.MaxInflight, "max_queued_messages", next.MaxQueuedMessages,
			"max_queued_bytes", next.MaxQueuedBytes, "max_subscriptions_per_client", next.MaxSubscriptionsPerClient)
	}
	s.limits.Store(&next)
	return restart, nil
}
