package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// AuthConfig configures authentication and authorization.
type AuthConfig struct {
	// Store keeps users, groups and roles. Nil means an AuthStore on the
	// node's own Pebble store.
	Store auth.Store

	// DefaultAllow is the decision when no rule matches. Default: false,
	// deny. The loopback-only listeners of a node that has no rules at all
	// allow everything, so that a first local run works out of the box.
	DefaultAllow bool

	// Verifier bounds the password hashing pool and its cache. Zero fields
	// take auth.DefaultVerifierConfig's values.
	Verifier auth.VerifierConfig

	// Throttle slows and then bans repeated failed logins.
	Throttle ThrottleConfig

	// Seed is written to the store at start, replacing records of the same
	// names, so that users, groups and roles can live in the configuration.
	Seed AuthSeed

	// JWT, when set, accepts JWT bearer tokens in the password field on
	// every listener, checked before the user store.
	JWT *auth.JWTConfig
}

// AuthSeed is a set of records that the configuration file defines.
type AuthSeed struct {
	Users  []auth.User
	Groups []auth.Group
	Roles  []auth.Role

	// Rules, when not nil, replace the stored global rule list: the file is
	// the source of truth for global rules once it names any.
	Rules []auth.GlobalRule
}

// ApplyAuthSeed writes a configuration's users, groups and roles to the store
// and makes them apply to connected clients at once.
func (s *Server) ApplyAuthSeed(ctx context.Context, seed AuthSeed) error {
	if err := s.applySeed(ctx, seed); err != nil {
		return err
	}
	return s.ReloadAuth(ctx)
}

// seedManifest names the records the configuration file wrote, so that a
// record removed from the file is removed from the store too.
type seedManifest struct {
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Roles  []string `json:"roles,omitempty"`
}

// seedManifestKey names the manifest in RecordMeta.
const seedManifestKey = "config-seed"

// applySeed writes the configured records to the store and deletes the
// records that an earlier configuration wrote and this one no longer names.
// Records created through the admin API or `starling user` are never deleted
// here.
func (s *Server) applySeed(ctx context.Context, seed AuthSeed) error {
	st := s.sec.store
	prev, err := s.loadSeedManifest()
	if err != nil {
		return err
	}
	next := seedManifest{}
	for _, g := range seed.Groups {
		if err := st.PutGroup(ctx, g); err != nil {
			return fmt.Errorf("auth.groups: %w", err)
		}
		next.Groups = append(next.Groups, g.Name)
	}
	for _, r := range seed.Roles {
		if err := st.PutRole(ctx, r); err != nil {
			return fmt.Errorf("auth.roles: %w", err)
		}
		next.Roles = append(next.Roles, r.Name)
	}
	for _, u := range seed.Users {
		if _, err := st.PutUser(ctx, u); err != nil {
			return fmt.Errorf("auth.users: %w", err)
		}
		next.Users = append(next.Users, u.Name)
	}
	for _, name := range missing(prev.Users, next.Users) {
		if err := st.DeleteUser(ctx, name); err != nil {
			return fmt.Errorf("remove user %q that the configuration no longer names: %w", name, err)
		}
		s.log.Info("user removed: no longer in the configuration", "username", name)
	}
	for _, name := range missing(prev.Groups, next.Groups) {
		if err := st.DeleteGroup(ctx, name); err != nil {
			return fmt.Errorf("remove group %q that the configuration no longer names: %w", name, err)
		}
	}
	for _, name := range missing(prev.Roles, next.Roles) {
		if err := st.DeleteRole(ctx, name); err != nil {
			return fmt.Errorf("remove role %q that the configuration no longer names: %w", name, err)
		}
	}
	if seed.Rules != nil {
		rs, ok := st.(auth.RuleStore)
		if !ok {
			return errors.New("auth.rules: the configured user store cannot hold global rules")
		}
		if err := rs.PutRules(ctx, seed.Rules); err != nil {
			return fmt.Errorf("auth.rules: %w", err)
		}
	}
	return s.saveSeedManifest(next)
}

// missing returns the names of prev that next lacks.
func missing(prev, next []string) []string {
	var out []string
	for _, name := range prev {
		if !slices.Contains(next, name) {
			out = append(out, name)
		}
	}
	return out
}

func (s *Server) loadSeedManifest() (seedManifest, error) {
	var m seedManifest
	raw, err := s.store.Record(storage.RecordMeta, seedManifestKey)
	if errors.Is(err, storage.ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read the configuration's record list: %w", err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("decode the configuration's record list: %w", err)
	}
	return m, nil
}

func (s *Server) saveSeedManifest(m seedManifest) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b := s.store.NewBatch()
	defer b.Close()
	b.PutRecord(storage.RecordMeta, seedManifestKey, raw)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("store the configuration's record list: %w", err)
	}
	return nil
}

// security is the node's authentication and authorization state.
type security struct {
	store      auth.Store
	verifier   *auth.Verifier
	authorizer *auth.Authorizer
	throttle   *throttle

	// scramSecret keys the salts made up for unknown users in SCRAM.
	scramSecret []byte

	// jwt checks bearer tokens; nil when not configured.
	jwt *auth.JWTAuthenticator

	// open is set while no user, group or role has any rule: loopback-only
	// listeners then allow everything. Recomputed by reloadRules.
	open atomic.Bool
}

func (s *Server) initSecurity() error {
	cfg := &s.cfg.Auth
	store := cfg.Store
	if store == nil {
		store = NewAuthStore(s.store)
	}
	vcfg := cfg.Verifier
	def := auth.DefaultVerifierConfig()
	setIfZero(&vcfg.Workers, def.Workers)
	setIfZero(&vcfg.QueueLen, def.QueueLen)
	setIfZero(&vcfg.CacheTTL, def.CacheTTL)
	setIfZero(&vcfg.CacheEntries, def.CacheEntries)
	verifier, err := auth.NewVerifier(vcfg)
	if err != nil {
		return fmt.Errorf("auth.verifier: %w", err)
	}
	authorizer, err := auth.NewAuthorizer(context.Background(), store, auth.AuthorizerConfig{DefaultAllow: cfg.DefaultAllow})
	if err != nil {
		verifier.Close()
		return fmt.Errorf("load ACL rules: %w", err)
	}
	secret, err := loadScramSecret(s.store)
	if err != nil {
		verifier.Close()
		return err
	}
	s.sec = &security{store: store, verifier: verifier, authorizer: authorizer, throttle: newThrottle(cfg.Throttle), scramSecret: secret}
	if cfg.JWT != nil {
		jcfg := *cfg.JWT
		if jcfg.Logger == nil {
			jcfg.Logger = s.cfg.Logger // the authenticator adds component=jwt
		}
		if s.sec.jwt, err = auth.NewJWTAuthenticator(jcfg); err != nil {
			verifier.Close()
			return fmt.Errorf("auth.jwt: %w", err)
		}
	}
	if err := s.applySeed(context.Background(), cfg.Seed); err != nil {
		s.sec.close()
		return err
	}
	return s.ReloadAuth(context.Background())
}

// close stops the security goroutines: the hashing workers and the JWT key
// poller.
func (sec *security) close() {
	sec.verifier.Close()
	if sec.jwt != nil {
		sec.jwt.Close()
	}
}

// AuthStore returns the store of users, groups and roles. After changing it,
// call ReloadAuth so that connected clients see the change.
func (s *Server) AuthStore() auth.Store { return s.sec.store }

// ReloadAuth makes changes to groups, roles and rules apply to connected
// clients at once. A user's own rules and group list apply from its next
// connection.
func (s *Server) ReloadAuth(ctx context.Context) error {
	if err := s.sec.authorizer.Reload(ctx); err != nil {
		return fmt.Errorf("reload ACL rules: %w", err)
	}
	open, err := s.noRulesConfigured(ctx)
	if err != nil {
		return err
	}
	// Tokens may carry their own rules, so a node that accepts them is
	// never open.
	s.sec.open.Store(open && s.sec.jwt == nil)
	s.refreshAccess(ctx)
	return nil
}

// refreshAccess rebuilds the rules of every connected client from the user
// store, so that a change to a user's own rules, groups or roles applies at
// once. A client whose user was removed or disabled is disconnected (MQTT
// 5.0: DISCONNECT 0x98). Anonymous and token clients keep what they have:
// their rights do not come from a user record.
func (s *Server) refreshAccess(ctx context.Context) {
	for _, ss := range s.reg.all() {
		ss.mu.Lock()
		c := ss.mu.conn
		ss.mu.Unlock()
		if c == nil {
			continue
		}
		a := c.access.Load()
		if a == nil {
			continue
		}
		username, method := a.policy.Username(), a.policy.Method()
		if username == "" || method == auth.MethodAnonymous || method == auth.MethodJWT {
			continue
		}
		u, err := s.sec.store.User(ctx, username)
		switch {
		case errors.Is(err, auth.ErrNotFound) && method == auth.MethodCertificate:
			continue // a certificate identity needs no user record
		case errors.Is(err, auth.ErrNotFound) || (err == nil && u.Disabled):
			s.log.Info("client disconnected: its user was removed or disabled", keyClientID, c.clientID, "username", username)
			c.kick(packet.ReasonAdministrativeAction)
			continue
		case err != nil:
			s.log.Error("refresh the rules of a connected client failed; it keeps its old ones", keyClientID, c.clientID, keyErr, err)
			continue
		}
		c.access.Store(s.newAccess(auth.IdentityOfUser(u, method), c.clientID, a.loopback))
	}
}

// noRulesConfigured reports whether no user or role carries a rule. Group and
// role memberships alone grant nothing, so they do not count.
func (s *Server) noRulesConfigured(ctx context.Context) (bool, error) {
	roles, err := s.sec.store.Roles(ctx)
	if err != nil {
		return false, fmt.Errorf("list roles: %w", err)
	}
	for _, r := range roles {
		if len(r.Rules) > 0 {
			return false, nil
		}
	}
	if rs, ok := s.sec.store.(auth.RuleStore); ok {
		global, err := rs.Rules(ctx)
		if err != nil {
			return false, fmt.Errorf("list global rules: %w", err)
		}
		if len(global) > 0 {
			return false, nil
		}
	}
	users, err := s.sec.store.Users(ctx)
	if err != nil {
		return false, fmt.Errorf("list users: %w", err)
	}
	for _, u := range users {
		if len(u.Rules) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// chainFor builds the authenticator chain of a listener: certificate (when
// the client presented one), password, and anonymous when the listener
// allows it.
func (s *Server) chainFor(lc *ListenerConfig, anon bool) auth.Chain {
	chain := auth.Chain{
		&auth.CertAuthenticator{Source: auth.CertSource(lc.CertIdentity), RequireClientID: lc.CertRequireClientID, Store: s.sec.store},
	}
	if s.sec.jwt != nil {
		// A password that is not a JWT falls through to the user store.
		chain = append(chain, s.sec.jwt)
	}
	chain = append(chain, &auth.PasswordAuthenticator{Store: s.sec.store, Verifier: s.sec.verifier})
	if anon {
		chain = append(chain, auth.Anonymous{})
	}
	return chain
}

// access is the authorization state of one connection: its policy, which
// also names who the client authenticated as, when its credentials expire,
// and whether the open rule applies (a loopback-only listener while no
// rules exist). The policy shares its rules with the connections of equal
// identities, so an access costs about 80 bytes.
type access struct {
	sec      *security
	policy   *auth.Policy
	expires  time.Time // auth.Identity.Expires; zero when the credentials do not expire
	loopback bool
}

// newAccess returns the access of a client that authenticated as id.
func (s *Server) newAccess(id auth.Identity, clientID string, loopback bool) *access {
	return &access{sec: s.sec, policy: s.sec.authorizer.Policy(id, clientID), expires: id.Expires, loopback: loopback}
}

// username returns the user name of the connection, "" when anonymous or
// before authentication.
func (c *conn) username() string {
	if a := c.access.Load(); a != nil {
		return a.policy.Username()
	}
	return ""
}

func (a *access) open() bool { return a.loopback && a.sec.open.Load() }

// expired reports whether the client's credentials have run out, as a JWT
// does at its "exp" plus the leeway. Every request of the connection is then
// denied, its will included, until the client reconnects with new
// credentials.
func (a *access) expired() bool {
	e := a.expires
	return !e.IsZero() && !time.Now().Before(e)
}

func (a *access) mayPublish(topic string, qos byte, retain bool) bool {
	return !a.expired() && (a.open() || a.policy.CanPublishMsg(topic, qos, retain))
}

func (a *access) mayPublishWill(w *packet.Will) bool {
	return !a.expired() && (a.open() || a.policy.CanPublishMsg(w.Topic, w.QoS, w.Retain))
}

func (a *access) maySubscribe(filter string, qos byte) bool {
	return !a.expired() && (a.open() || a.policy.CanSubscribeQoS(filter, qos))
}

// mayRead reports whether the client may receive a message on topic at qos:
// the same rule as a subscription to exactly that topic, so that a wide
// subscription never delivers a topic the rules do not grant.
func (a *access) mayRead(topic string, qos byte) bool {
	return !a.expired() && (a.open() || a.policy.CanSubscribeQoS(topic, qos))
}

// authenticate checks the credentials of a CONNECT and returns the access of
// the connection. A failed attempt is counted for throttling; an address or
// address and user name pair with many failures waits, then is banned. An
// attempt that presents no credentials at all (no user name, password or
// certificate) guesses nothing, so the throttle neither delays, bans nor
// counts it: an anonymous client is never refused for the failed logins of
// other clients at its address, which on a loopback-only listener is every
// local client.
func (c *conn) authenticate(ctx context.Context, cp *packet.Connect, certs []*x509.Certificate) (*access, error) {
	srv := c.srv
	host := hostOf(c.remote)
	throttled := cp.Username != "" || len(cp.Password) > 0 || len(certs) > 0
	if throttled {
		if err := srv.admitLogin(ctx, host, cp.Username); err != nil {
			clear(cp.Password)
			return nil, err
		}
	}

	id, err := c.ls.chain.Authenticate(ctx, auth.Request{
		ClientID: cp.ClientID, Username: cp.Username, Password: cp.Password, CertChain: certs, Listener: c.ls.name,
	})
	clear(cp.Password)
	if err != nil {
		switch {
		case !throttled:
		case errors.Is(err, auth.ErrBadCredentials) || errors.Is(err, auth.ErrNotAuthorized):
			srv.sec.throttle.fail(host, cp.Username)
		default:
			srv.sec.throttle.abandon(host, cp.Username)
		}
		srv.stats.authFailures[authFailureReason(err)].Add(1)
		return nil, err
	}
	if throttled {
		srv.sec.throttle.succeed(host, cp.Username)
	}
	return srv.newAccess(id, cp.ClientID, c.ls.loopback), nil
}

// admitLogin asks the throttle whether a login from host as username may be
// checked now, and waits when it must: the throttle's delay after failures,
// or the turn of an attempt beyond the ban_after logins of this user name
// and address already in progress. It returns nil when the attempt may go
// on; it is then pending in the throttle until fail, succeed or abandon.
// A banned attempt gets an error wrapping auth.ErrNotAuthorized (CONNACK
// 0x87). An attempt whose turn does not come within max_delay is an
// overload, not a failure of the client: it gets an error wrapping
// auth.ErrBusy (0x89 Server busy, 3.1.1: 3 Server unavailable).
func (s *Server) admitLogin(ctx context.Context, host, username string) error {
	th := s.sec.throttle
	var deadline <-chan time.Time
	for {
		v := th.check(host, username)
		switch {
		case v.banned:
			s.stats.authFailures[authFailBanned].Add(1)
			return fmt.Errorf("%w: too many failed logins from %s, retry in %v", auth.ErrNotAuthorized, host, v.wait.Round(time.Second))
		case v.turn != nil:
			if deadline == nil {
				timer := time.NewTimer(th.cfg.MaxDelay)
				defer timer.Stop()
				deadline = timer.C
			}
			select {
			case <-v.turn:
				continue
			case <-deadline:
			case <-ctx.Done():
			}
			s.stats.authFailures[authFailBusy].Add(1)
			return fmt.Errorf("%w: %d logins as %q from %s are still being checked; retry later", auth.ErrBusy, v.pending, username, host)
		case v.wait > 0:
			select {
			case <-time.After(v.wait):
			case <-ctx.Done():
				th.abandon(host, username)
				return ctx.Err()
			}
		}
		return nil
	}
}

// Reasons of authentication failures, for metrics.
const (
	authFailBadCredentials = iota
	authFailNotAuthorized
	authFailBanned
	authFailBusy
	authFailOther
	authFailReasons
)

var authFailNames = [authFailReasons]string{"bad_credentials", "not_authorized", "banned", "busy", "error"}

func authFailureReason(err error) int {
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return authFailBadCredentials
	case errors.Is(err, auth.ErrNotAuthorized):
		return authFailNotAuthorized
	case errors.Is(err, auth.ErrBusy):
		return authFailBusy
	}
	return authFailOther
}

// peerCertificates returns the verified client certificate chain of a TLS
// connection, or nil.
func peerCertificates(nc net.Conn) []*x509.Certificate {
	if pc, ok := nc.(interface{ PeerCertificates() []*x509.Certificate }); ok {
		return pc.PeerCertificates()
	}
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		if len(st.VerifiedChains) > 0 {
			return st.VerifiedChains[0]
		}
	}
	return nil
}

// listenerState is the state that connections of one listener share.
type listenerState struct {
	name     string
	loopback bool
	anon     bool
	chain    auth.Chain
}

// warnIfNoUsers logs how to add a user when a listener that refuses anonymous
// clients starts with no users, since every client would then be refused.
func (s *Server) warnIfNoUsers(listener string) {
	if s.sec.jwt != nil {
		return // clients can log in with tokens
	}
	users, err := s.sec.store.Users(context.Background())
	if err != nil || len(users) > 0 {
		return
	}
	s.log.Warn("listener refuses anonymous clients and no users exist, so every client will be refused; "+
		"add one with `starling user add NAME --http ADDR` through this node's --http admin endpoint, "+
		"or with `starling user add NAME --data-dir DIR` while the node is stopped, "+
		"or set allow_anonymous: true on the listener", keyListener, listener)
}
