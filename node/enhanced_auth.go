package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
	"github.com/starling-mqtt/starling/storage"
)

// scramMethod is the MQTT 5.0 Authentication Method of SCRAM-SHA-256.
const scramMethod = "SCRAM-SHA-256"

// authExchange is the server side of one MQTT 5.0 enhanced authentication
// exchange (section 4.12). Step takes the Authentication Data of the client's
// CONNECT or AUTH and returns the data to send back. When done is true the
// exchange succeeded, and reply belongs in the CONNACK (or in the final AUTH
// of a re-authentication). User returns the authenticated user after success.
// *auth.ScramServer implements it.
type authExchange interface {
	Step(ctx context.Context, data []byte) (reply []byte, done bool, err error)
	User() (auth.User, bool)
}

// authMethods maps each supported Authentication Method to a constructor of
// its exchange; adding a method means adding an entry here.
var authMethods = map[string]func(sec *security) authExchange{
	scramMethod: func(sec *security) authExchange { return auth.NewScramServer(sec.store, sec.scramSecret) },
}

// scramSecretKey names the node's SCRAM secret in RecordMeta.
const scramSecretKey = "scram-secret"

// loadScramSecret returns the node's SCRAM secret, creating it on first use.
// It keys the salts made up for unknown users. Because it stays the same, a
// client cannot spot an unknown user by a salt that changes between connects.
func loadScramSecret(st *storage.Store) ([]byte, error) {
	secret, err := st.Record(storage.RecordMeta, scramSecretKey)
	if err == nil && len(secret) == 32 {
		return secret, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("read SCRAM secret: %w", err)
	}
	secret = make([]byte, 32)
	rand.Read(secret)
	b := st.NewBatch()
	defer b.Close()
	b.PutRecord(storage.RecordMeta, scramSecretKey, secret)
	if err := b.Commit(); err != nil {
		return nil, fmt.Errorf("store SCRAM secret: %w", err)
	}
	return secret, nil
}

// enhancedAuth runs MQTT 5.0 enhanced authentication (section 4.12) with the
// method the CONNECT names (SCRAM-SHA-256 today). The first client message
// comes in CONNECT, then server and client exchange AUTH packets with reason
// 0x18. The server's final message goes back in the CONNACK's Authentication
// Data. It returns the access of the
// authenticated user and that final message.
func (c *conn) enhancedAuth(ctx context.Context, cp *packet.Connect) (*access, []byte, error) {
	srv := c.srv
	host := hostOf(c.remote)
	if err := srv.admitLogin(ctx, host, ""); err != nil {
		return nil, nil, err
	}
	// Every exit settles the attempt: as a failure, a success, or abandoned.
	settled := false
	defer func() {
		if !settled {
			srv.sec.throttle.abandon(host, "")
		}
	}()

	method := cp.Properties.AuthMethod
	scram := authMethods[method](srv.sec)
	reply, done, err := scram.Step(ctx, cp.Properties.AuthData)
	for err == nil && !done {
		// [MQTT-4.12.0-2] Continue with AUTH 0x18 in the same method.
		c.send(&packet.Auth{ReasonCode: packet.ReasonContinueAuthentication,
			Properties: packet.Properties{AuthMethod: method, AuthData: reply}})
		c.nc.SetReadDeadline(time.Now().Add(srv.cfg.ConnectTimeout))
		var p packet.Packet
		if p, err = packet.Read(c.br, packet.Version5, srv.cfg.Limits.MaxPacketSize); err != nil {
			return nil, nil, err
		}
		a, ok := p.(*packet.Auth)
		switch {
		case !ok:
			return nil, nil, packet.Errorf(packet.ReasonProtocolError, "expected AUTH during authentication, got %v", p.Type())
		case a.ReasonCode != packet.ReasonContinueAuthentication || a.Properties.AuthMethod != method:
			// [MQTT-4.12.0-5] Every AUTH repeats the method of the CONNECT.
			return nil, nil, packet.Errorf(packet.ReasonProtocolError, "AUTH with reason 0x%02X and method %q during %s", byte(a.ReasonCode), a.Properties.AuthMethod, method)
		}
		reply, done, err = scram.Step(ctx, a.Properties.AuthData)
	}
	c.nc.SetReadDeadline(time.Time{})
	user, ok := scram.User()
	if err != nil || !ok {
		if err == nil {
			err = auth.ErrBadCredentials
		}
		var perr *packet.Error
		if !errors.As(err, &perr) {
			settled = true
			srv.sec.throttle.fail(host, "")
			srv.stats.authFailures[authFailureReason(err)].Add(1)
		}
		return nil, nil, err
	}
	settled = true
	srv.sec.throttle.succeed(host, "")
	id := auth.IdentityOfUser(user, auth.Method(strings.ToLower(method)))
	return srv.newAccess(id, cp.ClientID, c.ls.loopback), reply, nil
}
