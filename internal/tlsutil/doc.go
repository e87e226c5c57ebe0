// Package tlsutil builds the TLS configurations of Starling's client
// listeners (tls and wss) and of the peer port between nodes.
//
// It owns the TLS versions and cipher suites, and the loading and reloading
// of certificates, keys, CA bundles and certificate revocation lists (CRLs).
// It verifies client certificates against them and checks that a peer
// certificate names the node it claims to be (VerifyPeerName). It does not
// own listeners, sockets or authentication: a listener wraps its
// net.Listener with the *tls.Config that ServerConfig returns, and node/auth
// decides what a verified client certificate is allowed to do.
//
// # One check for every listener
//
// Client certificates are checked inside the *tls.Config itself: the chain
// and validity period by crypto/tls against the CA bundle, and revocation and
// the optional identity check in VerifyConnection. A tls listener and a wss
// listener that share a Config therefore reject the same certificates, and
// VerifyConnection also runs on resumed sessions, so a certificate revoked
// after its session ticket was issued is rejected on resumption too.
//
// # Reloading
//
// A Reloader owns one set of files and one polling goroutine. It rereads the
// files every ReloadInterval, or on Reload. It swaps in new material only when
// every file parses and the key matches the certificate. Otherwise it keeps
// the material it has, counts the failure and logs it at Error once per
// distinct failure. Handshakes read the current material through an atomic
// pointer, so a swap never blocks a handshake and connections already
// established keep the certificate they negotiated.
//
// Lock order inside a Reloader: reloadMu, then mu. Handshakes take neither.
//
// # Limitations
//
// A CRL must be signed by a CA in the configured CA file; CRLs of
// intermediate CAs that are not in the file are rejected at load. A CRL whose
// next update time has passed is still used and logged at Warn, because
// rejecting every client when an operator forgets to refresh a CRL would be
// an outage of its own. OCSP is not supported.
package tlsutil
