package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
)

// The pages of a held message (issue 9): the sender's, linked from the
// notice "your mail is held" (/h/{token}: Send now, Cancel), and each
// approver's, linked from their approval request (/a/{token}: Approve,
// Reject). As on the password page: the link carries a token whose hash
// alone is stored, GET changes nothing, the forms carry the token's CSRF
// value, and every unknown or malformed token gets the one 404 page.

// routeReject is the one route whose body may be larger (the reason).
const routeReject = "POST /a/{token}/reject"

// maxReason is the longest reject reason, in characters; a longer one is
// refused (the page comes back with the text, to shorten), never cut.
const maxReason = 500

// via is how page actions are recorded in a message's history.
const via = "page"

// errTooLate: the time to decide is over, though the scheduler has not
// yet marked the message expired.
var errTooLate = store.ErrTooLate

func (s *Server) routeHeld() {
	s.mux.HandleFunc("GET /h/{token}", s.heldPage)
	s.mux.HandleFunc("POST /h/{token}/send", s.heldAction(true))
	s.mux.HandleFunc("POST /h/{token}/cancel", s.heldAction(false))
	s.mux.HandleFunc("GET /a/{token}", s.approverPage)
	s.mux.HandleFunc("POST /a/{token}/approve", s.approverAction(true))
	s.mux.HandleFunc(routeReject, s.approverAction(false))
}

func (s *Server) wakeHold() {
	if s.WakeHold != nil {
		s.WakeHold()
	}
}

// lookupHeld finds the held message of a sender's token. On false the
// answer is written: the 404 page or 500.
func (s *Server) lookupHeld(w http.ResponseWriter, ctx context.Context, token string) (*store.HeldMessage, bool) {
	if !validToken(token) {
		s.notFound(w)
		return nil, false
	}
	h, err := s.st.HeldByToken(ctx, release.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w)
		return nil, false
	}
	if err != nil {
		s.fail(w, "looking up a held message's sender token", err)
		return nil, false
	}
	return h, true
}

// lookupApprover finds the held message of an approver's token, and the
// approver.
func (s *Server) lookupApprover(w http.ResponseWriter, ctx context.Context, token string) (*store.HeldMessage, string, bool) {
	if !validToken(token) {
		s.notFound(w)
		return nil, "", false
	}
	h, me, err := s.st.HeldByApprover(ctx, release.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w)
		return nil, "", false
	}
	if err != nil {
		s.fail(w, "looking up an approver token", err)
		return nil, "", false
	}
	return h, me, true
}

// reread fetches h as it is now, after a refused action.
func (s *Server) reread(w http.ResponseWriter, ctx context.Context, h *store.HeldMessage) (*store.HeldMessage, bool) {
	cur, err := s.st.GetHeld(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w)
		return nil, false
	}
	if err != nil {
		s.fail(w, "reading a held message", err)
		return nil, false
	}
	return cur, true
}

// heldLinks are relative, like the password page's: at /h/{token} an
// action is {token}/send, at /h/{token}/send the page is ../{token}.
type heldLinks struct{ Send, Cancel, Approve, Reject, Page string }

func (s *Server) heldPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	h, ok := s.lookupHeld(w, r.Context(), token)
	if !ok {
		return
	}
	s.renderHeld(w, http.StatusOK, "held", s.senderView(h, token, heldLinks{Send: token + "/send", Cancel: token + "/cancel"}, nil))
}

func (s *Server) heldAction(send bool) http.HandlerFunc {
	action := "cancel"
	if send {
		action = "send now"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := s.postForm(w, r, true)
		if !ok {
			return
		}
		ln := heldLinks{Send: "send", Cancel: "cancel", Page: "../" + token}
		ctx := r.Context()
		h, ok := s.lookupHeld(w, ctx, token)
		if !ok {
			return
		}
		now := s.now()
		var err error
		switch {
		case send && h.State == store.HeldWaiting && late(h, now):
			err = errTooLate
		case send:
			err = s.st.SendHeldNow(ctx, h.ID, h.Sender, via, now)
		default:
			err = s.st.CancelHeld(ctx, h.ID, h.Sender, via, now)
		}
		if err == nil {
			s.log.Info("held message page: "+action, "id", h.ID, "from", h.Sender, "action", action)
			s.wakeHold()
			w.Header().Set("Location", ln.Page)
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		var m bi
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.notFound(w)
			return
		case errors.Is(err, errTooLate):
			m = msgHeldTooLate
		case errors.Is(err, store.ErrSending) && send:
			m = msgHeldSendingSend
		case errors.Is(err, store.ErrSending):
			m = msgHeldSendingCancel
		case errors.Is(err, store.ErrAlreadySent) && send:
			m = msgHeldSentSend
		case errors.Is(err, store.ErrAlreadySent):
			m = msgHeldSentCancel
		case errors.Is(err, store.ErrAlreadyCanceled) && send:
			m = msgHeldCanceledSend
		case errors.Is(err, store.ErrAlreadyCanceled):
			m = msgHeldCanceledCancel
		case errors.Is(err, store.ErrFinished):
			m = msgHeldFinished
		default:
			s.fail(w, "held message page: "+action, err)
			return
		}
		s.log.Info("held message page: refused", "id", h.ID, "from", h.Sender, "action", action, "reason", err.Error())
		if h, ok = s.reread(w, ctx, h); !ok {
			return
		}
		s.renderHeld(w, http.StatusConflict, "held", s.senderView(h, token, ln, &m))
	}
}

func (s *Server) approverPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	h, me, ok := s.lookupApprover(w, r.Context(), token)
	if !ok {
		return
	}
	s.renderHeld(w, http.StatusOK, "approve",
		s.approverView(h, me, token, heldLinks{Approve: token + "/approve", Reject: token + "/reject"}, nil))
}

func (s *Server) approverAction(approve bool) http.HandlerFunc {
	action := "reject"
	if approve {
		action = "approve"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := s.postForm(w, r, true)
		if !ok {
			return
		}
		ln := heldLinks{Approve: "approve", Reject: "reject", Page: "../" + token}
		ctx := r.Context()
		h, me, ok := s.lookupApprover(w, ctx, token)
		if !ok {
			return
		}
		now := s.now()
		var reason string
		if !approve {
			reason = cleanReason(r.PostForm.Get("reason"))
			if n := utf8.RuneCountInString(reason); n > maxReason {
				// Nothing is cut: the text comes back to be shortened.
				m := bi{fmt.Sprintf("却下の理由が長すぎます（%d 文字。%d 文字まで）。短くしてから、もう一度「却下する」を押してください。まだ何も変更していません。", n, maxReason),
					fmt.Sprintf("The reason is too long (%d characters; at most %d). Shorten it and press Reject again. Nothing was changed yet.", n, maxReason)}
				v := s.approverView(h, me, token, ln, &m)
				v.Reason = reason
				s.renderHeld(w, http.StatusBadRequest, "approve", v)
				return
			}
		}
		var err error
		switch {
		case h.State == store.HeldWaiting && late(h, now):
			err = errTooLate
		case approve:
			err = s.st.ApproveHeld(ctx, h.ID, me, via, now)
		default:
			err = s.st.RejectHeld(ctx, h.ID, me, via, reason, now)
		}
		if err == nil {
			s.log.Info("approver page: "+action, "id", h.ID, "from", h.Sender, "approver", me, "action", action)
			s.wakeHold()
			w.Header().Set("Location", ln.Page)
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			s.notFound(w)
			return
		}
		known := errors.Is(err, errTooLate) || errors.Is(err, store.ErrNotApprover) || errors.Is(err, store.ErrSending) ||
			errors.Is(err, store.ErrAlreadySent) || errors.Is(err, store.ErrAlreadyCanceled) || errors.Is(err, store.ErrFinished)
		if !known {
			s.fail(w, "approver page: "+action, err)
			return
		}
		s.log.Info("approver page: refused", "id", h.ID, "from", h.Sender, "approver", me, "action", action, "reason", err.Error())
		if h, ok = s.reread(w, ctx, h); !ok {
			return
		}
		m := s.approverRefusal(err, h, me, approve)
		s.renderHeld(w, http.StatusConflict, "approve", s.approverView(h, me, token, ln, &m))
	}
}

// approverRefusal says why an approver's decision was not taken, by what
// the message is now.
func (s *Server) approverRefusal(err error, h *store.HeldMessage, me string, approve bool) bi {
	now := s.now().In(s.loc())
	switch {
	case errors.Is(err, errTooLate):
		return bi{fmt.Sprintf("決定の期限（%s）を過ぎたため、承認も却下もできません。このメールは送信されません。", s.full(h.Expires)),
			fmt.Sprintf("The time to decide (until %s) is over: the mail can no longer be approved or rejected, and it will not be sent.", s.full(h.Expires))}
	case errors.Is(err, store.ErrNotApprover):
		if a := approvalBy(h, me); a != nil {
			return bi{fmt.Sprintf("このメールは、あなたが %s に承認済みです。", s.clock(a.At, now)),
				fmt.Sprintf("You already approved this mail at %s.", s.clock(a.At, now))}
		}
		m := bi{"ご確認ありがとうございます。このメールは、同じ承認グループの方が既に承認したため、あなたの判断は不要になりました。",
			"Thank you for looking. Someone in your approver group already approved this mail, so your decision is no longer needed."}
		if !approve {
			m.Ja += fmt.Sprintf("送信すべきでないとお考えの場合は、送信者（%s）に直接ご連絡ください。", h.Sender)
			m.En += fmt.Sprintf(" If you think it should not be sent, please contact the sender (%s) directly.", h.Sender)
		}
		return m
	case errors.Is(err, store.ErrSending):
		return bi{"このメールは今まさに送信中のため、承認も却下もできません。", "The mail is being sent right now; it can no longer be approved or rejected."}
	case errors.Is(err, store.ErrAlreadySent):
		return bi{"このメールは既に送信されました。", "The mail was already sent."}
	case errors.Is(err, store.ErrAlreadyCanceled):
		return bi{"このメールは取り消されたため、承認や却下の必要はありません。", "The mail was canceled; there is nothing to decide."}
	}
	switch h.State {
	case store.HeldRejected:
		if h.DecidedBy == me {
			return bi{"このメールは、あなたが既に却下しています。", "You already rejected this mail."}
		}
		return bi{fmt.Sprintf("このメールは、既に %s さんが却下しました。", h.DecidedBy),
			fmt.Sprintf("%s already rejected this mail.", h.DecidedBy)}
	case store.HeldExpired:
		return bi{fmt.Sprintf("決定の期限（%s）を過ぎたため、このメールは送信されません。", s.full(h.Expires)),
			fmt.Sprintf("The time to decide (until %s) is over; the mail is not sent.", s.full(h.Expires))}
	}
	return bi{"このメールの送信は既に終わっているため、変更できません。", "This mail is already finished; it cannot be changed."}
}

// late: the message still waits for someone, but its time to decide is
// over; the scheduler is about to mark it expired. A yes now must not
// make it leave.
func late(h *store.HeldMessage, now time.Time) bool {
	return h.Waiting() && !h.Expires.IsZero() && !now.Before(h.Expires)
}

// cleanReason makes what an approver typed safe to store and to mail:
// valid UTF-8, the browser's CRLF as one newline (so a textarea's
// maxlength and our count agree), no control characters, no blank ends.
func cleanReason(r string) string {
	r = strings.ToValidUTF8(r, "\uFFFD")
	r = strings.ReplaceAll(r, "\r\n", "\n")
	r = strings.Map(func(c rune) rune {
		if c == '\r' {
			return '\n'
		}
		if unicode.IsControl(c) && c != '\n' && c != '\t' {
			return -1
		}
		return c
	}, r)
	return strings.TrimSpace(r)
}

// inSets: addr is in one of the approver sets still open.
func inSets(sets [][]string, addr string) bool {
	for _, set := range sets {
		if slices.ContainsFunc(set, func(a string) bool { return strings.EqualFold(a, addr) }) {
			return true
		}
	}
	return false
}

func approvalBy(h *store.HeldMessage, addr string) *store.Approval {
	for i := range h.Approved {
		if strings.EqualFold(h.Approved[i].By, addr) {
			return &h.Approved[i]
		}
	}
	return nil
}

// actor names who canceled: an address, or one of the store's words.
func actor(a string) bi {
	switch a {
	case "admin":
		return bi{"管理者", "an administrator"}
	case "":
		return bi{"—", "—"}
	}
	return bi{a + " さん", a}
}

// heldView is what the two pages of a held message show. There is no
// password yet; the approver's page has no link to the sender's.
type heldView struct {
	Msg   *bi
	Head  bi // what this is about
	State bi
	Class string // open, done, canceled, failed
	Why   []bi   // while held: what it waits for, one line each
	Said  string // the reason an approver gave for rejecting
	// The sender's forms.
	CanSend, CanCancel bool
	SendNote           *bi
	// The approver's forms.
	CanDecide bool
	Reason    string // a reason given back to shorten
	MaxReason int

	From     string // the sender, on the approver's page
	Subject  string
	Rcpts    []string
	Files    []fileView
	Received string
	Until    string // end of the hold, while held
	Deadline string // until when it can be decided, while held
	CSRF     string
	Links    heldLinks
}

func (s *Server) baseView(h *store.HeldMessage, ln heldLinks, m *bi) *heldView {
	v := &heldView{Msg: m, Subject: h.Subject, Rcpts: h.Rcpts, Received: s.full(h.CreatedAt), Links: ln, MaxReason: maxReason}
	for _, f := range h.Files {
		v.Files = append(v.Files, fileView{Name: f.Name, Size: notice.HumanSize(f.Size)})
	}
	if h.State == store.HeldWaiting {
		if slices.Contains(h.Reasons, store.ReasonHold) && h.HoldUntil.After(s.now()) {
			v.Until = s.full(h.HoldUntil)
		}
		if !h.Expires.IsZero() && h.Waiting() {
			v.Deadline = s.full(h.Expires)
		}
	}
	return v
}

// senderView is the sender's page of h.
func (s *Server) senderView(h *store.HeldMessage, token string, ln heldLinks, m *bi) *heldView {
	now := s.now().In(s.loc())
	at := func(t time.Time) string { return s.clock(t, now) }
	v := s.baseView(h, ln, m)
	v.Head = bi{"送信保留中のメール", "Held mail"}
	if h.State == store.HeldWaiting && late(h, now) {
		// The scheduler is about to mark it expired: no forms.
		v.Class, v.State = "canceled", expired(h, false, s.full(h.Expires))
		return v
	}
	switch h.State {
	case store.HeldWaiting:
		v.Class, v.CanCancel, v.CSRF = "open", true, s.csrf(token)
		v.State = bi{"このメールはまだ送信されていません。", "This mail has not left yet."}
		v.Why = s.why(h, now, false)
		// Send now only where it changes something: it ends the hold,
		// confirms the To/Cc guard, or retries a deferred send now.
		v.CanSend = (!h.SenderOK || h.HoldUntil.After(now) || h.NextAttempt.After(now))
		switch {
		case v.CanSend && len(h.Approvals) > 0:
			v.SendNote = &bi{"「今すぐ送る」を押しても、承認者の承認がそろうまでは送信されません。宛先を間違えた場合は「送信を取り消す」を押してください。このメールは送信されません。",
				"Send now does not skip the approval: the mail leaves once it is approved. If it is addressed wrongly, press Cancel: the mail never leaves."}
		case v.CanSend:
			v.SendNote = &bi{"宛先を間違えた場合は「送信を取り消す」を押してください。このメールは送信されません。「今すぐ送る」を押すと、保留を終えてすぐに送信します。",
				"If it is addressed wrongly, press Cancel: the mail never leaves. Send now sends it at once, without waiting any longer."}
		default:
			v.SendNote = &bi{"宛先を間違えた場合は「送信を取り消す」を押してください。このメールは送信されません。",
				"If it is addressed wrongly, press Cancel: the mail never leaves."}
		}
	case store.HeldSending:
		v.Class = "open"
		v.State = bi{"このメールを送信しています。取り消しはできません。", "The mail is being sent now; it can no longer be canceled."}
	case store.HeldSent, store.HeldCanceled:
		v.Class, v.State = finished(h, at, false)
	case store.HeldRejected:
		v.Class = "failed"
		v.State, v.Said = rejected(h, at, ""), h.Reason
	case store.HeldExpired:
		v.Class = "canceled"
		v.State = expired(h, false, s.full(h.Expires))
	case store.HeldFailed:
		v.Class = "failed"
		reason := h.LastError
		if reason == "" {
			reason = "—"
		}
		v.State = bi{fmt.Sprintf("このメールを送信できませんでした（%s）。理由: %s　管理者にお問い合わせください。", at(h.FinishedAt), reason),
			fmt.Sprintf("The mail could not be sent (%s). Reason: %s. Please contact your administrator.", at(h.FinishedAt), reason)}
	default:
		v.Class = "failed"
		v.State = bi{"状態が不明です: " + string(h.State), "Unknown state: " + string(h.State)}
	}
	return v
}

// approverView is approver me's page of h.
func (s *Server) approverView(h *store.HeldMessage, me, token string, ln heldLinks, m *bi) *heldView {
	now := s.now().In(s.loc())
	at := func(t time.Time) string { return s.clock(t, now) }
	v := s.baseView(h, ln, m)
	v.Head = bi{"承認依頼", "Approval request"}
	v.From = h.Sender
	switch h.State {
	case store.HeldWaiting:
		v.Class = "open"
		mine := approvalBy(h, me)
		switch {
		case late(h, now):
			v.Class = "canceled"
			v.State = expired(h, true, s.full(h.Expires))
		case inSets(h.Approvals, me):
			v.CanDecide, v.CSRF = true, s.csrf(token)
			v.State = bi{fmt.Sprintf("%s さんのメールが、あなたの承認を待っています。", h.Sender),
				fmt.Sprintf("This mail from %s waits for your approval.", h.Sender)}
		case mine != nil:
			v.Class = "done"
			v.State = bi{fmt.Sprintf("あなたは %s にこのメールを承認しました。", at(mine.At)),
				fmt.Sprintf("You approved this mail at %s.", at(mine.At))}
		default:
			v.Class = "done"
			v.State = bi{"このメールは、同じ承認グループの方が既に承認したため、あなたの判断は不要になりました。",
				"Someone in your approver group already approved this mail, so your decision is no longer needed."}
		}
		if !late(h, now) {
			v.Why = s.why(h, now, true)
		}
	case store.HeldSending:
		v.Class = "open"
		v.State = bi{"このメールを送信しています。", "The mail is being sent now."}
	case store.HeldSent, store.HeldCanceled:
		v.Class, v.State = finished(h, at, true)
	case store.HeldRejected:
		v.Class = "failed"
		v.State, v.Said = rejected(h, at, me), h.Reason
	case store.HeldExpired:
		v.Class = "canceled"
		v.State = expired(h, true, s.full(h.Expires))
	case store.HeldFailed:
		// What the next hop said is for the sender and the admin.
		v.Class = "failed"
		v.State = bi{fmt.Sprintf("このメールは送信できませんでした（%s）。", at(h.FinishedAt)),
			fmt.Sprintf("The mail could not be sent (%s).", at(h.FinishedAt))}
	default:
		v.Class = "failed"
		v.State = bi{"状態が不明です: " + string(h.State), "Unknown state: " + string(h.State)}
	}
	return v
}

// rejected says who rejected h (the reason is shown apart, with its
// line breaks); me is the approver looking, or "" on the sender's page.
// finished says that a held message was sent or canceled, and by whom: to
// the sender ("you") or to an approver ("the sender").
func finished(h *store.HeldMessage, at func(time.Time) string, approverPage bool) (string, bi) {
	when := at(h.FinishedAt)
	switch {
	case h.State == store.HeldSent:
		return "done", bi{fmt.Sprintf("このメールは %s に送信されました。", when), fmt.Sprintf("The mail was sent at %s.", when)}
	case strings.EqualFold(h.DecidedBy, h.Sender) && approverPage:
		return "canceled", bi{fmt.Sprintf("送信者がこのメールを %s に取り消しました。このメールは送信されません。", when),
			fmt.Sprintf("The sender canceled this mail at %s; it will not be sent.", when)}
	case strings.EqualFold(h.DecidedBy, h.Sender):
		return "canceled", bi{fmt.Sprintf("このメールの送信は %s に取り消されました。このメールは送信されません。", when),
			fmt.Sprintf("You canceled this mail at %s; it will not be sent.", when)}
	}
	by, ja := actor(h.DecidedBy), "このメールの送信は %s に%sによって取り消されました。このメールは送信されません。"
	if approverPage {
		ja = "このメールは %s に%sによって取り消されました。このメールは送信されません。"
	}
	return "canceled", bi{fmt.Sprintf(ja, when, by.Ja), fmt.Sprintf("This mail was canceled at %s by %s; it will not be sent.", when, by.En)}
}

func rejected(h *store.HeldMessage, at func(time.Time) string, me string) bi {
	var b bi
	if me != "" && strings.EqualFold(h.DecidedBy, me) {
		b = bi{fmt.Sprintf("あなたは %s にこのメールを却下しました。このメールは送信されません。", at(h.FinishedAt)),
			fmt.Sprintf("You rejected this mail at %s; it will not be sent.", at(h.FinishedAt))}
	} else {
		b = bi{fmt.Sprintf("このメールは %s に %s さんに却下されたため、送信されません。", at(h.FinishedAt), h.DecidedBy),
			fmt.Sprintf("This mail was rejected by %s at %s; it will not be sent.", h.DecidedBy, at(h.FinishedAt))}
	}
	return b
}

// expired says what was missing when the time to decide ran out.
func expired(h *store.HeldMessage, approverPage bool, when string) bi {
	switch {
	case len(h.Approvals) > 0:
		return bi{fmt.Sprintf("期限（%s）までに承認されなかったため、このメールは送信されません。", when),
			fmt.Sprintf("Nobody approved this mail by %s, so it is not sent.", when)}
	case !h.SenderOK && approverPage:
		return bi{fmt.Sprintf("期限（%s）までに送信者が送信を確認しなかったため、このメールは送信されません。", when),
			fmt.Sprintf("The sender did not confirm this mail by %s, so it is not sent.", when)}
	case !h.SenderOK:
		return bi{fmt.Sprintf("期限（%s）までに「今すぐ送る」が押されなかったため、このメールは送信されません。", when),
			fmt.Sprintf("Send now was not pressed by %s, so this mail is not sent.", when)}
	}
	return bi{fmt.Sprintf("期限（%s）までに決まらなかったため、このメールは送信されません。", when),
		fmt.Sprintf("This mail was not decided on by %s, so it is not sent.", when)}
}

// why lists what a held message waits for, in the words of its reader:
// the sender, or an approver.
func (s *Server) why(h *store.HeldMessage, now time.Time, approverPage bool) []bi {
	at := func(t time.Time) string { return s.clock(t, now) }
	var out []bi
	if h.Attempts > 0 && h.NextAttempt.After(now) {
		out = append(out, bi{fmt.Sprintf("前回の送信がうまくいかなかったため、%s にもう一度送信します。", at(h.NextAttempt)),
			fmt.Sprintf("The last try to send it did not go through; it will be tried again at %s.", at(h.NextAttempt))})
	}
	if slices.Contains(h.Reasons, store.ReasonHold) && h.HoldUntil.After(now) {
		ja, en := remaining(h.HoldUntil.Sub(now))
		if h.Waiting() {
			// It leaves only once the lines below are settled too.
			out = append(out, bi{fmt.Sprintf("%s まで保留します（%s）。", at(h.HoldUntil), ja),
				fmt.Sprintf("It is held until %s (%s).", at(h.HoldUntil), en)})
		} else {
			out = append(out, bi{fmt.Sprintf("%s まで保留し、その後に送信します（%s）。", at(h.HoldUntil), ja),
				fmt.Sprintf("It is held until %s (%s), then sent.", at(h.HoldUntil), en)})
		}
	}
	for _, set := range h.Approvals {
		out = append(out, bi{fmt.Sprintf("承認待ち: %s", strings.Join(set, " または ")),
			fmt.Sprintf("Waiting for approval by %s.", strings.Join(set, " or "))})
	}
	for _, a := range h.Approved {
		out = append(out, bi{fmt.Sprintf("%s さんが %s に承認しました。", a.By, at(a.At)),
			fmt.Sprintf("Approved by %s at %s.", a.By, at(a.At))})
	}
	if slices.Contains(h.Reasons, store.ReasonGuard) {
		switch {
		case h.SenderOK:
			out = append(out, bi{fmt.Sprintf("宛先（To/Cc）に社外のアドレスが %d 件表示されていますが、このまま送ることが確認されました。", h.Visible),
				fmt.Sprintf("%d outside addresses are visible in To/Cc; sending it as it is was confirmed.", h.Visible)})
		case approverPage:
			out = append(out, bi{fmt.Sprintf("宛先（To/Cc）に社外のアドレスが %d 件表示されているため、送信者の確認を待っています。", h.Visible),
				fmt.Sprintf("%d outside addresses are visible in To/Cc; it waits for the sender to confirm.", h.Visible)})
		default:
			out = append(out, bi{fmt.Sprintf("宛先（To/Cc）に社外のアドレスが %d 件表示されています。Bcc のつもりではありませんでしたか？ このまま送る場合は「今すぐ送る」を、やめる場合は「送信を取り消す」を押してください。", h.Visible),
				fmt.Sprintf("%d outside addresses visible in To/Cc; did you mean Bcc? Press Send now to send it as it is, or Cancel.", h.Visible)})
		}
	}
	if !h.Expires.IsZero() && h.Waiting() {
		when := at(h.Expires)
		switch {
		case len(h.Approvals) > 0 && !h.SenderOK:
			out = append(out, bi{fmt.Sprintf("%s までに承認と送信の確認がそろわない場合、このメールは送信されません。", when),
				fmt.Sprintf("Unless it is approved and confirmed by %s, it is not sent.", when)})
		case len(h.Approvals) > 0:
			out = append(out, bi{fmt.Sprintf("%s までに承認されない場合、このメールは送信されません。", when),
				fmt.Sprintf("If nobody approves it by %s, it is not sent.", when)})
		case approverPage:
			out = append(out, bi{fmt.Sprintf("%s までに送信者が確認しない場合、このメールは送信されません。", when),
				fmt.Sprintf("Unless the sender confirms it by %s, it is not sent.", when)})
		default:
			out = append(out, bi{fmt.Sprintf("%s までに「今すぐ送る」が押されない場合、このメールは送信されません。", when),
				fmt.Sprintf("Unless you press Send now by %s, it is not sent.", when)})
		}
	}
	if !h.Waiting() && !h.HoldUntil.After(now) && !h.NextAttempt.After(now) {
		out = append(out, bi{"まもなく送信されます。", "It will be sent in a moment."})
	}
	return out
}

func (s *Server) renderHeld(w http.ResponseWriter, status int, name string, v *heldView) {
	var buf bytes.Buffer
	if err := heldPages.ExecuteTemplate(&buf, name, v); err != nil {
		s.fail(w, "rendering a held message page", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// Refusals on the sender's page of a held message.
var (
	msgHeldTooLate = bi{"期限を過ぎたため、送信できません。このメールは送信されません。",
		"The time to confirm is over; the mail cannot be sent any more."}
	msgHeldSendingSend   = bi{"このメールは今まさに送信中です。", "The mail is being sent right now."}
	msgHeldSendingCancel = bi{"このメールは今まさに送信中のため、取り消せませんでした。少し後にこのページを再読み込みしてください。",
		"The mail is being sent right now; it could not be canceled. Reload this page in a moment."}
	msgHeldSentSend       = bi{"このメールは既に送信されています。", "The mail was already sent."}
	msgHeldSentCancel     = bi{"このメールは既に送信されました。取り消せません。", "The mail was already sent; it cannot be canceled."}
	msgHeldCanceledSend   = bi{"このメールの送信は既に取り消されているため、送信できません。", "The mail was already canceled; it cannot be sent."}
	msgHeldCanceledCancel = bi{"このメールの送信は既に取り消されています。", "The mail was already canceled."}
	msgHeldFinished       = bi{"このメールの送信は既に終わっているため、変更できません（下の状態をご覧ください）。",
		"This mail is already finished, so it cannot be changed (see its state below)."}
)
