package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/starling-mqtt/starling/cluster/fsm"
	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// authRulesName is the node's name for the global rule list in its
// RecordMeta namespace (node.RulesRecordName); the state machine keeps the
// list under fsm.RulesName.
const authRulesName = "acl-rules"

// AuthRecords keeps the node's users, groups, roles and global rules in the
// cluster's Raft state, so every node sees the same ones. It implements
// node.AuthRecords: reads come from this node's copy of the state, writes
// commit through the leader and return once this node has applied them.
type AuthRecords struct{ c *Cluster }

// AuthRecords returns the replicated auth records of the cluster.
func (c *Cluster) AuthRecords() *AuthRecords { return &AuthRecords{c: c} }

// kindOf maps a node record namespace and name to an auth kind and the
// state machine's record name.
func kindOf(ns byte, name string) (fsm.AuthKind, string, error) {
	switch ns {
	case storage.RecordUser:
		return fsm.AuthUser, name, nil
	case storage.RecordGroup:
		return fsm.AuthGroup, name, nil
	case storage.RecordRole:
		return fsm.AuthRole, name, nil
	case storage.RecordMeta:
		if name == authRulesName {
			return fsm.AuthRules, fsm.RulesName, nil
		}
	}
	return 0, "", fmt.Errorf("cluster: auth record %q in namespace %q is not replicated", name, ns)
}

// Record returns one record, or an error wrapping storage.ErrNotFound.
func (a *AuthRecords) Record(ns byte, name string) ([]byte, error) {
	kind, key, err := kindOf(ns, name)
	if err != nil {
		return nil, err
	}
	data, ok := a.c.fsm.AuthRecord(kind, key)
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", kind, name, storage.ErrNotFound)
	}
	return data, nil
}

// Records calls fn for every record of a namespace, in name order.
func (a *AuthRecords) Records(ns byte, fn func(name string, raw []byte) error) error {
	kind, _, err := kindOf(ns, "")
	if err != nil {
		return err
	}
	for _, e := range a.c.fsm.AuthRecords(kind) {
		if err := fn(e.Name, e.Data); err != nil {
			return err
		}
	}
	return nil
}

// PutRecord commits a record to the Raft log.
func (a *AuthRecords) PutRecord(ctx context.Context, ns byte, name string, raw []byte) error {
	kind, key, err := kindOf(ns, name)
	if err != nil {
		return err
	}
	if kind == fsm.AuthRules {
		_, err = a.c.propose(ctx, clusterpb.CommandType_COMMAND_TYPE_PUT_RULES, &clusterpb.PutRules{Rules: raw})
		return err
	}
	typ := map[fsm.AuthKind]clusterpb.CommandType{
		fsm.AuthUser:  clusterpb.CommandType_COMMAND_TYPE_PUT_USER,
		fsm.AuthGroup: clusterpb.CommandType_COMMAND_TYPE_PUT_GROUP,
		fsm.AuthRole:  clusterpb.CommandType_COMMAND_TYPE_PUT_ROLE,
	}[kind]
	_, err = a.c.propose(ctx, typ, &clusterpb.AuthPut{Name: key, Record: raw})
	return err
}

// DeleteRecord commits the removal of a record.
func (a *AuthRecords) DeleteRecord(ctx context.Context, ns byte, name string) error {
	kind, key, err := kindOf(ns, name)
	if err != nil {
		return err
	}
	if kind == fsm.AuthRules {
		_, err = a.c.propose(ctx, clusterpb.CommandType_COMMAND_TYPE_PUT_RULES, &clusterpb.PutRules{Rules: []byte("[]")})
		return err
	}
	typ := map[fsm.AuthKind]clusterpb.CommandType{
		fsm.AuthUser:  clusterpb.CommandType_COMMAND_TYPE_DELETE_USER,
		fsm.AuthGroup: clusterpb.CommandType_COMMAND_TYPE_DELETE_GROUP,
		fsm.AuthRole:  clusterpb.CommandType_COMMAND_TYPE_DELETE_ROLE,
	}[kind]
	_, err = a.c.propose(ctx, typ, &clusterpb.AuthDelete{Name: key})
	return err
}

// authLoop reloads the node's authentication and authorization state after
// every change of the replicated records, so connected clients on every
// node see a change made on any one of them.
func (c *Cluster) authLoop(reload func(context.Context) error) {
	changes, cancel := c.fsm.Subscribe(fsm.ChangeAuth)
	defer cancel()
	for {
		select {
		case <-c.stop:
			return
		case <-changes:
		}
		ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
		if err := reload(ctx); err != nil {
			c.log.Warn("reloading auth after a cluster change failed", "err", err)
		}
		done()
	}
}
