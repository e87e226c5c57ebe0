package bench

import "encoding/binary"

// HeaderSize is the number of payload bytes the stamp takes, and so the
// smallest payload size a run accepts.
const HeaderSize = 20

// stamp is the header at the start of every payload, big endian:
//
//	bytes 0-7    send time, nanoseconds since the run's epoch (monotonic clock)
//	bytes 8-11   sequence number, from 0 per publisher
//	bytes 12-15  publisher index
//	bytes 16-19  run tag, random per run
//
// The send time is relative to a monotonic epoch shared by the publishers and
// subscribers of one process, so latencies do not depend on wall clock steps.
// The run tag lets a subscriber with a persistent session tell messages
// queued by an earlier run from this run's messages.
type stamp struct {
	sentAt    int64
	sequence  uint32
	publisher uint32
	runTag    uint32
}

// putStamp writes s into the first HeaderSize bytes of b.
func putStamp(b []byte, s stamp) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint64(b[0:], uint64(s.sentAt))
	binary.BigEndian.PutUint32(b[8:], s.sequence)
	binary.BigEndian.PutUint32(b[12:], s.publisher)
	binary.BigEndian.PutUint32(b[16:], s.runTag)
}

// readStamp decodes the stamp at the start of b. It returns false when b is
// shorter than HeaderSize, which means the message was not sent by a run of
// this tool.
func readStamp(b []byte) (stamp, bool) {
	if len(b) < HeaderSize {
		return stamp{}, false
	}
	return stamp{
		sentAt:    int64(binary.BigEndian.Uint64(b[0:])),
		sequence:  binary.BigEndian.Uint32(b[8:]),
		publisher: binary.BigEndian.Uint32(b[12:]),
		runTag:    binary.BigEndian.Uint32(b[16:]),
	}, true
}

// newPayload returns a payload buffer of size bytes whose bytes after the
// stamp hold a fixed printable pattern, so that captures are easy to read.
func newPayload(size int) []byte {
	b := make([]byte, size)
	for i := HeaderSize; i < size; i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
