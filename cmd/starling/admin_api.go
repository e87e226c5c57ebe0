package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/starling-mqtt/starling/node"
	"github.com/starling-mqtt/starling/node/auth"
	"github.com/starling-mqtt/starling/router"
)

// Limits of the operations endpoints.
const (
	// maxAdminBody bounds the JSON body of a group, role or authorization
	// check request, in bytes.
	maxAdminBody = 1 << 20

	// maxPublishBody bounds the body of POST /api/v1/publish, in bytes. It
	// leaves room for a 1 MiB payload (the default maximum packet size)
	// sent as base64, which grows it by a third.
	maxPublishBody = 2 << 20

	// defaultListLimit is the number of clients or retained messages
	// returned when the request gives no limit, so that a plain GET on a
	// node with a million sessions does not build a response of hundreds
	// of megabytes.
	defaultListLimit = 1000

	// maxListLimit is the largest limit a request may ask for.
	maxListLimit = 100000
)

// opsAdmin serves the operations endpoints of the admin API under /api/v1:
// status, clients, sessions, retained messages, publish, groups, roles and
// authorization checks. The user endpoints are served by userAdmin. Its
// handlers are safe for concurrent use because every node method they call
// is.
type opsAdmin struct {
	node *node.Server

	// guard wraps every handler. It is userAdmin.guard, so one bearer token
	// protects the whole admin API.
	guard func(http.HandlerFunc) http.HandlerFunc

	// name is reported as the node's name by GET /api/v1/status.
	// NOTE: node.Server does not expose its configured NodeName, so this is
	// the host name, which is only the default of NodeName.
	name string

	// started is when the admin API was created, right after the node
	// started. The node does not expose its own start time.
	started time.Time

	// log receives server-side failures and changes to the ACL records.
	log *slog.Logger
}

// newOpsAdmin returns the operations endpoints of n behind guard.
func newOpsAdmin(n *node.Server, guard func(http.HandlerFunc) http.HandlerFunc, log *slog.Logger) *opsAdmin {
	return &opsAdmin{node: n, guard: guard, name: n.Name(), started: n.StartedAt(), log: log.With("component", "admin")}
}

// register adds the operations endpoints to mux.
func (a *opsAdmin) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/status", a.guard(a.status))

	mux.HandleFunc("GET /api/v1/clients", a.guard(a.clients))
	mux.HandleFunc("GET /api/v1/clients/{id}", a.guard(a.client))
	mux.HandleFunc("POST /api/v1/clients/{id}/kick", a.guard(a.kick))
	mux.HandleFunc("GET /api/v1/clients/{id}/subscriptions", a.guard(a.subscriptions))
	mux.HandleFunc("DELETE /api/v1/sessions/{id}", a.guard(a.deleteSession))

	mux.HandleFunc("GET /api/v1/retained", a.guard(a.retained))
	mux.HandleFunc("DELETE /api/v1/retained", a.guard(a.deleteRetained))
	mux.HandleFunc("POST /api/v1/publish", a.guard(a.publish))

	mux.HandleFunc("GET /api/v1/groups", a.guard(a.listGroups))
	mux.HandleFunc("GET /api/v1/groups/{name}", a.guard(a.getGroup))
	mux.HandleFunc("PUT /api/v1/groups/{name}", a.guard(a.putGroup))
	mux.HandleFunc("DELETE /api/v1/groups/{name}", a.guard(a.deleteGroup))

	mux.HandleFunc("GET /api/v1/roles", a.guard(a.listRoles))
	mux.HandleFunc("GET /api/v1/roles/{name}", a.guard(a.getRole))
	mux.HandleFunc("PUT /api/v1/roles/{name}", a.guard(a.putRole))
	mux.HandleFunc("DELETE /api/v1/roles/{name}", a.guard(a.deleteRole))

	mux.HandleFunc("POST /api/v1/authz/check", a.guard(a.authzCheck))
	a.registerBans(mux)
}

// statusResponse is the body of GET /api/v1/status.
type statusResponse struct {
	Node          string    `json:"node"`
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Ready         bool      `json:"ready"`
	Stats         statsJSON `json:"stats"`
}

// statsJSON is node.Stats with the snake_case names of the rest of the API.
// Counters ending in _total count since the node started; the others are
// current values.
type statsJSON struct {
	Connected     int64 `json:"connected"`
	Sessions      int64 `json:"sessions"`
	Subscriptions int64 `json:"subscriptions"`
	Retained      int64 `json:"retained"`
	RetainedBytes int64 `json:"retained_bytes"`
	Queued        int64 `json:"queued"`
	Inflight      int64 `json:"inflight"`
	DiskBytes     int64 `json:"disk_bytes"`

	ConnectsTotal          uint64    `json:"connects_total"`
	DisconnectsTotal       uint64    `json:"disconnects_total"`
	TakeoversTotal         uint64    `json:"takeovers_total"`
	ConnectRefusedTotal    uint64    `json:"connect_refused_total"`
	BytesInTotal           uint64    `json:"bytes_in_total"`
	BytesOutTotal          uint64    `json:"bytes_out_total"`
	MessagesInTotal        [3]uint64 `json:"messages_in_total"`  // by QoS 0, 1, 2
	MessagesOutTotal       [3]uint64 `json:"messages_out_total"` // by QoS 0, 1, 2
	DroppedQueueFullTotal  uint64    `json:"dropped_queue_full_total"`
	DroppedNoMemberTotal   uint64    `json:"dropped_no_member_total"`
	DroppedTooLargeTotal   uint64    `json:"dropped_too_large_total"`
	ExpiredTotal           uint64    `json:"expired_total"`
	PublishRefusedTotal    uint64    `json:"publish_refused_total"`
	ProtocolErrorsTotal    uint64    `json:"protocol_errors_total"`
	PanicsTotal            uint64    `json:"panics_total"`
	ExpiredSessionsTotal   uint64    `json:"expired_sessions_total"`
	RetainedRejectedTotal  uint64    `json:"retained_rejected_total"`
	StorageErrorsTotal     uint64    `json:"storage_errors_total"`
	SharedRedeliveredTotal uint64    `json:"shared_redelivered_total"`
	PublisherPausesTotal   uint64    `json:"publisher_pauses_total"`

	AuthFailuresTotal map[string]uint64 `json:"auth_failures_total"` // by reason
	DeniedTotal       map[string]uint64 `json:"denied_total"`        // by action
}

func statsOf(st node.Stats) statsJSON {
	return statsJSON{
		Connected: st.Connected, Sessions: st.Sessions, Subscriptions: st.Subscriptions,
		Retained: st.Retained, RetainedBytes: st.RetainedBytes,
		Queued: st.Queued, Inflight: st.Inflight, DiskBytes: st.DiskBytes,

		ConnectsTotal: st.Connects, DisconnectsTotal: st.Disconnects,
		TakeoversTotal: st.Takeovers, ConnectRefusedTotal: st.ConnectRefused,
		BytesInTotal: st.BytesIn, BytesOutTotal: st.BytesOut,
		MessagesInTotal: st.MessagesIn, MessagesOutTotal: st.MessagesOut,
		DroppedQueueFullTotal: st.DroppedQueueFull, DroppedNoMemberTotal: st.DroppedNoMember,
		DroppedTooLargeTotal: st.TooLarge, ExpiredTotal: st.Expired,
		PublishRefusedTotal: st.PublishRefused, ProtocolErrorsTotal: st.ProtocolErrors,
		PanicsTotal: st.Panics, ExpiredSessionsTotal: st.ExpiredSessions,
		RetainedRejectedTotal: st.RetainedRejected, StorageErrorsTotal: st.StorageErrors,
		SharedRedeliveredTotal: st.SharedRedelivered, PublisherPausesTotal: st.PublisherPauses,

		AuthFailuresTotal: st.AuthFailures, DeniedTotal: st.Denied,
	}
}

func (a *opsAdmin) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusResponse{
		Node:          a.name,
		Version:       version,
		StartedAt:     a.started.UTC().Truncate(time.Second),
		UptimeSeconds: int64(time.Since(a.started).Seconds()),
		Ready:         a.node.Ready(),
		Stats:         statsOf(a.node.Stats()),
	})
}

// clientsResponse is the body of GET /api/v1/clients. Truncated is set when
// more sessions match than the limit.
type clientsResponse struct {
	Clients   []node.ClientInfo `json:"clients"`
	Truncated bool              `json:"truncated"`
}

func (a *opsAdmin) clients(w http.ResponseWriter, r *http.Request) {
	limit, err := listLimit(r)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}

	// Asking for one more than the limit shows whether the list was cut.
	list := a.node.Clients(r.URL.Query().Get("match"), limit+1)
	resp := clientsResponse{Clients: list, Truncated: len(list) > limit}
	if resp.Truncated {
		resp.Clients = list[:limit]
	}
	if resp.Clients == nil {
		resp.Clients = []node.ClientInfo{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *opsAdmin) client(w http.ResponseWriter, r *http.Request) {
	info, err := a.node.Client(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, nodeStatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// kick closes a client's connection. A session without a connection is a
// conflict rather than a success, so that a caller learns that nothing was
// closed.
func (a *opsAdmin) kick(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := a.node.Client(id); err != nil {
		a.fail(w, r, nodeStatusOf(err), err)
		return
	}
	if !a.node.Kick(id) {
		a.fail(w, r, http.StatusConflict, fmt.Errorf("client %q is not connected: its session exists, so delete it with DELETE /api/v1/sessions/{id} to discard it", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *opsAdmin) subscriptions(w http.ResponseWriter, r *http.Request) {
	subs, err := a.node.SubscriptionsOf(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, nodeStatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, subs)
}

func (a *opsAdmin) deleteSession(w http.ResponseWriter, r *http.Request) {
	if err := a.node.DeleteSession(r.PathValue("id")); err != nil {
		a.fail(w, r, nodeStatusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// retainedResponse is the body of GET /api/v1/retained. Payloads are base64
// in JSON. Truncated is set when more messages match than the limit.
type retainedResponse struct {
	Messages  []node.RetainedInfo `json:"messages"`
	Truncated bool                `json:"truncated"`
}

// retained lists retained messages. With a limit, the node stops at the
// first matches in its tree order and sorts those, so a truncated list is
// some of the matching topics, not the first ones in sort order.
func (a *opsAdmin) retained(w http.ResponseWriter, r *http.Request) {
	limit, err := listLimit(r)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	list, err := a.node.Retained(r.URL.Query().Get("filter"), limit+1)
	if err != nil {
		a.fail(w, r, nodeStatusOf(err), fmt.Errorf("list retained messages: %w", err))
		return
	}
	resp := retainedResponse{Messages: list, Truncated: len(list) > limit}
	if resp.Truncated {
		resp.Messages = list[:limit]
	}
	if resp.Messages == nil {
		resp.Messages = []node.RetainedInfo{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *opsAdmin) deleteRetained(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		a.fail(w, r, http.StatusBadRequest, errors.New("missing query parameter topic: give the topic of the retained message to delete"))
		return
	}
	if err := router.ValidateTopicName(topic, 0, 0); err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}

	if err := a.node.DeleteRetained(topic); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, node.ErrNoRetained) {
			status = http.StatusNotFound
		}
		a.fail(w, r, status, err)
		return
	}
	a.log.Info("retained message deleted by an administrator", "topic", topic)
	w.WriteHeader(http.StatusNoContent)
}

// publishRequest is the body of POST /api/v1/publish. At most one of
// Payload (text) and PayloadBase64 (binary) is set; neither publishes an
// empty payload, which with Retain deletes the topic's retained message.
type publishRequest struct {
	Topic         string  `json:"topic"`
	Payload       *string `json:"payload"`
	PayloadBase64 []byte  `json:"payload_base64"`
	QoS           int     `json:"qos"`
	Retain        bool    `json:"retain"`
}

// publish publishes a message as the node. It bypasses the ACL rules, as
// node.Publish does: the admin token already grants everything.
func (a *opsAdmin) publish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if status, err := decodeBody(w, r, maxPublishBody, &req); err != nil {
		a.fail(w, r, status, err)
		return
	}
	if req.Payload != nil && req.PayloadBase64 != nil {
		a.fail(w, r, http.StatusBadRequest, errors.New("give either payload or payload_base64, not both"))
		return
	}
	if req.QoS < 0 || req.QoS > 2 {
		a.fail(w, r, http.StatusBadRequest, fmt.Errorf("qos %d is invalid: use 0, 1 or 2", req.QoS))
		return
	}
	payload := req.PayloadBase64
	if req.Payload != nil {
		payload = []byte(*req.Payload)
	}
	if err := a.node.Publish(req.Topic, payload, byte(req.QoS), req.Retain); err != nil {
		a.fail(w, r, nodeStatusOf(err), fmt.Errorf("publish to %q: %w", req.Topic, err))
		return
	}
	a.log.Debug("message published by an administrator", "topic", req.Topic, "qos", req.QoS, "retain", req.Retain)
	w.WriteHeader(http.StatusNoContent)
}

// fail writes an error response. It logs errors of the node or the store
// (status 500 and above), which an operator may need to act on, and not
// those of the request, which the caller receives.
func (a *opsAdmin) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= http.StatusInternalServerError {
		a.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err)
}

// nodeStatusOf maps an error of a node operation to an HTTP status.
func nodeStatusOf(err error) int {
	switch {
	case errors.Is(err, node.ErrNoSession):
		return http.StatusNotFound
	case errors.Is(err, router.ErrInvalidTopic), errors.Is(err, router.ErrInvalidFilter),
		errors.Is(err, router.ErrTopicTooLong), errors.Is(err, router.ErrTooManyLevels):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// listLimit reads the limit query parameter: defaultListLimit when absent,
// otherwise 1 to maxListLimit.
func listLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, fmt.Errorf("limit %q is invalid: give a number from 1 to %d", s, maxListLimit)
	}
	return n, nil
}

// decodeBody decodes one JSON object of at most limit bytes into v and
// rejects unknown fields and trailing data. On error it also returns the
// HTTP status of the response.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("data after the JSON object")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK, nil
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body exceeds the maximum of %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, errors.New("missing request body: send a JSON object")
	}
	return http.StatusBadRequest, fmt.Errorf("invalid request body: %w", err)
}

// reloadAfterChange makes a change to groups or roles apply to connected
// clients. When the reload fails, the change is already stored, and the
// error message states both facts.
func (a *opsAdmin) reloadAfterChange(w http.ResponseWriter, r *http.Request) bool {
	if err := a.node.ReloadAuth(r.Context()); err != nil {
		a.fail(w, r, http.StatusInternalServerError, fmt.Errorf("change saved, but connected clients do not see it yet: %w", err))
		return false
	}
	return true
}

// groupJSON is a group as the admin API shows it.
type groupJSON struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

// groupBody is the body of PUT /api/v1/groups/{name}; the name comes from
// the path.
type groupBody struct {
	Roles []string `json:"roles"`
}

// ruleJSON is one ACL rule: action is publish, subscribe or all, permission
// is allow or deny, and topic is a pattern that may use %c (client id) and
// %u (user name). MaxQoS, Retain and Priority are optional, as in the YAML
// file (docs/acl.md).
type ruleJSON struct {
	Action     string `json:"action"`
	Permission string `json:"permission"`
	Topic      string `json:"topic"`
	MaxQoS     *byte  `json:"max_qos,omitempty"`
	Retain     *bool  `json:"retain,omitempty"`
	Priority   int    `json:"priority,omitempty"`
}

// roleJSON is a role as the admin API shows it. Rules are checked in order
// and the first match decides.
type roleJSON struct {
	Name  string     `json:"name"`
	Rules []ruleJSON `json:"rules"`
}

// roleBody is the body of PUT /api/v1/roles/{name}.
type roleBody struct {
	Rules []ruleJSON `json:"rules"`
}

func groupOf(g auth.Group) groupJSON {
	out := groupJSON{Name: g.Name, Roles: g.Roles}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	return out
}

func roleOf(r auth.Role) roleJSON {
	out := roleJSON{Name: r.Name, Rules: make([]ruleJSON, 0, len(r.Rules))}
	for _, rule := range r.Rules {
		out.Rules = append(out.Rules, ruleJSON{Action: string(rule.Action), Permission: string(rule.Permission), Topic: rule.Topic,
			MaxQoS: rule.MaxQoS, Retain: rule.Retain, Priority: rule.Priority})
	}
	return out
}

func authRulesOf(rules []ruleJSON) []auth.Rule {
	out := make([]auth.Rule, 0, len(rules))
	for _, r := range rules {
		out = append(out, auth.Rule{Action: auth.Action(r.Action), Permission: auth.Permission(r.Permission), Topic: r.Topic,
			MaxQoS: r.MaxQoS, Retain: r.Retain, Priority: r.Priority})
	}
	return out
}

func (a *opsAdmin) listGroups(w http.ResponseWriter, r *http.Request) {
	groups, err := a.node.AuthStore().Groups(r.Context())
	if err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("list groups: %w", err))
		return
	}
	out := make([]groupJSON, 0, len(groups))
	for _, g := range groups {
		out = append(out, groupOf(g))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *opsAdmin) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.node.AuthStore().Group(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, groupOf(g))
}

// putGroup creates or replaces a group. It accepts roles that do not exist
// yet, so that groups and roles can be created in either order. Such a role
// grants nothing until it exists.
func (a *opsAdmin) putGroup(w http.ResponseWriter, r *http.Request) {
	var body groupBody
	if status, err := decodeBody(w, r, maxAdminBody, &body); err != nil {
		a.fail(w, r, status, err)
		return
	}
	g := auth.Group{Name: r.PathValue("name"), Roles: body.Roles}
	if err := a.node.AuthStore().PutGroup(r.Context(), g); err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("save group %q: %w", g.Name, err))
		return
	}
	a.log.Info("group saved by an administrator", "group", g.Name, "roles", g.Roles)
	if !a.reloadAfterChange(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, groupOf(g))
}

func (a *opsAdmin) deleteGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	store := a.node.AuthStore()
	if _, err := store.Group(r.Context(), name); err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	if err := store.DeleteGroup(r.Context(), name); err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("delete group %q: %w", name, err))
		return
	}
	a.log.Info("group deleted by an administrator", "group", name)
	if !a.reloadAfterChange(w, r) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *opsAdmin) listRoles(w http.ResponseWriter, r *http.Request) {
	roles, err := a.node.AuthStore().Roles(r.Context())
	if err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("list roles: %w", err))
		return
	}
	out := make([]roleJSON, 0, len(roles))
	for _, role := range roles {
		out = append(out, roleOf(role))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *opsAdmin) getRole(w http.ResponseWriter, r *http.Request) {
	role, err := a.node.AuthStore().Role(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, roleOf(role))
}

// putRole creates or replaces a role. The store rejects a rule that does not
// parse, so a role saved here never turns into the authorizer's "deny
// everything" stand-in for a broken role.
func (a *opsAdmin) putRole(w http.ResponseWriter, r *http.Request) {
	var body roleBody
	if status, err := decodeBody(w, r, maxAdminBody, &body); err != nil {
		a.fail(w, r, status, err)
		return
	}
	role := auth.Role{Name: r.PathValue("name"), Rules: authRulesOf(body.Rules)}
	if err := a.node.AuthStore().PutRole(r.Context(), role); err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("save role %q: %w", role.Name, err))
		return
	}
	a.log.Info("role saved by an administrator", "role", role.Name, "rules", len(role.Rules))
	if !a.reloadAfterChange(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, roleOf(role))
}

func (a *opsAdmin) deleteRole(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	store := a.node.AuthStore()
	if _, err := store.Role(r.Context(), name); err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	if err := store.DeleteRole(r.Context(), name); err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("delete role %q: %w", name, err))
		return
	}
	a.log.Info("role deleted by an administrator", "role", name)
	if !a.reloadAfterChange(w, r) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authzRequest is the body of POST /api/v1/authz/check. An empty Username
// checks an anonymous client. Topic is a topic name for publish and a topic
// filter for subscribe.
type authzRequest struct {
	Username string `json:"username"`
	ClientID string `json:"client_id"`
	Action   string `json:"action"`
	Topic    string `json:"topic"`
	// QoS is the QoS of the publish, or the maximum QoS of the
	// subscription; Retain is the publish's retain flag.
	QoS    int  `json:"qos"`
	Retain bool `json:"retain"`
}

// authzResponse is the response body of POST /api/v1/authz/check.
type authzResponse struct {
	Allowed bool `json:"allowed"`
}

// authzCheck reports whether a user, connected with a client id, may
// publish to a topic or subscribe to a filter, with the node's own rules and
// default. The check is for a listener that is not loopback-only, where the
// allow-everything mode of a node without rules never applies.
//
// NOTE: rules carried in a JWT are not seen: only stored users are checked.
func (a *opsAdmin) authzCheck(w http.ResponseWriter, r *http.Request) {
	var req authzRequest
	if status, err := decodeBody(w, r, maxAdminBody, &req); err != nil {
		a.fail(w, r, status, err)
		return
	}
	if err := validateAuthzRequest(req); err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	allowed, err := a.node.CheckAccess(r.Context(), req.Username, req.ClientID, false, req.Action == string(auth.ActionSubscribe),
		req.Topic, byte(req.QoS), req.Retain)
	if err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("check access of user %q (leave username empty to check an anonymous client): %w", req.Username, err))
		return
	}
	writeJSON(w, http.StatusOK, authzResponse{Allowed: allowed})
}

// validateAuthzRequest rejects a check that the node could never be asked:
// an unknown action, or a topic that is not a valid topic name or filter.
func validateAuthzRequest(req authzRequest) error {
	if req.QoS < 0 || req.QoS > 2 {
		return fmt.Errorf("qos %d is invalid: use 0, 1 or 2", req.QoS)
	}
	if req.Retain && req.Action == string(auth.ActionSubscribe) {
		return errors.New("retain applies to a publish only")
	}
	switch req.Action {
	case string(auth.ActionPublish):
		if err := router.ValidateTopicName(req.Topic, 0, 0); err != nil {
			return err
		}
	case string(auth.ActionSubscribe):
		if err := router.ValidateFilter(req.Topic, 0, 0); err != nil {
			return err
		}
	default:
		return fmt.Errorf("action %q is invalid: use publish or subscribe", req.Action)
	}
	return nil
}
