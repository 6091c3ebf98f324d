package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// The JSON API under /api/v1/, for scripts: the same rules, messages,
// actions and audit search as the pages. Every request carries
// "Authorization: Bearer TOKEN" (zipgate admin token create NAME); the
// store keeps only the token's SHA-256. No cookies, so no CSRF. Every
// error is {"error": "..."} with its status: 401 without a valid token,
// 400 for a bad value, 404, 409 when the state does not allow an action.

func (a *Admin) routeAPI() {
	api := func(pattern string, h func(http.ResponseWriter, *http.Request, string)) {
		a.mux.Handle(pattern, a.apiAuth(h))
	}
	api("GET /api/v1/policies", a.apiPolicies)
	api("GET /api/v1/policies/{domain}", a.apiPolicy)
	api("PUT /api/v1/policies/{domain}", a.apiPutPolicy)
	api("DELETE /api/v1/policies/{domain}", a.apiDeletePolicy)
	api("GET /api/v1/messages", a.apiMessages)
	api("GET /api/v1/messages/{id}", a.apiMessage)
	api("POST /api/v1/messages/{id}/{op}", a.apiAct)
	api("GET /api/v1/audit", a.apiAudit)
	// Anything else under /api/ is a 404, after the token is checked.
	api("/api/", func(w http.ResponseWriter, r *http.Request, _ string) {
		apiError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiAuth runs h with the token's actor ("token NAME") when the request
// carries a valid token, else answers 401.
func (a *Admin) apiAuth(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="zipgate"`)
			apiError(w, http.StatusUnauthorized, "give an API token: Authorization: Bearer TOKEN (zipgate admin token create NAME)")
			return
		}
		t, err := a.o.Store.TokenByHash(r.Context(), hashValue(token), a.now())
		switch {
		case errors.Is(err, store.ErrNoToken):
			a.log.Warn("API request with an unknown token refused", "client_ip", clientIP(r), "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="zipgate", error="invalid_token"`)
			apiError(w, http.StatusUnauthorized, "the API token is not valid (revoked, or never made)")
			return
		case err != nil:
			a.log.Error("API: reading a token", "error", err.Error())
			apiError(w, http.StatusInternalServerError, "internal error; the log says more")
			return
		}
		h(w, r, "token "+t.Name)
	})
}

// apiFail answers err with its status.
func (a *Admin) apiFail(w http.ResponseWriter, what string, err error) {
	var bad *badInput
	var c *conflict
	switch {
	case errors.As(err, &bad):
		apiError(w, http.StatusBadRequest, bad.msg)
	case errors.As(err, &c):
		apiError(w, http.StatusConflict, c.msg)
	case errors.Is(err, store.ErrNoPolicy):
		apiError(w, http.StatusNotFound, "no policy for that domain")
	case errors.Is(err, store.ErrNoMessage):
		apiError(w, http.StatusNotFound, "no such message")
	default:
		a.log.Error("API: "+what, "error", err.Error())
		apiError(w, http.StatusInternalServerError, "internal error; the log says more")
	}
}

// policyJSON is a rule as the API shows it: its domain, every field as a
// string ("" unset, inherited), and when it last changed.
func policyJSON(p *policy.Policy) map[string]any {
	out := map[string]any{"domain": p.Domain, "updated_at": p.UpdatedAt}
	for _, f := range policy.Fields {
		out[f.Name] = f.Get(p)
	}
	return out
}

func (a *Admin) apiPolicies(w http.ResponseWriter, r *http.Request, _ string) {
	list, err := a.o.Store.ListPolicies(r.Context())
	if err != nil {
		a.apiFail(w, "listing policies", err)
		return
	}
	out := []map[string]any{}
	for i := range list {
		out = append(out, policyJSON(&list[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Admin) apiPolicy(w http.ResponseWriter, r *http.Request, _ string) {
	p, err := a.o.Store.GetPolicy(r.Context(), r.PathValue("domain"))
	if err != nil && !errors.Is(err, store.ErrNoPolicy) {
		err = &badInput{err.Error()} // not a domain pattern
	}
	if err != nil {
		a.apiFail(w, "reading a policy", err)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON(p))
}

// apiPutPolicy replaces the rule with the body's fields: each a string
// (approvers may be a list too); a field left out is unset.
func (a *Admin) apiPutPolicy(w http.ResponseWriter, r *http.Request, actor string) {
	domain := r.PathValue("domain")
	var body map[string]any
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			apiError(w, http.StatusRequestEntityTooLarge, "the body is too large")
			return
		}
		apiError(w, http.StatusBadRequest, "the body is not a JSON object of the policy's fields: "+err.Error())
		return
	}
	values := map[string]string{}
	for k, v := range body {
		if k == "domain" || k == "updated_at" {
			if s, ok := v.(string); k == "domain" && ok && s != "" {
				if d1, _ := policy.NormalizePattern(s); d1 != mustNormalize(domain) {
					apiError(w, http.StatusBadRequest, fmt.Sprintf("domain %q in the body is not %q of the URL", s, domain))
					return
				}
			}
			continue
		}
		switch v := v.(type) {
		case nil:
			values[k] = ""
		case string:
			values[k] = v
		case float64:
			values[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case []any:
			var parts []string
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					apiError(w, http.StatusBadRequest, k+": a list of strings, please")
					return
				}
				parts = append(parts, s)
			}
			values[k] = strings.Join(parts, ",")
			if len(parts) == 0 {
				values[k] = "none"
			}
		default:
			apiError(w, http.StatusBadRequest, k+": a string, please")
			return
		}
	}
	p, err := a.putPolicy(r.Context(), actor, "api", domain, values)
	if err != nil {
		a.apiFail(w, "saving a policy", err)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON(p))
}

func mustNormalize(d string) string {
	n, err := policy.NormalizePattern(d)
	if err != nil {
		return d
	}
	return n
}

func (a *Admin) apiDeletePolicy(w http.ResponseWriter, r *http.Request, actor string) {
	if err := a.deletePolicy(r.Context(), actor, "api", r.PathValue("domain")); err != nil {
		a.apiFail(w, "deleting a policy", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// messageJSON is a message as the API shows it; never a password.
type messageJSON struct {
	ID        string        `json:"id"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	Sender    string        `json:"sender"`
	Rcpts     []string      `json:"rcpts"`
	Subject   string        `json:"subject"`
	MessageID string        `json:"message_id,omitempty"`
	QueueID   string        `json:"queue_id,omitempty"`
	Size      int64         `json:"size"`
	Result    string        `json:"result"`
	State     string        `json:"state"`
	Files     []store.File  `json:"files"`
	Groups    []store.Group `json:"groups"`
	Held      *heldJSON     `json:"held,omitempty"`
	Jobs      []jobJSON     `json:"jobs,omitempty"`
	Events    []eventJSON   `json:"events,omitempty"`
}

type heldJSON struct {
	State     string           `json:"state"`
	Reasons   []string         `json:"reasons"`
	HoldUntil *time.Time       `json:"hold_until,omitempty"`
	Expires   *time.Time       `json:"expires,omitempty"`
	Approvals [][]string       `json:"approvals_open"`
	Approved  []store.Approval `json:"approved"`
	SenderOK  bool             `json:"sender_ok"`
	DecidedBy string           `json:"decided_by,omitempty"`
	Reason    string           `json:"reason,omitempty"`
}

type jobJSON struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	Rcpts      []string   `json:"rcpts"`
	ZipName    string     `json:"zip_name"`
	PasswordTo string     `json:"password_to"`
	Rule       string     `json:"rule,omitempty"`
	DueAt      *time.Time `json:"due_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

type eventJSON struct {
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	Actor  string    `json:"actor"`
	Via    string    `json:"via,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// stateWord is the list's state key without its prefix: held, job_scheduled, refused, ...
func stateWord(m *store.MessageSummary) string { return strings.TrimPrefix(stateKey(m), "state.") }

func summaryJSON(m *store.MessageSummary) messageJSON {
	out := messageJSON{ID: m.ID, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Sender: m.Sender, Rcpts: m.Rcpts,
		Subject: m.Subject, MessageID: m.MessageID, QueueID: m.QueueID, Size: m.Size, Result: m.Result,
		State: stateWord(m), Files: m.Files, Groups: m.Groups}
	if out.Files == nil {
		out.Files = []store.File{}
	}
	return out
}

func (a *Admin) apiMessages(w http.ResponseWriter, r *http.Request, _ string) {
	q, err := a.messageQuery(r.URL.Query())
	if err != nil {
		a.apiFail(w, "", err)
		return
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			apiError(w, http.StatusBadRequest, "limit: a number from 1 to 1000")
			return
		}
		q.Limit = n
	}
	list, err := a.o.Store.FindMessages(r.Context(), q)
	if err != nil {
		a.apiFail(w, "listing messages", err)
		return
	}
	out := []messageJSON{}
	for _, m := range list {
		out = append(out, summaryJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Admin) messageJSON(ctx context.Context, id string) (*messageJSON, error) {
	m, err := a.o.Store.FindMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	out := summaryJSON(m)
	if h, err := a.o.Store.GetHeld(ctx, id); err == nil {
		out.Held = &heldJSON{State: string(h.State), Reasons: h.Reasons, HoldUntil: timePtr(h.HoldUntil),
			Expires: timePtr(h.Expires), Approvals: h.Approvals, Approved: h.Approved, SenderOK: h.SenderOK,
			DecidedBy: h.DecidedBy, Reason: h.Reason}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	jobs, err := a.o.Store.JobsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobJSON{ID: j.ID, State: string(j.State), Rcpts: j.Rcpts, ZipName: j.ZipName,
			PasswordTo: string(j.PasswordTo), Rule: j.Rule, DueAt: timePtr(j.DueAt), FinishedAt: timePtr(j.FinishedAt),
			LastError: j.LastError})
	}
	evs, err := a.o.Store.Events(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		out.Events = append(out.Events, eventJSON{At: e.At, Event: e.Event, Actor: e.Actor, Via: e.Via, Detail: e.Detail})
	}
	return &out, nil
}

func (a *Admin) apiMessage(w http.ResponseWriter, r *http.Request, _ string) {
	m, err := a.messageJSON(r.Context(), r.PathValue("id"))
	if err != nil {
		a.apiFail(w, "reading a message", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// apiAct: POST .../cancel, .../release (the passwords, or a held
// message's send now), .../approve with an optional {"by": APPROVER}.
func (a *Admin) apiAct(w http.ResponseWriter, r *http.Request, actor string) {
	op := r.PathValue("op")
	if op != "cancel" && op != "release" && op != "approve" {
		apiError(w, http.StatusNotFound, "the actions are cancel, release and approve")
		return
	}
	var body struct {
		By string `json:"by"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		apiError(w, http.StatusBadRequest, "the body is empty or {\"by\": \"approver@example.co.jp\"}")
		return
	}
	done, err := a.act(r.Context(), r.PathValue("id"), op, body.By, actor, "api")
	if err != nil {
		a.apiFail(w, "acting on a message", err)
		return
	}
	m, err := a.messageJSON(r.Context(), r.PathValue("id"))
	if err != nil {
		a.apiFail(w, "reading a message", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"done": done, "message": m})
}

func (a *Admin) apiAudit(w http.ResponseWriter, r *http.Request, actor string) {
	q, err := a.auditQuery(r.URL.Query())
	if err != nil {
		a.apiFail(w, "", err)
		return
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "limit: a positive number")
			return
		}
		q.Limit = n
	}
	switch r.URL.Query().Get("format") {
	case "csv":
		a.event(r.Context(), store.Event{Event: "audit_export", Actor: actor, Via: "api", Detail: r.URL.RawQuery})
		a.writeCSV(w, r, q)
	case "", "json":
		a.writeAuditJSON(w, r, q)
	default:
		apiError(w, http.StatusBadRequest, "format: csv or json")
	}
}
