package node

import (
	"context"
	"errors"

	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/node/packet"
)

// willMsg is a will waiting to be published, with what is needed to check it
// against the rules when it is published, which may be after a restart.
type willMsg struct {
	*packet.Will
	username         string  // the client's user name; empty when anonymous
	acc              *access // the connection's access; nil for a will restored from disk
	restoredLoopback bool    // for a restored will: the client came through a loopback-only listener
}

func (w *willMsg) loopback() bool {
	if w.acc != nil {
		return w.acc.loopback
	}
	return w.restoredLoopback
}

// pendingWill returns the connection's will for publishing, or nil.
func (c *conn) pendingWill() *willMsg {
	if c.will == nil {
		return nil
	}
	return &willMsg{Will: c.will, username: c.username(), acc: c.access.Load()}
}

// willAccess returns the access a will is checked with. A will restored
// from disk gets the access of its user as the store has it now.
func (s *Server) willAccess(clientID string, w *willMsg) *access {
	if w.acc != nil {
		return w.acc
	}
	id := auth.Identity{Username: w.username, Method: auth.MethodAnonymous}
	if w.username != "" {
		user, err := s.sec.store.User(context.Background(), w.username)
		switch {
		case err == nil:
			id = auth.IdentityOfUser(user, auth.MethodPassword)
		case errors.Is(err, auth.ErrNotFound):
			id = auth.Identity{Username: w.username, Method: auth.MethodCertificate}
		default:
			s.log.Error("look up the user of a restored will failed", keyClientID, clientID, keyErr, err)
		}
	}
	return &access{sec: s.sec, policy: s.sec.authorizer.Policy(id, clientID), loopback: w.restoredLoopback}
}
