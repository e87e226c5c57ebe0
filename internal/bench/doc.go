// Package bench is the load generator behind `starling bench`: it connects
// MQTT 3.1.1 or 5.0 publishers and subscribers to one broker, publishes
// stamped messages for a bounded time or count, and measures throughput,
// loss, duplicates, ordering and latency. The subscribers may connect to a
// second broker (Config.SubAddr) for cross-node runs. Two scenarios publish nothing: storm opens many
// connections at once and measures accepted connections per second, and
// idle holds many connections open and measures the broker's resident
// memory per connection (connections.go), optionally after asking the
// broker to collect its garbage (Config.BrokerGCURL, brokergc.go).
//
// It owns the clients of a run, a minimal MQTT client codec (wire.go), the
// payload stamp (payload.go), the statistics (histogram.go, sequence.go) and
// the /proc sampling of a broker process (procstat.go). It does not own the
// broker: it never starts, stops or configures one.
//
// # Client
//
// The clients speak MQTT through their own small codec instead of
// paho.mqtt.golang or the broker's node/packet. On a 2-core machine, ten
// paho pairs at QoS 1 reached about half the throughput of these clients at
// about 1.5 times the CPU per message (measured against Mosquitto 2.0.11
// on loopback, see docs/benchmarks.md), and node/packet allocates a buffer per packet read. An
// independent codec also keeps a codec bug shared by broker and tool from
// hiding itself. The hot path allocates nothing: payload and header buffers
// are reused, reads peek into a bufio.Reader, and statistics are arrays.
//
// Each publisher has two goroutines: a sender, and a reader for PUBACK,
// PUBREC, PUBCOMP and PINGRESP. Each subscriber has one reader, which also
// writes the acknowledgements. Run starts all of them and waits for all of
// them; readers stop when Run closes their connections and senders when the
// publishing context ends.
//
// # Measurements
//
// A publisher writes a stamp (send time, sequence number, publisher index,
// run tag) at the start of every payload. A subscriber tracks the sequence
// numbers of each publisher it hears to count duplicates and out-of-order
// deliveries, and the latency from the send time to the read of the packet.
// Loss is, per subscriber, the messages its publishers sent minus the first
// deliveries it received, so for QoS 1 and 2 a message still in flight when
// the drain phase ends counts as lost.
//
// # Limits
//
//   - Publishers and subscribers run in one process. When the broker is
//     local, that process competes with it for the cores, so the report
//     includes the tool's own CPU time.
//   - No reconnects: a client whose connection fails ends the publishing
//     phase, and the result lists the error.
//   - No WebSocket, retained messages or topic aliases. TLS (Config.TLS)
//     applies to every connection of a run; each is a full handshake, since
//     the clients keep no session cache.
//   - In the shared scenario loss and duplicates across members are
//     counted for the group as a whole, so one lost message and another
//     that reached two members cancel out.
//   - storm and idle spread their connections over source addresses in
//     127.1.0.0/16 only when the broker is on an IPv4 loopback address.
//     Otherwise one source address limits a run to about 28,000
//     connections per broker address.
//   - Without a cluster, a run with SubAddr against two brokers only checks
//     that both accept the clients: every message counts as lost.
//   - Latency includes the time a message waits in the tool's write buffer
//     behind earlier messages of the same window and in the reader before it
//     is parsed, which at saturation can be a large part of it.
package bench
