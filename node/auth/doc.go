// Package auth authenticates MQTT clients and authorizes what they publish
// and subscribe to. It is a library: it opens no sockets and starts no
// goroutines except the Verifier's workers and the JWTAuthenticator's key
// file poller, each stopped by its Close.
//
// It owns:
//
//   - Password hashes: HashPassword and Verify for argon2id and
//     PBKDF2-HMAC-SHA512, verification of imported bcrypt hashes, and the
//     PHC string form (Credentials.Encode, ParseCredentials).
//   - SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored credential
//     (ScramCredential: salt, iterations, StoredKey, ServerKey) kept beside
//     the password hash, and ScramServer, the server side of one exchange,
//     for MQTT 5.0 enhanced authentication.
//   - Authentication: the Authenticator interface, a Chain per listener
//     (Listeners), and three authenticators: PasswordAuthenticator,
//     CertAuthenticator (user name from the certificate's CN or a SAN) and
//     Anonymous. Errors map to CONNACK reason codes with ConnectReason.
//   - Verifier: a bounded worker pool for password hashing with a short
//     cache of successes, so a reconnect storm neither exhausts memory nor
//     stalls accepts.
//   - Authorization: ACL rules in users and roles, groups of roles, global
//     rules with a Subject (GlobalRule), and the Authorizer, which turns an
//     Identity into a Policy with CanPublishMsg, CanSubscribeQoS and the
//     older CanPublish, CanPublishWill and CanSubscribe.
//     SubscribeDeniedReason and PublishDenied give the reason codes the
//     node sends on a denial.
//   - The Store interface for users, groups and roles, RuleStore for the
//     global rule list, and MemStore, which implements both.
//
// It does not own the network, TLS (the node verifies the client's chain
// and passes it in Request.CertChain), logging, or the persistent and
// replicated storage of records: the storage and cluster packages provide
// Store implementations. The code that writes groups, roles or global rules
// must call Authorizer.Reload afterwards.
//
// # Secrets
//
// No error, String or GoString of this package contains a password, a
// password hash, a SCRAM key or a cache key; Credentials and
// ScramCredential print redacted, so a User printed with %v is safe to log.
// Encode returns the real stored form and is for storage only. The caller
// owns Request.Password; the Verifier works on its own copy and zeroes it
// after use. The PBKDF2 functions of crypto/pbkdf2 take the password as a
// string, so the copy they make cannot be zeroed.
//
// # Password cost
//
// One verification, measured with BenchmarkVerify (go test -bench
// 'BenchmarkVerify$' -benchtime=10x) on a 2-vCPU Intel Xeon VM with Go
// 1.26. Other jobs shared the machine (load average 8 to 16), so the ranges
// span two runs and are upper bounds rather than exact figures.
//
//	algorithm and parameters               time per check   memory per check
//	argon2id t=2 m=19 MiB p=1 (default)    25-27 ms         19 MiB
//	argon2id t=1 m=64 MiB p=1 (RFC 9106)   52-59 ms         64 MiB
//	argon2id t=3 m=12 MiB p=1              22 ms            12 MiB
//	PBKDF2-SHA512 i=210,000                108-121 ms       1.4 KB
//	PBKDF2-SHA512 i=100,000                53-71 ms         1.4 KB
//	bcrypt cost 10 (imports)               67-134 ms        5 KB
//	bcrypt cost 12 (imports)               257-342 ms       5 KB
//	SCRAM credential, i=4096 (at passwd)   0.7-0.8 ms       2 KB
//
// The default is argon2id t=2, m=19 MiB, p=1, OWASP's recommended minimum.
// The Verifier runs one hash per worker and GOMAXPROCS workers, so the
// memory for hashing is bounded by GOMAXPROCS times MemoryKiB: 38 MiB on
// this machine, about 1.2 GiB on 64 cores.
//
// A storm of 5,000 simultaneous connects by 100 distinct users
// (BenchmarkVerifier_Storm, same machine and load) authenticated every
// client in 2.4 to 2.5 s with 100 hashes: the other 4,900 requests waited
// for an identical hash already in flight. Later reconnects within
// VerifierConfig.CacheTTL cost one HMAC (about 0.35 µs,
// BenchmarkVerifier_CacheHit). Without the cache and sharing, the same
// storm would need 5,000 hashes, over a minute of CPU on two cores.
//
// # Rules
//
// A rule's topic pattern is a topic filter whose literal levels may contain
// %c (client id) and %u (user name). Substitution happens per level, after
// the pattern is split, so an identity is always literal text: a client id
// "+" or "#" matches only a topic level spelled that way, never any level
// (the flaw of CVE-2017-7650). An identity that is empty or contains '/'
// cannot fill one level; an allow rule that uses it matches nothing, and a
// deny rule that uses it treats that level as "+". The identity is never
// split into several levels, because a client id "site/a" would otherwise
// reach into the namespace of client "site".
//
// A connection's rule list is built in this order: the identity's own
// rules, its roles' rules, its groups' roles' rules, then the global rules
// whose Subject names the client (all, anonymous, user:NAME, group:NAME,
// role:NAME, client:PATTERN, cert:PATTERN). The list is then stably sorted
// by Rule.Priority, highest first, so with equal priorities the order above
// holds. The first rule that matches decides. When none matches,
// AuthorizerConfig.DefaultAllow decides (deny by default).
//
// A rule matches a publish when its action includes publish, its pattern
// matches the topic, the QoS is at most its MaxQoS and the retain flag
// equals its Retain, each limit only where set. A request outside a rule's
// limits skips the rule. Policy.CanSubscribeQoS explains how a wildcard
// filter is judged against the same list. The older CanPublish and
// CanSubscribe allow a request only when it would be allowed at every QoS
// and, for a publish, with either retain flag. So a caller that has not
// moved to the QoS-aware methods never gets more than the limits grant.
//
// "$SYS/..." and other "$" topics are never matched by a pattern that
// starts with a wildcard, so they need a rule of their own. A shared
// subscription "$share/{group}/{filter}" is judged on its filter alone.
//
// # Locking
//
// MemStore, Verifier and Authorizer each have one mutex, held only for map
// and list operations; none calls out while holding it. The Verifier's
// workers take the Verifier's mutex after a hash to publish the result.
// Authorizer.Reload holds its own mutex while it reads the Store, and so
// blocks only other Reloads. Policies read the Authorizer's snapshot
// through an atomic pointer and take no lock.
//
// # Limitations
//
//   - Passwords and SCRAM user names are used as their UTF-8 bytes, without
//     the SASLprep normalization RFC 7677 asks for. For ASCII they are the
//     same; a non-ASCII password typed in another Unicode normalization form
//     fails.
//   - No SCRAM-SHA-256-PLUS (channel binding). A client that asks for it
//     ("p=" flag) is rejected.
//   - The package decides only when asked. The node checks each PUBLISH,
//     SUBSCRIBE and will, and each delivery with the message's topic, so a
//     rule revoked by Reload stops deliveries on existing subscriptions. A
//     delivery above a MaxQoS introduced after the SUBSCRIBE is denied, not
//     downgraded.
//   - A client or cert subject pattern has no escape for '*', so it cannot
//     name exactly a client id or certificate name that contains '*'.
//   - A user's own Rules, Groups and Roles are copied into the Identity at
//     authentication, so changes to the user record apply at the next
//     connect. Changes to groups and roles apply at the next check after
//     Authorizer.Reload.
//   - Each Policy holds its own copy of every rule that uses %c or %u (rules
//     without variables are shared): about 100 bytes per such rule per
//     connection, an estimate.
//   - bcrypt checks only the first 72 bytes of a password, as every bcrypt
//     does; imported bcrypt users have no SCRAM credential and get
//     ErrNoScram from ScramServer.
package auth
