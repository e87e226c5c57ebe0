package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// AuthKind names a kind of auth record. The FSM stores records as opaque
// bytes (the JSON encoding of the node's auth store), so it does not depend
// on node/auth.
type AuthKind uint8

// The auth record kinds. Their numbers are those of clusterpb.AuthKind.
const (
	AuthUser  AuthKind = AuthKind(clusterpb.AuthKind_AUTH_KIND_USER)
	AuthGroup AuthKind = AuthKind(clusterpb.AuthKind_AUTH_KIND_GROUP)
	AuthRole  AuthKind = AuthKind(clusterpb.AuthKind_AUTH_KIND_ROLE)
	// AuthRules is the one list of global ACL rules, stored under RulesName.
	AuthRules AuthKind = AuthKind(clusterpb.AuthKind_AUTH_KIND_RULES)

	authKindCount = int(AuthRules) + 1
)

// RulesName is the record name of the global ACL rules (kind AuthRules).
const RulesName = ""

func (k AuthKind) valid() bool { return k >= AuthUser && k <= AuthRules }

func (k AuthKind) String() string {
	switch k {
	case AuthUser:
		return "user"
	case AuthGroup:
		return "group"
	case AuthRole:
		return "role"
	case AuthRules:
		return "rules"
	}
	return fmt.Sprintf("auth-kind(%d)", uint8(k))
}

// AuthEntry is one auth record.
type AuthEntry struct {
	Kind AuthKind
	Name string
	Data []byte // the caller's copy
}

func authPutHandler(kind AuthKind) handler {
	return handler{
		body: func() proto.Message { return &clusterpb.AuthPut{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			put := m.(*clusterpb.AuthPut)
			if put.Name == "" {
				return 0, 0, fmt.Errorf("missing %s name", kind)
			}
			return a.putAuth(kind, put.Name, put.Record), ChangeAuth, nil
		},
	}
}

func authDeleteHandler(kind AuthKind) handler {
	return handler{
		body: func() proto.Message { return &clusterpb.AuthDelete{} },
		apply: func(a *applier, m proto.Message) (Status, Change, error) {
			del := m.(*clusterpb.AuthDelete)
			if del.Name == "" {
				return 0, 0, fmt.Errorf("missing %s name", kind)
			}
			if _, ok := a.st.auth[kind][del.Name]; !ok {
				return StatusApplied, 0, nil
			}
			delete(a.st.auth[kind], del.Name)
			return StatusApplied, ChangeAuth, nil
		},
	}
}

func (a *applier) putRules(m *clusterpb.PutRules) (Status, Change, error) {
	if len(m.Rules) == 0 {
		return 0, 0, errors.New("missing rules: encode an empty list as []")
	}
	return a.putAuth(AuthRules, RulesName, m.Rules), ChangeAuth, nil
}

// putAuth stores data as it is: proto.Unmarshal copies bytes fields, so
// data does not share memory with the log entry.
func (a *applier) putAuth(kind AuthKind, name string, data []byte) Status {
	a.st.auth[kind][name] = data
	return StatusApplied
}
