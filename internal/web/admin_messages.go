package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	dl "github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// The Messages page: recent message records with filters, each with its
// decision, held state, password jobs and history, and the actions its
// state allows: Cancel (the password, or the held message), Release now
// (the password), Send now (a held message), Approve (in an approver's
// name). The API's message routes share act.

// conflict: the message is not in a state that allows the action.
type conflict struct{ msg string }

func (e *conflict) Error() string { return e.msg }

// openJobs are the jobs of a message an admin can still cancel or
// release.
func openJobs(jobs []*store.Job) []*store.Job {
	var out []*store.Job
	for _, j := range jobs {
		if j.State == store.Pending || j.State == store.Scheduled {
			out = append(out, j)
		}
	}
	return out
}

func openApprovers(h *store.HeldMessage) []string {
	var out []string
	for _, set := range h.Approvals {
		for _, a := range set {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// act does op on message id for actor (an admin, a token) via page or
// api: cancel, release (the passwords; for a held message, send now),
// sendnow, approve (by: the approver in whose name). Every change is in
// the audit trail with the actor. It returns what was done.
func (a *Admin) act(ctx context.Context, id, op, by, actor, via string) (string, error) {
	now := a.now()
	h, err := a.o.Store.GetHeld(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h = nil
	case err != nil:
		return "", err
	}
	if _, err := a.o.Store.GetMessage(ctx, id); errors.Is(err, store.ErrNoMessage) && h == nil {
		return "", store.ErrNoMessage
	}
	waiting := h != nil && h.State == store.HeldWaiting
	wakeHold := func() {
		if a.o.WakeHold != nil {
			a.o.WakeHold()
		}
	}
	wake := func() {
		if a.o.Wake != nil {
			a.o.Wake()
		}
	}
	if waiting && (op == "release" || op == "sendnow") {
		if err := a.o.Store.SendHeldNow(ctx, id, actor, via, now); err != nil {
			return "", heldConflict(err)
		}
		wakeHold()
		return "sent_now", nil
	}
	switch op {
	case "approve":
		if !waiting {
			return "", &conflict{"not a held message that waits for approval"}
		}
		open := openApprovers(h)
		if by == "" && len(open) == 1 {
			by = open[0]
		}
		if !slices.Contains(open, strings.ToLower(by)) {
			if len(open) == 0 {
				return "", &conflict{"no approval is needed"}
			}
			return "", &badInput{fmt.Sprintf("by: give the approver in whose name to approve: one of %s", strings.Join(open, ", "))}
		}
		if err := a.o.Store.ApproveHeld(ctx, id, by, via, now); err != nil {
			return "", heldConflict(err)
		}
		a.event(ctx, store.Event{Message: id, Event: "approved_by_admin", Actor: actor, Via: via, Detail: "in the name of " + by})
		wakeHold()
		return "approved", nil
	case "sendnow":
		return "", &conflict{"not a held message waiting to be sent"}
	case "cancel":
		if waiting {
			if err := a.o.Store.CancelHeld(ctx, id, actor, via, now); err != nil {
				return "", heldConflict(err)
			}
			wakeHold()
			return "canceled", nil
		}
	case "release":
	default:
		return "", &badInput{fmt.Sprintf("unknown action %q", op)}
	}
	jobs, err := a.o.Store.JobsOf(ctx, id)
	if err != nil {
		return "", err
	}
	// Download links: cancel takes them back, also after their password
	// went; a link opened by codes has no password to release.
	linked, err := a.links(ctx, jobs)
	if err != nil {
		return "", err
	}
	revoked := 0
	if op == "cancel" {
		for _, l := range linked {
			if l.State != store.LinkPending && l.State != store.LinkActive {
				continue
			}
			err := a.o.Store.EndLink(ctx, l.ID, store.LinkRevoked, actor, store.Event{Message: l.Message, At: now,
				Event: dl.EventRevoked, Actor: actor, Via: via, Detail: l.ID})
			if errors.Is(err, store.ErrLinkEnded) {
				continue
			}
			if err != nil {
				return "", err
			}
			a.o.Log.Info("download link revoked", "id", l.ID, "message", l.Message, "by", actor, "via", via, "downloads", l.Downloads)
			revoked++
		}
		if revoked > 0 {
			if a.o.WakeLinks != nil {
				a.o.WakeLinks()
			}
			// Taking a link back canceled its job; other copies' jobs
			// (a zip to another domain) are canceled below.
			if jobs, err = a.o.Store.JobsOf(ctx, id); err != nil {
				return "", err
			}
		}
	}
	var open []*store.Job
	for _, j := range openJobs(jobs) {
		if l := linked[j.ID]; op == "release" && l != nil && l.Auth == policy.AuthOTP {
			continue
		}
		open = append(open, j)
	}
	if len(open) == 0 && revoked > 0 {
		wake()
		return "canceled", nil
	}
	if len(open) == 0 {
		return "", &conflict{jobsConflict(jobs, h)}
	}
	for _, j := range open {
		var err error
		event := "password_canceled"
		if op == "cancel" {
			err = a.o.Store.Cancel(ctx, j.ID, now)
		} else {
			err, event = a.o.Store.ReleaseNow(ctx, j.ID, now), "password_release_now"
		}
		if err != nil {
			return "", &conflict{fmt.Sprintf("job %s: %v", j.ID, err)}
		}
		a.event(ctx, store.Event{Message: id, Event: event, Actor: actor, Via: via, Detail: "job " + j.ID})
	}
	wake()
	if op == "cancel" {
		return "canceled", nil
	}
	return "released", nil
}

// links returns the download links of jobs, by job id.
func (a *Admin) links(ctx context.Context, jobs []*store.Job) (map[string]*store.Link, error) {
	out := map[string]*store.Link{}
	for _, j := range jobs {
		l, err := a.o.Store.GetLink(ctx, j.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[j.ID] = l
	}
	return out, nil
}

// jobsConflict says why no password can be canceled or released.
func jobsConflict(jobs []*store.Job, h *store.HeldMessage) string {
	if h != nil && h.State != store.HeldSent {
		return "the held message is " + string(h.State)
	}
	if len(jobs) == 0 {
		return "the message has no password to cancel or release"
	}
	var states []string
	for _, j := range jobs {
		states = append(states, string(j.State))
	}
	return "its passwords are " + strings.Join(states, ", ")
}

func heldConflict(err error) error {
	switch {
	case errors.Is(err, store.ErrAlreadySent), errors.Is(err, store.ErrSending), errors.Is(err, store.ErrAlreadyCanceled),
		errors.Is(err, store.ErrFinished), errors.Is(err, store.ErrTooLate), errors.Is(err, store.ErrNotApprover):
		return &conflict{err.Error()}
	}
	return err
}

// parseTime reads a date (2026-11-27, in the server's zone), a time from
// a datetime-local field (2026-11-27T10:30) or RFC 3339. end makes a
// bare date mean the end of that day.
func parseTime(v string, loc *time.Location, end bool) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", v, loc); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &badInput{fmt.Sprintf("%q is not a date like 2026-11-27 or a time like 2026-11-27T10:30", v)}
}

// messageQuery reads the filters of the Messages page and the API.
func (a *Admin) messageQuery(v url.Values) (store.MessageQuery, error) {
	q := store.MessageQuery{Sender: v.Get("sender"), Rcpt: v.Get("rcpt"), Domain: v.Get("domain"), File: v.Get("file"),
		State: v.Get("state"), Limit: 200}
	if q.State != "" && !slices.Contains(store.MessageStates, q.State) {
		return q, &badInput{fmt.Sprintf("state: %q is not one of %s", q.State, strings.Join(store.MessageStates, ", "))}
	}
	var err error
	if q.Since, err = parseTime(v.Get("since"), a.loc(), false); err != nil {
		return q, err
	}
	if q.Until, err = parseTime(v.Get("until"), a.loc(), true); err != nil {
		return q, err
	}
	return q, nil
}

// stateKey sums up where a message is, for the list.
func stateKey(m *store.MessageSummary) string {
	switch m.Held {
	case store.HeldWaiting, store.HeldSending:
		return "state.held"
	case store.HeldCanceled, store.HeldRejected, store.HeldExpired, store.HeldFailed:
		return "state.held_" + string(m.Held)
	}
	for _, st := range []store.State{store.Failed, store.Pending, store.Scheduled, store.Sending, store.Canceled, store.Released} {
		if slices.Contains(m.Jobs, st) {
			return "state.job_" + string(st)
		}
	}
	switch {
	case strings.HasPrefix(m.Result, "5"):
		return "state.refused"
	case strings.HasPrefix(m.Result, "4"):
		return "state.deferred"
	}
	return "state.delivered"
}

type messageRow struct {
	ID, Link, Time, Sender, Subject, State, Result string
	Rcpts                                          []string
	Files                                          []fileView
}

type messagesView struct {
	pageView
	Filter url.Values
	States []string
	Error  string
	Rows   []messageRow
}

func (a *Admin) messagesPage(w http.ResponseWriter, r *http.Request, q *adminReq) {
	v := &messagesView{pageView: a.pageView(r, q, "messages"), Filter: r.URL.Query(), States: store.MessageStates}
	mq, err := a.messageQuery(r.URL.Query())
	var list []*store.MessageSummary
	if err == nil {
		list, err = a.o.Store.FindMessages(r.Context(), mq)
	}
	var bad *badInput
	switch {
	case errors.As(err, &bad):
		v.Error = bad.msg
	case err != nil:
		a.fail(w, r, "listing messages", err)
		return
	}
	for _, m := range list {
		row := messageRow{ID: m.ID, Link: "/admin/messages/" + url.PathEscape(m.ID), Time: v.Time(m.CreatedAt),
			Sender: m.Sender, Subject: m.Subject, Rcpts: m.Rcpts, State: v.T(stateKey(m)), Result: m.Result}
		for _, f := range m.Files {
			row.Files = append(row.Files, fileView{Name: f.Name, Size: notice.HumanSize(f.Size)})
		}
		v.Rows = append(v.Rows, row)
	}
	status := http.StatusOK
	if v.Error != "" {
		status = http.StatusBadRequest
	}
	a.render(w, status, "messages", v)
}

type jobRow struct {
	ID, State, ZipName, PasswordTo, Due, Finished, LastError string
	Link                                                     string // a download link's state, downloads, expiry
	Rcpts                                                    []string
}

type messageView struct {
	pageView
	M          *store.MessageSummary
	Files      []fileView
	State      string
	Held       *store.HeldMessage
	WaitsFor   []string
	Jobs       []jobRow
	Events     []store.Event
	Done       string
	Error      string
	CanCancel  bool
	CanRelease bool
	CanSendNow bool
	Approvers  []string
	Base       string
}

// messageDetail gathers what the page of one message shows.
func (a *Admin) messageDetail(ctx context.Context, v *messageView, id string) error {
	m, err := a.o.Store.FindMessage(ctx, id)
	if err != nil {
		return err
	}
	v.M, v.State, v.Base = m, v.T(stateKey(m)), "/admin/messages/"+url.PathEscape(id)
	for _, f := range m.Files {
		v.Files = append(v.Files, fileView{Name: f.Name, Size: notice.HumanSize(f.Size)})
	}
	if h, err := a.o.Store.GetHeld(ctx, id); err == nil {
		v.Held = h
		if h.State == store.HeldWaiting {
			v.CanCancel, v.CanSendNow, v.Approvers = true, true, openApprovers(h)
			now := a.now()
			if h.HoldUntil.After(now) {
				v.WaitsFor = append(v.WaitsFor, v.Tf("held.until", v.Time(h.HoldUntil)))
			}
			for _, set := range h.Approvals {
				v.WaitsFor = append(v.WaitsFor, v.Tf("held.approval", strings.Join(set, " / ")))
			}
			if !h.SenderOK {
				v.WaitsFor = append(v.WaitsFor, v.Tf("held.guard", h.Visible))
			}
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	jobs, err := a.o.Store.JobsOf(ctx, id)
	if err != nil {
		return err
	}
	linked, err := a.links(ctx, jobs)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		due := v.Time(j.DueAt)
		if j.DueAt.IsZero() && j.FinishedAt.IsZero() {
			due = v.T("job.on_release")
		}
		row := jobRow{ID: j.ID, State: v.T("job." + string(j.State)), ZipName: j.ZipName,
			PasswordTo: string(j.PasswordTo), Due: due, Finished: v.Time(j.FinishedAt), LastError: j.LastError, Rcpts: j.Rcpts}
		open := j.State == store.Pending || j.State == store.Scheduled
		if l := linked[j.ID]; l != nil {
			row.Link = v.Tf("job.link", string(l.State), l.Downloads, v.Time(l.ExpiresAt))
			if l.State == store.LinkPending || l.State == store.LinkActive {
				v.CanCancel = true // a link is taken back also after its password went
			}
			if open && l.Auth == policy.AuthOTP {
				v.CanCancel, open = true, false // no password to release
			}
		}
		if open {
			v.CanCancel, v.CanRelease = true, true
		}
		v.Jobs = append(v.Jobs, row)
	}
	v.Events, err = a.o.Store.Events(ctx, id)
	return err
}

func (a *Admin) messagePage(w http.ResponseWriter, r *http.Request, q *adminReq) {
	v := &messageView{pageView: a.pageView(r, q, "messages")}
	if done := r.URL.Query().Get("done"); done != "" {
		v.Done = v.T("done." + done)
	}
	a.showMessage(w, r, q, v, http.StatusOK)
}

func (a *Admin) showMessage(w http.ResponseWriter, r *http.Request, q *adminReq, v *messageView, status int) {
	err := a.messageDetail(r.Context(), v, r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNoMessage):
		a.message(w, r, q, http.StatusNotFound, "messages.not_found")
		return
	case err != nil:
		a.fail(w, r, "reading a message", err)
		return
	}
	a.render(w, status, "message_detail", v)
}

func (a *Admin) messageAction(w http.ResponseWriter, r *http.Request, q *adminReq) {
	id, op := r.PathValue("id"), r.PathValue("op")
	done, err := a.act(r.Context(), id, op, r.PostForm.Get("by"), q.actor(), "page")
	var bad *badInput
	var c *conflict
	switch {
	case err == nil:
		http.Redirect(w, r, "/admin/messages/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
	case errors.Is(err, store.ErrNoMessage):
		a.message(w, r, q, http.StatusNotFound, "messages.not_found")
	case errors.As(err, &bad):
		v := &messageView{pageView: a.pageView(r, q, "messages"), Error: bad.msg}
		a.showMessage(w, r, q, v, http.StatusBadRequest)
	case errors.As(err, &c):
		v := &messageView{pageView: a.pageView(r, q, "messages"), Error: c.msg}
		a.showMessage(w, r, q, v, http.StatusConflict)
	default:
		a.fail(w, r, "acting on a message", err)
	}
}
