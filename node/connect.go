package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/router"
)

// handshake reads the CONNECT and replies with a CONNACK. It returns false when the
// connection must close; it has then logged the reason and sent what the spec requires.
func (c *conn) handshake() bool {
	p, err := packet.Read(c.br, 0, c.srv.cfg.Limits.MaxPacketSize)
	if err != nil {
		c.rejectBeforeConnack(p, err)
		return false
	}
	c.nc.SetReadDeadline(time.Time{})
	cp := p.(*packet.Connect)
	c.version = cp.ProtocolVersion
	c.problemInfo = !cp.Properties.HasRequestProblemInfo || cp.Properties.RequestProblemInfo == 1
	if cp.Properties.HasMaximumPacketSize {
		c.maxOutPacket = cp.Properties.MaximumPacketSize
	}

	if code, why := c.validateConnect(cp); code != packet.ReasonSuccess {
		c.srv.clientWarn.log(c.srv.log, "connection refused", keyClientID, cp.ClientID, keyRemote, c.remote,
			keyReason, why)
		c.srv.stats.connectRefused.Add(1)
		c.refuse(code, why)
		return false
	}

	assigned := ""
	if cp.ClientID == "" {
		cp.ClientID = generateClientID()
		assigned = cp.ClientID
	}
	if ban, banned := c.srv.bans.match(cp.ClientID, cp.Username, hostOf(c.remote), time.Now()); banned {
		c.srv.stats.authFailures[authFailBanned].Add(1)
		c.srv.clientWarn.log(c.srv.log, "banned client refused", keyClientID, cp.ClientID, keyRemote, c.remote,
			"username", cp.Username, "ban", string(ban.Kind)+":"+ban.Value)
		c.refuse(packet.ReasonBanned, "banned")
		return false
	}
	// Only a CONNECT with credentials can wait in authentication (password
	// hashing, the login throttle, a store lookup), so only it gets a
	// deadline: the timer is a cost that a storm of anonymous clients
	// does not need to pay.
	certs := peerCertificates(c.nc)
	ctx, cancel := context.Background(), context.CancelFunc(nil)
	if cp.Properties.AuthMethod != "" || cp.Username != "" || len(cp.Password) > 0 || len(certs) > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.srv.cfg.ConnectTimeout)
	}
	var acc *access
	var authFinal []byte
	if cp.Properties.AuthMethod != "" {
		acc, authFinal, err = c.enhancedAuth(ctx, cp)
	} else {
		acc, err = c.authenticate(ctx, cp, certs)
	}
	if cancel != nil {
		cancel()
	}
	var perr *packet.Error
	if errors.As(err, &perr) {
		// Before CONNACK a protocol error gets a CONNACK with its code, never
		// a DISCONNECT [MQTT-3.2.0-1].
		c.srv.stats.protocolErrors.Add(1)
		c.srv.clientWarn.log(c.srv.log, "authentication exchange failed", keyClientID, cp.ClientID, keyRemote, c.remote, keyErr, perr.Reason)
		c.refuse(perr.Code, perr.Reason)
		return false
	}
	if err != nil {
		code := auth.ConnectReason(err)
		if code == packet.ReasonServerBusy {
			// Not the client's fault: the node is overloaded (the password
			// hashing queue is full, or too many logins of this user from
			// this address are in progress). MQTT 3.1.1 clients get return
			// code 3, Server unavailable.
			c.srv.busyWarn.log(c.srv.log, "connection refused: server busy", keyClientID, cp.ClientID, keyRemote, c.remote,
				"username", cp.Username, keyListener, c.ls.name, keyReason, "0x89", keyErr, err)
		} else {
			c.srv.clientWarn.log(c.srv.log, "authentication failed", keyClientID, cp.ClientID, keyRemote, c.remote,
				"username", cp.Username, keyListener, c.ls.name, keyReason, fmt.Sprintf("0x%02X", byte(code)), keyErr, err)
		}
		c.srv.stats.connectRefused.Add(1)
		c.refuse(code, "authentication failed")
		return false
	}
	c.access.Store(acc)
	if cp.Properties.AuthMethod != "" {
		c.enhanced = &enhancedAuth{method: cp.Properties.AuthMethod, final: authFinal}
	}
	if cp.Will != nil && !acc.mayPublishWill(cp.Will) {
		// A will is a publish on the client's behalf: refused at CONNECT when
		// the rules forbid its topic.
		c.srv.stats.denied[deniedWill].Add(1)
		c.refuse(packet.ReasonNotAuthorized, "will topic not authorized")
		return false
	}

	c.clientID = cp.ClientID
	c.keepAlive, c.announceKeepAlive = c.srv.cfg.Features.negotiateKeepAlive(cp.KeepAlive)
	c.will = cp.Will

	if c.maxOutPacket != 0 && !c.fitClientMaximum(c.connackFor(cp, true, assigned)) {
		// [MQTT-3.1.2-24] Even a CONNACK would exceed the client's maximum.
		c.srv.clientWarn.log(c.srv.log, "connection closed: CONNACK exceeds the client's Maximum Packet Size",
			keyClientID, c.clientID, keyRemote, c.remote, "maximum_packet_size", c.maxOutPacket)
		return false
	}
	// The reader writes the CONNACK itself when it next reads or fails
	// (flushOwnWrites in readPhase, waitWriter), which saves a writer
	// goroutine per connection. Nothing past this point waits for a reply
	// from the client, as enhanced authentication does.
	c.deferOwnWrites()
	present, err := c.srv.attach(c, cp, assigned)
	if errors.Is(err, errSessionUnavailable) {
		c.srv.stats.connectRefused.Add(1)
		c.srv.clientWarn.log(c.srv.log, "connection refused: its session is on a node that is down", keyClientID, c.clientID, keyRemote, c.remote)
		c.refuse(packet.ReasonServerUnavailable, err.Error())
		return false
	}
	if err != nil {
		c.srv.log.Error("attach session failed", keyClientID, c.clientID, keyRemote, c.remote, keyErr, err)
		c.refuse(packet.ReasonUnspecifiedError, "session could not be restored")
		return false
	}
	if c.debugLogged() {
		c.srv.log.Debug("client connected", keyClientID, c.clientID, keyRemote, c.remote,
			"version", c.version, "clean_start", cp.CleanStart, "session_present", present)
	}
	return true
}

// rejectBeforeConnack replies to a CONNECT that could not be decoded. An
// unsupported protocol level gets CONNACK 0x01 (3.1.1 form, which every client
// version can read) [MQTT-3.1.2-2]; other errors in an MQTT 5.0 CONNECT get a
// CONNACK with the reason code [MQTT-4.13.1-1]; the rest just close.
func (c *conn) rejectBeforeConnack(p packet.Packet, err error) {
	var perr *packet.Error
	if !errors.As(err, &perr) {
		c.srv.log.Debug("connection closed before CONNECT", keyRemote, c.remote, keyErr, err)
		return
	}
	c.srv.stats.protocolErrors.Add(1)
	c.srv.clientWarn.log(c.srv.log, "invalid CONNECT", keyRemote, c.remote, keyReason, perr.Reason)
	cp, _ := p.(*packet.Connect)
	switch {
	case perr.Code == packet.ReasonUnsupportedProtocolVersion:
		c.version = packet.Version311
		c.sendAndClose(&packet.Connack{ReasonCode: packet.ReasonUnsupportedProtocolVersion})
	case cp != nil && cp.ProtocolVersion == packet.Version5:
		c.version = packet.Version5
		c.sendAndClose(&packet.Connack{ReasonCode: perr.Code})
	default:
		return
	}
	c.waitWriter()
}

// refuse sends a CONNACK with a failure code and closes [MQTT-3.2.2-5].
func (c *conn) refuse(code packet.ReasonCode, why string) {
	ack := &packet.Connack{ReasonCode: code}
	if c.version == packet.Version5 && c.problemInfo {
		ack.Properties.ReasonString = why
	}
	c.sendAndClose(ack)
	c.waitWriter()
}

// validateConnect checks what the codec cannot: client id rules, will topic,
// MQTT 5.0 properties, and authentication.
func (c *conn) validateConnect(cp *packet.Connect) (packet.ReasonCode, string) {
	lim := c.srv.lim()
	id := cp.ClientID
	switch {
	case cp.ProtocolVersion == packet.Version31 && (len(id) == 0 || len(id) > 23):
		// MQTT 3.1 requires a client id of 1 to 23 characters.
		return packet.ReasonClientIDNotValid, "MQTT 3.1 client id must have 1 to 23 characters"
	case id == "" && !cp.CleanStart && cp.ProtocolVersion != packet.Version5:
		// [MQTT-3.1.3-8] An empty client id needs a clean session in 3.1.1.
		return packet.ReasonClientIDNotValid, "empty client id requires clean session 1"
	case len(id) > lim.MaxClientIDLength:
		return packet.ReasonClientIDNotValid, "client id is longer than the configured maximum"
	case !utf8.ValidString(id):
		return packet.ReasonClientIDNotValid, "client id is not valid UTF-8"
	}
	if cp.Will != nil {
		if err := router.ValidateTopicName(cp.Will.Topic, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
			return packet.ReasonTopicNameInvalid, "invalid will topic: " + err.Error()
		}
		if rt := cp.Will.Properties.ResponseTopic; rt != "" {
			if err := router.ValidateTopicName(rt, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
				return packet.ReasonProtocolError, "invalid will response topic: " + err.Error()
			}
		}
		if isSysTopic(cp.Will.Topic) {
			return packet.ReasonNotAuthorized, "a will may not use a $SYS topic"
		}
		if int64(len(cp.Will.Payload)) > int64(lim.MaxPacketSize) {
			return packet.ReasonPacketTooLarge, "will payload exceeds the maximum packet size"
		}
	}
	if cp.Will != nil && cp.Will.QoS > *c.srv.cfg.Features.MaxQoS {
		return packet.ReasonQoSNotSupported, "will QoS exceeds the maximum QoS"
	}
	if cp.Will != nil && cp.Will.Retain && c.srv.cfg.Features.DisableRetain {
		return packet.ReasonRetainNotSupported, "retained wills are disabled"
	}
	if m := cp.Properties.AuthMethod; m != "" && authMethods[m] == nil {
		return packet.ReasonBadAuthenticationMethod, "unsupported authentication method: use " + scramMethod
	}
	return packet.ReasonSuccess, ""
}

// connackFor builds the CONNACK for an accepted connection.
func (c *conn) connackFor(cp *packet.Connect, present bool, assigned string) *packet.Connack {
	ack := &packet.Connack{SessionPresent: present}
	if c.version != packet.Version5 {
		return ack
	}
	lim := c.srv.lim()
	feat := &c.srv.cfg.Features
	ack.Properties.AssignedClientID = assigned
	if cp.Properties.AuthMethod != "" {
		// [MQTT-4.12.0-5] The CONNACK carries the method and the final data.
		ack.Properties.AuthMethod, ack.Properties.AuthData = cp.Properties.AuthMethod, c.enhanced.final
	}
	ack.Properties.ReceiveMaximum = lim.ReceiveMaximum
	ack.Properties.HasReceiveMaximum = true
	ack.Properties.MaximumPacketSize = lim.MaxPacketSize
	ack.Properties.HasMaximumPacketSize = true
	ack.Properties.TopicAliasMaximum = lim.MaxTopicAlias
	feat.announce(&ack.Properties)
	if c.announceKeepAlive {
		ack.Properties.ServerKeepAlive, ack.Properties.HasServerKeepAlive = c.keepAlive, true
	}
	if requested := sessionExpiryOf(cp); requested != c.srv.sessionExpiryFor(cp) {
		ack.Properties.SessionExpiry, ack.Properties.HasSessionExpiry = c.srv.sessionExpiryFor(cp), true
	}
	if cp.Properties.RequestResponseInfo == 1 && feat.ResponseInformation != "" {
		ack.Properties.ResponseInfo = feat.ResponseInformation
	}
	return ack
}

// generateClientID returns an id for a client that sent an empty one
// [MQTT-3.1.3-6]: unique with overwhelming probability and within 23 bytes.
func generateClientID() string {
	var b [8]byte
	rand.Read(b[:])
	return "auto-" + hex.EncodeToString(b[:])
}
