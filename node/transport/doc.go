// Package transport owns the client listeners of a node. It binds the tcp,
// tls, ws and wss listener URLs and hands the node net.Conns that carry the
// plain MQTT byte stream. Each Conn also carries the client's address, the
// transport and the verified client certificate chain.
//
// On the way it protects the node at the network level: CIDR allow and
// deny lists, PROXY protocol versions 1 and 2 from trusted proxies only, a
// maximum of open connections, a token-bucket rate limit on new ones, and
// deadlines on every step that waits for the client before MQTT starts
// (PROXY header, TLS handshake, WebSocket upgrade). A rejected connection
// is closed and counted by reason in Stats, never returned by Accept.
//
// It does not own MQTT: packets, CONNECT timeouts, keepalive and
// authentication are the node's. The TLS configuration, certificate
// reloading and every client-certificate check (chain, validity,
// revocation) are package tlsutil's. A tls and a wss listener use the same
// tlsutil configuration, so they reject the same certificates.
//
// # Goroutines
//
// A Listener owns one accept goroutine and one handshake goroutine per
// connection that needs a PROXY header, a TLS handshake or a WebSocket
// upgrade. Plain TCP connections without PROXY protocol need none: the
// accept goroutine queues them itself. Handshake goroutines are bounded in
// number by MaxConnections, because each holds a connection slot, and in
// time by the Config timeouts. Prepared connections wait for Accept in a
// bounded queue. When it is full, the accept goroutine and handshake
// goroutines wait on it, so a node that stops calling Accept pushes back
// on the kernel's listen backlog. Listener.Close closes the socket, closes
// the connections in handshakes, waits for every goroutine and closes the
// queued connections. The WebSocket adapter starts no goroutine: control
// frames are answered inside Read.
//
// # Lock order
//
// Listener.mu is a leaf. wsConn takes readMu or writeMu, never both, and
// gorilla/websocket's internal write lock beneath writeMu.
//
// # Limitations
//
//   - The client address of a ws or wss connection behind an HTTP reverse
//     proxy is the proxy's: X-Forwarded-For and Forwarded headers are
//     ignored, because they are easy to forge and the PROXY protocol covers
//     the same need.
//   - PROXY protocol version 2 TLVs are skipped, and a header longer than
//     4 KiB is rejected.
//   - WSMaxMessageSize applies to whole WebSocket messages. A client that
//     packs several maximum-size MQTT packets into one message is rejected
//     although each packet is within the node's limit.
//   - WebSocket permessage-deflate compression is not offered.
//   - Over WebSocket an expired read deadline ends the connection,
//     because gorilla/websocket treats timeouts as permanent, while a TCP
//     or TLS read can be retried. An expired write deadline ends TLS and
//     WebSocket connections alike.
package transport
