package node

import (
	"strconv"
	"time"
)

// Version is the broker version reported in $SYS/broker/version; cmd sets it.
var Version = "dev"

// sysLoop publishes the $SYS/broker topics every interval until stop closes.
// The topics follow Mosquitto's names where one exists, so existing dashboards
// work. They are retained in memory only: the values are regenerated after a
// restart, so writing them to disk would only cost I/O.
func (s *Server) sysLoop(interval time.Duration, stop <-chan struct{}) {
	defer s.wg.Done()
	start := time.Now()
	s.publishSys("$SYS/broker/version", "starling "+Version)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		s.publishSysStats(start)
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

func (s *Server) publishSysStats(start time.Time) {
	st := s.Stats()
	in := st.MessagesIn[0] + st.MessagesIn[1] + st.MessagesIn[2]
	out := st.MessagesOut[0] + st.MessagesOut[1] + st.MessagesOut[2]
	values := []struct {
		topic string
		value string
	}{
		{"$SYS/broker/uptime", strconv.Itoa(int(time.Since(start).Seconds())) + " seconds"},
		{"$SYS/broker/clients/connected", strconv.FormatInt(st.Connected, 10)},
		{"$SYS/broker/clients/total", strconv.FormatInt(st.Sessions, 10)},
		{"$SYS/broker/clients/disconnected", strconv.FormatInt(st.Sessions-st.Connected, 10)},
		{"$SYS/broker/messages/received", strconv.FormatUint(in, 10)},
		{"$SYS/broker/messages/sent", strconv.FormatUint(out, 10)},
		{"$SYS/broker/publish/messages/dropped", strconv.FormatUint(st.Dropped(), 10)},
		{"$SYS/broker/messages/stored", strconv.FormatInt(st.Queued+st.Inflight, 10)},
		{"$SYS/broker/subscriptions/count", strconv.FormatInt(st.Subscriptions, 10)},
		{"$SYS/broker/retained messages/count", strconv.FormatInt(st.Retained, 10)},
		{"$SYS/broker/bytes/received", strconv.FormatUint(st.BytesIn, 10)},
		{"$SYS/broker/bytes/sent", strconv.FormatUint(st.BytesOut, 10)},
	}
	for _, v := range values {
		s.publishSys(v.topic, v.value)
	}
}

// publishSys sets a retained QoS 0 $SYS message and delivers it to current
// subscribers, without a storage write.
func (s *Server) publishSys(topic, value string) {
	msg := &message{topic: topic, payload: []byte(value), retain: true}
	s.retained.Set(topic, msg)
	b := s.store.NewBatch() // stays empty: QoS 0 deliveries are never written
	defer b.Close()
	for _, t := range s.route(msg, b, nil, nil) {
		t.sess.deliver(t.d)
	}
}
