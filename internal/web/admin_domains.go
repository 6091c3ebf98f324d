package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// The Domains page: every rule with every field (policy.Fields), and a
// form per rule to add, change or delete it. The form is built from
// policy.Fields, so a field added there shows here with nothing else to
// change (its label comes from the catalog, "field.NAME", or is its
// name).

// badInput is a refusal the admin can mend: the page shows it, the API
// answers 400 with it.
type badInput struct{ msg string }

func (e *badInput) Error() string { return e.msg }

// putPolicy stores the rule for domain with exactly the given field
// values ("" or absent: unset), through policy.Validate, and records
// what changed. It returns the rule as stored.
func (a *Admin) putPolicy(ctx context.Context, actor, via, domain string, values map[string]string) (*policy.Policy, error) {
	return a.putPolicyIf(ctx, actor, via, domain, values, nil)
}

// seen is the rule as an admin's form showed it: none (a new rule), or
// one last changed at a time; a save over anything else is refused, so
// one admin does not undo another's change without seeing it.
type seen struct {
	isNew   bool
	updated int64 // the rule's UpdatedAt in ms
}

// putPolicyIf is putPolicy that refuses (409) when the stored rule is no
// longer what s says the admin saw (nil: no check).
func (a *Admin) putPolicyIf(ctx context.Context, actor, via, domain string, values map[string]string, s *seen) (*policy.Policy, error) {
	d, err := policy.NormalizePattern(domain)
	if err != nil {
		return nil, &badInput{err.Error()}
	}
	for name := range values {
		if !knownField(name) {
			return nil, &badInput{fmt.Sprintf("unknown field %q (the fields are %s)", name, strings.Join(fieldNames(), ", "))}
		}
	}
	old, err := a.o.Store.GetPolicy(ctx, d)
	if errors.Is(err, store.ErrNoPolicy) {
		old, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	exists := &conflict{fmt.Sprintf("a rule for %s exists already: nothing changed; open it from the list to change it", d)}
	changed := &conflict{fmt.Sprintf("the rule for %s was changed or deleted by someone else since this form was opened: nothing changed; open it again", d)}
	switch {
	case s == nil:
	case s.isNew && old != nil:
		return nil, exists
	case !s.isNew && (old == nil || old.UpdatedAt.UnixMilli() != s.updated):
		return nil, changed
	}
	p := &policy.Policy{Domain: d}
	var bad []string
	for _, f := range policy.Fields {
		if err := f.Set(p, values[f.Name]); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if err := p.Validate(); err != nil {
		bad = append(bad, err.Error())
	}
	if len(bad) > 0 {
		return nil, &badInput{"nothing changed: " + strings.Join(bad, "; ")}
	}
	p.UpdatedAt = a.now()
	// The check above tells what happened; the store checks again as it
	// writes, so of two saves of one form at once only one lands.
	switch {
	case s == nil:
		err = a.o.Store.PutPolicy(ctx, p)
	case s.isNew:
		if err = a.o.Store.PutPolicyIf(ctx, p, time.Time{}); errors.Is(err, store.ErrPolicyChanged) {
			return nil, exists
		}
	default:
		if err = a.o.Store.PutPolicyIf(ctx, p, time.UnixMilli(s.updated)); errors.Is(err, store.ErrPolicyChanged) {
			return nil, changed
		}
	}
	if err != nil {
		return nil, err
	}
	ev := "policy_set"
	if old == nil {
		ev = "policy_added"
	}
	a.event(ctx, store.Event{Event: ev, Actor: actor, Via: via, Target: "policy " + d, Detail: policy.Diff(old, p)})
	a.log.Info("policy saved", "domain", d, "by", actor, "via", via, "change", policy.Diff(old, p))
	return p, nil
}

// deletePolicy removes the rule for domain and records what it was.
func (a *Admin) deletePolicy(ctx context.Context, actor, via, domain string) error {
	d, err := policy.NormalizePattern(domain)
	if err != nil {
		return &badInput{err.Error()}
	}
	old, err := a.o.Store.GetPolicy(ctx, d)
	if err != nil {
		return err
	}
	if err := a.o.Store.DeletePolicy(ctx, d); err != nil {
		return err
	}
	a.event(ctx, store.Event{Event: "policy_deleted", Actor: actor, Via: via, Target: "policy " + d, Detail: policy.Diff(old, nil)})
	a.log.Info("policy deleted", "domain", d, "by", actor, "via", via)
	return nil
}

func knownField(name string) bool {
	for _, f := range policy.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func fieldNames() []string {
	var out []string
	for _, f := range policy.Fields {
		out = append(out, f.Name)
	}
	return out
}

// defaultOf is what a field is where no rule sets it.
func (a *Admin) defaultOf(field string) string {
	d := a.o.Defaults
	switch field {
	case "action":
		return string(policy.Encrypt)
	case "password_to":
		return string(policy.ToRecipient)
	case "delay":
		return policy.ShortDuration(d.Delay)
	case "zip_method":
		return d.ZipMethod
	case "filename_encoding":
		return d.FilenameEncoding
	case "language":
		return d.Language
	case "hold":
		return policy.ShortDuration(d.Hold)
	case "approvers":
		return "none"
	case "guard":
		return policy.GuardHold
	case "link_expiry":
		return policy.ShortDuration(d.LinkExpiry)
	case "max_downloads":
		return strconv.Itoa(d.MaxDownloads)
	case "link_auth":
		return d.LinkAuth
	}
	return ""
}

// fieldView is one field of the form or one cell of the table.
type fieldView struct {
	Name, Kind, Label, Help, Value, Default string
	Options                                 []string
}

func (a *Admin) fields(v *pageView, p *policy.Policy, values map[string]string) []fieldView {
	var out []fieldView
	for _, f := range policy.Fields {
		fv := fieldView{Name: f.Name, Kind: f.Kind, Label: v.T("field." + f.Name), Help: v.T("field." + f.Name + ".help"),
			Options: f.Values, Default: a.defaultOf(f.Name)}
		if fv.Label == "field."+f.Name {
			fv.Label = f.Name
		}
		if fv.Help == "field."+f.Name+".help" {
			fv.Help = ""
		}
		switch {
		case values != nil:
			fv.Value = values[f.Name]
		case p != nil:
			fv.Value = f.Get(p)
		}
		out = append(out, fv)
	}
	return out
}

type domainRow struct {
	Domain  string
	Link    string
	Fields  []fieldView
	Updated string
}

type domainsView struct {
	pageView
	Done    string
	Headers []fieldView
	Rows    []domainRow
}

func (a *Admin) domainsPage(w http.ResponseWriter, r *http.Request, q *adminReq) {
	list, err := a.o.Store.ListPolicies(r.Context())
	if err != nil {
		a.fail(w, r, "listing policies", err)
		return
	}
	v := &domainsView{pageView: a.pageView(r, q, "domains")}
	// The box says only what the list bears out: the URL is anyone's to
	// write.
	d := r.URL.Query().Get("d")
	exists := false
	for i := range list {
		exists = exists || list[i].Domain == d
	}
	switch done := r.URL.Query().Get("done"); {
	case done == "saved" && exists:
		v.Done = v.Tf("domains.saved", d)
	case done == "deleted" && !exists && d != "":
		if _, err := policy.NormalizePattern(d); err == nil {
			v.Done = v.Tf("domains.deleted", d)
		}
	}
	v.Headers = a.fields(&v.pageView, nil, nil)
	for i := range list {
		p := &list[i]
		v.Rows = append(v.Rows, domainRow{Domain: p.Domain, Link: "/admin/domain?d=" + url.QueryEscape(p.Domain),
			Fields: a.fields(&v.pageView, p, nil), Updated: v.Time(p.UpdatedAt)})
	}
	a.render(w, http.StatusOK, "domains", v)
}

type domainView struct {
	pageView
	Domain  string
	New     bool
	Updated int64 // the rule's UpdatedAt in ms, sent back with the form
	Error   string
	Fields  []fieldView
}

func (a *Admin) domainPage(w http.ResponseWriter, r *http.Request, q *adminReq) {
	v := &domainView{pageView: a.pageView(r, q, "domains"), New: true}
	if d := r.URL.Query().Get("d"); d != "" {
		p, err := a.o.Store.GetPolicy(r.Context(), d)
		switch {
		case errors.Is(err, store.ErrNoPolicy):
			v.Domain = d
		case err != nil:
			a.message(w, r, q, http.StatusNotFound, "domains.not_found")
			return
		default:
			v.Domain, v.New, v.Updated = p.Domain, false, p.UpdatedAt.UnixMilli()
			v.Fields = a.fields(&v.pageView, p, nil)
		}
	}
	if v.Fields == nil {
		v.Fields = a.fields(&v.pageView, nil, map[string]string{})
	}
	a.render(w, http.StatusOK, "domain", v)
}

func (a *Admin) domainSave(w http.ResponseWriter, r *http.Request, q *adminReq) {
	domain := strings.TrimSpace(r.PostForm.Get("domain"))
	values := map[string]string{}
	for _, f := range policy.Fields {
		values[f.Name] = r.PostForm.Get(f.Name)
	}
	// The form says what it showed: a new rule, or the rule as of its
	// time. A POST that says neither (a script) just replaces the rule.
	saw := &seen{isNew: r.PostForm.Get("new") != ""}
	check := saw
	if u := r.PostForm.Get("updated"); u != "" {
		saw.updated, _ = strconv.ParseInt(u, 10, 64)
	} else if !saw.isNew {
		check = nil
	}
	p, err := a.putPolicyIf(r.Context(), q.actor(), "page", domain, values, check)
	var bad *badInput
	var busy *conflict
	switch {
	case errors.As(err, &bad), errors.As(err, &busy):
		v := &domainView{pageView: a.pageView(r, q, "domains"), Domain: domain, New: saw.isNew, Updated: saw.updated}
		status := http.StatusBadRequest
		if bad != nil {
			v.Error = bad.msg
		} else {
			v.Error, status = busy.msg, http.StatusConflict
		}
		v.Fields = a.fields(&v.pageView, nil, values)
		a.render(w, status, "domain", v)
		return
	case err != nil:
		a.fail(w, r, "saving a policy", err)
		return
	}
	http.Redirect(w, r, "/admin/domains?done=saved&d="+url.QueryEscape(p.Domain), http.StatusSeeOther)
}

func (a *Admin) domainDelete(w http.ResponseWriter, r *http.Request, q *adminReq) {
	domain := r.PostForm.Get("domain")
	err := a.deletePolicy(r.Context(), q.actor(), "page", domain)
	var bad *badInput
	switch {
	case errors.Is(err, store.ErrNoPolicy), errors.As(err, &bad):
		a.message(w, r, q, http.StatusNotFound, "domains.not_found")
		return
	case err != nil:
		a.fail(w, r, "deleting a policy", err)
		return
	}
	http.Redirect(w, r, "/admin/domains?done=deleted&d="+url.QueryEscape(domain), http.StatusSeeOther)
}
