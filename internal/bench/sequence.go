package bench

// reorderWindow is how many sequence numbers below the highest one seen a
// stream remembers. A message that arrives later than that cannot be checked
// for duplication (see delivery).
const reorderWindow = 1024

// delivery classifies one received message of a stream.
type delivery int

const (
	// deliveryInOrder is a first delivery with a higher sequence number than
	// every earlier one. Gaps before it are loss, not disorder.
	deliveryInOrder delivery = iota

	// deliveryLate is a first delivery with a lower sequence number than an
	// earlier one: MQTT orders messages per publisher, topic and QoS, so this
	// is an ordering violation.
	deliveryLate

	// deliveryDuplicate is a sequence number that was delivered before.
	deliveryDuplicate

	// deliveryTooOld is more than reorderWindow below the highest sequence
	// number seen. It is out of order for certain, but it may also be a
	// duplicate, and the stream counts it as a first, late delivery.
	deliveryTooOld
)

// stream tracks the sequence numbers that one subscriber received from one
// publisher. The zero value is an empty stream; it allocates nothing.
type stream struct {
	started bool
	highest uint32
	seen    [reorderWindow / 64]uint64 // bit s%reorderWindow for s in (highest-reorderWindow, highest]
}

// record classifies sequence number seq and remembers it.
func (s *stream) record(seq uint32) delivery {
	if !s.started {
		s.started = true
		s.highest = seq
		s.mark(seq)
		return deliveryInOrder
	}

	if seq > s.highest {
		s.advance(seq)
		return deliveryInOrder
	}

	behind := s.highest - seq
	if behind >= reorderWindow {
		return deliveryTooOld
	}
	if s.isMarked(seq) {
		return deliveryDuplicate
	}
	s.mark(seq)
	return deliveryLate
}

// advance moves the window up to seq: the bits of the sequence numbers
// between the old highest and seq are cleared, because those numbers have not
// arrived yet, and seq is marked.
func (s *stream) advance(seq uint32) {
	if seq-s.highest >= reorderWindow {
		s.seen = [reorderWindow / 64]uint64{}
	} else {
		for n := s.highest + 1; n != seq; n++ {
			s.unmark(n)
		}
	}
	s.highest = seq
	s.mark(seq)
}

func (s *stream) mark(seq uint32) {
	i := seq % reorderWindow
	s.seen[i/64] |= 1 << (i % 64)
}

func (s *stream) unmark(seq uint32) {
	i := seq % reorderWindow
	s.seen[i/64] &^= 1 << (i % 64)
}

func (s *stream) isMarked(seq uint32) bool {
	i := seq % reorderWindow
	return s.seen[i/64]&(1<<(i%64)) != 0
}

// deliveryCounts are the per-subscriber totals of stream classifications.
type deliveryCounts struct {
	unique     uint64 // first deliveries, in order or late
	duplicates uint64
	outOfOrder uint64 // late and too-old deliveries
}

func (c *deliveryCounts) add(d delivery) {
	switch d {
	case deliveryInOrder:
		c.unique++
	case deliveryLate, deliveryTooOld:
		c.unique++
		c.outOfOrder++
	case deliveryDuplicate:
		c.duplicates++
	}
}
