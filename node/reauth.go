package node

import (
	"context"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// handleAuth runs MQTT 5.0 re-authentication (section 4.12.1). A client that
// connected with enhanced authentication sends AUTH 0x19 with new data in the
// same method. The exchange continues with AUTH 0x18, and the node ends it
// with AUTH 0x00 and its final data. Other packets keep flowing meanwhile. A
// successful exchange replaces the connection's identity and rules; a failed
// one closes the connection [MQTT-4.12.1-2].
func (c *conn) handleAuth(p *packet.Auth) error {
	ea := c.enhanced
	switch {
	case ea == nil:
		// [MQTT-4.12.0-7] No method in CONNECT: AUTH is a protocol error.
		return packet.Errorf(packet.ReasonProtocolError, "AUTH on a connection that did not use enhanced authentication")
	case p.Properties.AuthMethod != ea.method:
		// [MQTT-4.12.1-1] The method cannot change.
		return packet.Errorf(packet.ReasonProtocolError, "AUTH with method %q on a connection authenticated with %q", p.Properties.AuthMethod, ea.method)
	}

	switch p.ReasonCode {
	case packet.ReasonReAuthenticate:
		ea.reauth = authMethods[ea.method](c.srv.sec)
	case packet.ReasonContinueAuthentication:
		if ea.reauth == nil {
			return packet.Errorf(packet.ReasonProtocolError, "AUTH 0x18 without a re-authentication in progress")
		}
	default:
		return packet.Errorf(packet.ReasonProtocolError, "AUTH with reason 0x%02X from a client", byte(p.ReasonCode))
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.ConnectTimeout)
	reply, done, err := ea.reauth.Step(ctx, p.Properties.AuthData)
	cancel()
	if err != nil {
		ea.reauth = nil
		c.srv.stats.authFailures[authFailureReason(err)].Add(1)
		c.srv.sec.throttle.fail(hostOf(c.remote), c.username())
		return packet.Errorf(packet.ReasonNotAuthorized, "re-authentication failed: %v", err)
	}
	if !done {
		c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
			Properties: packet.Properties{AuthMethod: ea.method, AuthData: reply}})
		return nil
	}

	user, ok := ea.reauth.User()
	ea.reauth = nil
	if !ok {
		return packet.Errorf(packet.ReasonNotAuthorized, "re-authentication failed")
	}
	if user.Name != c.username() {
		// A connection keeps its user: a session cannot change hands this way.
		return packet.Errorf(packet.ReasonNotAuthorized, "re-authentication as %q on a connection of %q", user.Name, c.username())
	}
	id := auth.IdentityOfUser(user, c.access.Load().policy.Method())
	c.access.Store(c.srv.newAccess(id, c.clientID, c.ls.loopback))
	c.nc.SetReadDeadline(time.Time{})
	c.send(&packet.Auth{ReasonCode: packet.ReasonSuccess, Properties: packet.Properties{AuthMethod: ea.method, AuthData: reply}})
	c.srv.log.Debug("client re-authenticated", keyClientID, c.clientID, "username", user.Name)
	return nil
}
