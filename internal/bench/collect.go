package bench

import "time"

// result gathers the counters of every client into a Result. It must run
// after every goroutine of the run has stopped.
func (r *run) result(stoppedBy string, phase phaseTimes, toolCPU time.Duration) *Result {
	cfg := &r.cfg
	protocol := "3.1.1"
	if cfg.Version == Version5 {
		protocol = "5.0"
	}
	res := &Result{
		Scenario:     cfg.Scenario,
		Protocol:     protocol,
		QoS:          int(cfg.QoS),
		Publishers:   len(r.pubs),
		Subscribers:  len(r.subs),
		PayloadBytes: cfg.PayloadSize,
		TargetRate:   cfg.Rate,
		CleanSession: !cfg.Persistent,
		StoppedBy:    stoppedBy,
		PublishSecs:  phase.publish.Seconds(),
		DrainSecs:    phase.drain.Seconds(),
		ToolCPU:      toolCPU.Seconds(),
	}

	var maxLag time.Duration
	for _, p := range r.pubs {
		res.Sent += p.sent.Load()
		res.Confirmed += p.confirmed.Load()
		res.Rejected += p.rejected.Load()
		res.Unexpected += p.unexpected.Load()
		res.Inflight = max(res.Inflight, p.window)
		maxLag = max(maxLag, p.maxLag)
	}
	res.MaxLagMillis = float64(maxLag) / float64(time.Millisecond)

	var latency histogram
	for j, s := range r.subs {
		received := s.received.Load()
		res.Received += received
		if r.topo.shareGroup == "" {
			expected := r.expected(j)
			res.Expected += expected
			if received < expected {
				res.Lost += expected - received
				res.LossySubs++
			}
		}
		res.Duplicates += s.counts.duplicates
		res.OutOfOrder += s.counts.outOfOrder
		res.Stale += s.stale
		res.Foreign += s.foreign
		latency.merge(&s.latency)
	}
	res.Latency = summarize(&latency)

	// A shared group expects each message once in total. A message that two
	// members both received counts twice in Received, and the excess is
	// reported as GroupDuplicates: no single member can tell.
	if r.topo.shareGroup != "" {
		res.Expected = res.Sent
		if res.Received < res.Expected {
			res.Lost = res.Expected - res.Received
		} else {
			res.GroupDuplicates = res.Received - res.Expected
		}
		res.ShareGroup = r.topo.shareGroup
	}
	res.SubAddr = cfg.SubAddr

	if secs := phase.publish.Seconds(); secs > 0 {
		res.SendRate = float64(res.Sent) / secs
		res.ReceiveRate = float64(phase.receivedAtStop) / secs
	}
	return res
}

// brokerUsage computes the broker's resource use between two samples.
func brokerUsage(pid int, before, after procSample, received uint64) *BrokerUsage {
	u := &BrokerUsage{
		PID:            pid,
		CPUSeconds:     (after.cpu - before.cpu).Seconds(),
		RSSBeforeBytes: before.rssBytes,
		RSSAfterBytes:  after.rssBytes,
	}
	if received > 0 {
		u.CPUSecondsPerMillion = u.CPUSeconds / (float64(received) / 1e6)
	}
	return u
}
