// Package web serves the sender page: the link in the sender notice
// opens it, shows where the password of one zip is, and lets the sender
// cancel it (the password is then never sent) or send it now. It also
// serves the two pages of a held message (held.go): the sender's
// (/h/{token}: Send now, Cancel) and each approver's (/a/{token}:
// Approve, Reject), and answers /healthz.
//
// The link carries an unguessable token, never the job id; the store
// keeps only the token's hash. GET never changes anything, so link
// scanners that fetch the page do no harm; the two actions are POST
// forms carrying a CSRF value derived from the token with a server key.
package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"sync"
	"time"

	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
)

// maxBody bounds every request body: the forms carry one short field.
// The approver's Reject carries a reason of up to 500 characters, which
// form encoding can make 9 bytes each (%E3%81%82): it gets maxReasonBody.
const (
	maxBody       = 4 << 10
	maxReasonBody = 16 << 10
)

// Server serves the sender page, the pages of held messages (the
// sender's and the approver's, held.go) and /healthz.
type Server struct {
	// Now is the clock; tests set it. Default time.Now.
	Now func() time.Time
	// Location is the zone times are shown in; nil means time.Local.
	Location *time.Location
	// WakeHold tells the hold scheduler about a Send now, a cancel or an
	// approval (nil: none).
	WakeHold func()
	// Links serves the recipients' pages of download links (links.go);
	// nil: not served.
	Links *LinkPages

	// NextHop is checked by /healthz: it must accept a connection
	// ("": not checked).
	NextHop string

	st   store.Store
	wake func()
	hop  struct { // the last check of NextHop by /healthz
		mu   sync.Mutex
		addr string
		at   time.Time
		err  error
	}
	csrfKey []byte
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns the server for st. wake is called after a cancel or a
// release now, so the scheduler looks at the store at once (nil: none).
// csrfKey is a secret of the caller, 32 random bytes; it signs the forms.
// log may be nil.
func New(st store.Store, wake func(), csrfKey []byte, log *slog.Logger) *Server {
	if len(csrfKey) < 16 {
		panic("web: csrfKey must be at least 16 bytes (32 random bytes expected)")
	}
	if wake == nil {
		wake = func() {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Now: time.Now, st: st, wake: wake, csrfKey: bytes.Clone(csrfKey), log: log}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /s/{token}", s.page)
	s.mux.HandleFunc("POST /s/{token}/cancel", s.action(opCancel))
	s.mux.HandleFunc("POST /s/{token}/release", s.action(opRelease))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.routeHeld()
	s.routeLinks()
	return s
}

// Handler returns the HTTP handler: security headers on every answer,
// bodies limited to 4 KiB (16 KiB for a reject with its reason), the same 404 page for every unknown path or
// token, and 405 from the mux for a known path with another method.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer") // the token is in the URL
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		_, pattern := s.mux.Handler(r)
		limit := int64(maxBody)
		if pattern == routeReject {
			limit = maxReasonBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if pattern == "" && !s.knownPath(r) {
			s.notFound(w)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// knownPath tells whether some route serves r's path with another
// method: the mux then answers 405; otherwise the path is unknown.
func (s *Server) knownPath(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		r2 := r.WithContext(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != "" {
			return true
		}
	}
	return false
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) loc() *time.Location {
	if s.Location != nil {
		return s.Location
	}
	return time.Local
}

// validToken accepts what release.NewToken makes (43 characters of
// base64url) with some room, and nothing that could not be a token.
func validToken(t string) bool {
	if len(t) < 16 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// csrf is the form value for token: HMAC-SHA256(csrfKey, token), base64url
// without padding.
func (s *Server) csrf(token string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) csrfOK(token, got string) bool {
	return hmac.Equal([]byte(got), []byte(s.csrf(token)))
}

// postForm checks the token's shape, parses the form and checks its CSRF
// value (a refusal links back to the token's page when back); on false
// the answer is written.
func (s *Server) postForm(w http.ResponseWriter, r *http.Request, back bool) (string, bool) {
	token := r.PathValue("token")
	if !validToken(token) {
		s.notFound(w)
		return "", false
	}
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.simple(w, http.StatusRequestEntityTooLarge, msgTooLarge, "")
			return "", false
		}
		s.simple(w, http.StatusBadRequest, msgBadRequest, "")
		return "", false
	}
	if !s.csrfOK(token, r.PostForm.Get("csrf")) {
		page := ""
		if back {
			page = "../" + token
		}
		s.simple(w, http.StatusForbidden, msgForbidden, page)
		return "", false
	}
	return token, true
}

// lookup finds the job of token. On false the answer is written: the
// 404 page (bad, unknown or purged token alike) or 500.
func (s *Server) lookup(w http.ResponseWriter, ctx context.Context, token string) (*store.Job, bool) {
	if !validToken(token) {
		s.notFound(w)
		return nil, false
	}
	j, err := s.st.ByToken(ctx, release.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w)
		return nil, false
	}
	if err != nil {
		s.fail(w, "looking up a sender page token", err)
		return nil, false
	}
	return j, true
}

// errNoPassword: Release now of a link opened by one-time codes.
var errNoPassword = errors.New("the download link opens with one-time codes; it has no password to send")

// links are the URLs the page points to, relative to where it is shown,
// so that a path prefix stripped by a reverse proxy still works.
type links struct{ Cancel, Release, Revoke, Page string }

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	j, ok := s.lookup(w, r.Context(), token)
	if !ok {
		return
	}
	// Shown at /s/{token}: actions are {token}/cancel, {token}/release.
	v, err := s.view(r.Context(), j, token, links{Cancel: token + "/cancel", Release: token + "/release", Revoke: token + "/revoke"}, nil)
	if err != nil {
		s.fail(w, "sender page: reading the download link", err)
		return
	}
	s.render(w, http.StatusOK, v)
}

type op int

const (
	opCancel op = iota
	opRelease
)

func (s *Server) action(o op) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := s.postForm(w, r, true)
		if !ok {
			return
		}
		// Shown at /s/{token}/{op}: the page itself is ../{token}.
		ln := links{Cancel: "cancel", Release: "release", Revoke: "revoke", Page: "../" + token}
		ctx := r.Context()
		j, ok := s.lookup(w, ctx, token)
		if !ok {
			return
		}
		now := s.now()
		var err error
		var what string
		if o == opCancel {
			err, what = s.st.Cancel(ctx, j.ID, now), "canceled"
			if _, lerr := s.st.GetLink(ctx, j.ID); lerr == nil {
				// A link's job: canceling is taking the files back.
				if err = s.revokeLink(ctx, j, j.Sender, "page"); errors.Is(err, store.ErrLinkEnded) {
					err = store.ErrFinished
				}
			}
		} else if l, lerr := s.st.GetLink(ctx, j.ID); lerr == nil && l.Auth == policy.AuthOTP {
			// The button is not shown: its page mails codes, there is
			// no password that could go.
			err, what = errNoPassword, "released now"
		} else {
			err, what = s.st.ReleaseNow(ctx, j.ID, now), "released now"
		}
		if err == nil {
			s.log.Info("sender page: password "+what, "id", j.ID, "from", j.Sender, "zip", j.ZipName)
			s.history(ctx, j, o)
			s.wake()
			w.Header().Set("Location", ln.Page)
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		var m *bi
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.notFound(w) // purged meanwhile
			return
		case errors.Is(err, store.ErrSending) && o != opRelease:
			// If this try is deferred the job is cancelable again.
			m = &msgBeingSent
		case errors.Is(err, store.ErrAlreadyReleased), errors.Is(err, store.ErrSending):
			m = &msgAlreadySent
			if o == opRelease {
				m = &msgAlreadySentRelease
			}
		case errors.Is(err, store.ErrAlreadyCanceled):
			m = &msgAlreadyCanceled
			if o == opRelease {
				m = &msgAlreadyCanceledRelease
			}
		case errors.Is(err, store.ErrFinished):
			m = &msgFinished
		case errors.Is(err, errNoPassword):
			m = &msgNoPassword
		default:
			s.fail(w, "sender page: "+what, err)
			return
		}
		s.log.Info("sender page: refused", "id", j.ID, "action", what, "reason", err.Error())
		// Show the job as it is now, with why nothing changed.
		if cur, err := s.st.Get(ctx, j.ID); errors.Is(err, store.ErrNotFound) {
			s.notFound(w)
			return
		} else if err != nil {
			s.fail(w, "sender page: reading job", err)
			return
		} else {
			j = cur
		}
		v, err := s.view(ctx, j, token, ln, m)
		if err != nil {
			s.fail(w, "sender page: reading the download link", err)
			return
		}
		s.render(w, http.StatusConflict, v)
	}
}

// healthz answers 200 "ok" when the store answers and the next hop
// takes a connection and greets, else 503 naming the failing part.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := s.st.List(ctx, "", 1); err != nil {
		s.log.Warn("health check: store does not answer", "error", err.Error())
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "store unavailable")
		return
	}
	if s.NextHop != "" {
		if err := s.hopCheck(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "next hop %s unavailable\n", s.NextHop)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// hopCheck greets the next hop at most once per hopCheckEvery, one check
// at a time, and otherwise answers what the last check found: /healthz
// is open to anyone who reaches the page, and must not become a way to
// open sessions at Postfix.
func (s *Server) hopCheck(ctx context.Context) error {
	s.hop.mu.Lock()
	defer s.hop.mu.Unlock()
	if s.hop.addr == s.NextHop && time.Since(s.hop.at) < hopCheckEvery {
		return s.hop.err
	}
	s.hop.err, s.hop.at, s.hop.addr = greet(ctx, s.NextHop), time.Now(), s.NextHop
	if s.hop.err != nil {
		s.log.Warn("health check: next hop does not answer", "next_hop", s.NextHop, "error", s.hop.err.Error())
	}
	return s.hop.err
}

const hopCheckEvery = 5 * time.Second

// greet connects to an SMTP server, reads its greeting and says QUIT, so
// the server logs a polite visit rather than a lost connection.
func greet(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return err
	}
	id, err := tp.Cmd("QUIT")
	if err != nil {
		return err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	_, _, err = tp.ReadResponse(221)
	return err
}

// history adds a sender's cancel or release now to the message's
// history; the action is done, so a store that cannot write it costs a
// log line.
func (s *Server) history(ctx context.Context, j *store.Job, o op) {
	msg := j.Message
	if msg == "" {
		msg = j.ID
	}
	e := store.Event{Message: msg, At: s.now(), Event: "password_canceled", Actor: j.Sender, Via: "page", Detail: "job " + j.ID}
	if o == opRelease {
		e.Event = "password_release_now"
	}
	if err := s.st.AddEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("could not write the message's history", "id", j.ID, "error", err.Error())
	}
}

// notFound is the one answer for an unknown path, a malformed token, an
// unknown one and a purged job: the same status, headers and body, so a
// guesser learns nothing.
func (s *Server) notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	w.Write(notFoundPage)
}

// fail logs an internal fault and answers 500 without its details.
func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "error", err.Error())
	s.simple(w, http.StatusInternalServerError, msgInternal, "")
}

func (s *Server) simple(w http.ResponseWriter, status int, m bi, back string) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "simple", simpleView{Msg: m, Back: back}); err != nil {
		s.log.Error("rendering a page", "error", err.Error())
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Server) render(w http.ResponseWriter, status int, v *jobView) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "job", v); err != nil {
		s.fail(w, "rendering the sender page", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// notFoundPage is rendered once: every 404 is these bytes.
var notFoundPage = func() []byte {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "simple", simpleView{Msg: msgNotFound}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}()

// bi is a text in Japanese and English.
type bi struct{ Ja, En string }

var (
	msgNotFound = bi{"ページが見つかりません。リンクが正しくないか、有効期限が切れています。",
		"Page not found. The link is wrong or has expired."}
	msgForbidden = bi{"フォームが正しくないため、処理しませんでした。ページを開き直してから、もう一度押してください。",
		"The form was not valid, so nothing was done. Open the page again and press the button once more."}
	msgBadRequest = bi{"リクエストが正しくありません。", "Bad request."}
	msgTooLarge   = bi{"リクエストが大きすぎます。", "Request too large."}
	msgInternal   = bi{"エラーが発生しました。しばらくしてからもう一度お試しください。",
		"Something went wrong. Please try again in a moment."}

	msgBeingSent = bi{"パスワードは今まさに送信中です。取り消せませんでした。少し後にこのページを再読み込みしてください。",
		"The password is being sent right now; it could not be canceled. Reload this page in a moment."}
	msgAlreadySent = bi{"パスワードは既に送信されました。取り消せません。",
		"The password was already sent; it cannot be canceled."}
	msgAlreadySentRelease = bi{"パスワードは既に送信されています。",
		"The password was already sent."}
	msgAlreadyCanceled = bi{"パスワードの送信は既に取り消されています。",
		"The password was already canceled."}
	msgAlreadyCanceledRelease = bi{"パスワードの送信は既に取り消されているため、送信できません。",
		"The password was already canceled; it cannot be sent."}
	msgFinished = bi{"この送信は既に終了しているため、変更できません。",
		"This job is already finished; it cannot be changed."}
	msgNoPassword = bi{"このダウンロードリンクは、受信者が求めたときにページが確認コードをメールで送ります。送るパスワードはありません。",
		"This download link opens with codes its page mails to the recipients on request; there is no password to send."}
)

type fileView struct{ Name, Size string }

// jobView is what the page shows: no password, ever.
type jobView struct {
	Msg     *bi
	State   bi
	Class   string // open, done, canceled, failed
	Open    bool   // the forms are shown
	Subject string
	Rcpts   []string
	ZipName string
	Files   []fileView
	Sent    string
	Due     string // "" once final
	CSRF    string
	Links   links
	// Link is the download link of a linked copy's job (nil for a zip).
	Link *linkStatus
	// NoCancel hides Cancel (a link is taken back instead); NoRelease
	// hides Release now (a link opened by one-time codes has no password
	// mail).
	NoCancel, NoRelease bool
}

type simpleView struct {
	Msg  bi
	Back string
}

func (s *Server) view(ctx context.Context, j *store.Job, token string, ln links, m *bi) (*jobView, error) {
	v := s.jobView(j, token, ln, m)
	l, err := s.st.GetLink(ctx, j.ID)
	if errors.Is(err, store.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	v.Link = s.linkStatus(l, token)
	v.NoCancel = true
	if l.Auth == policy.AuthOTP {
		v.Open, v.NoRelease, v.Due = false, true, ""
		v.State = bi{"パスワードのメールは送られません。宛先の方は、ページで自分のアドレスに届く確認コードを使って開きます。",
			"No password mail goes: the recipients open the page with a code it mails to their own address."}
	}
	return v, nil
}

func (s *Server) jobView(j *store.Job, token string, ln links, m *bi) *jobView {
	now := s.now().In(s.loc())
	v := &jobView{Msg: m, Subject: j.Subject, Rcpts: j.Rcpts, ZipName: j.ZipName, Links: ln,
		Sent: s.full(j.CreatedAt)}
	for _, f := range j.Files {
		v.Files = append(v.Files, fileView{Name: f.Name, Size: notice.HumanSize(f.Size)})
	}
	at := func(t time.Time) string { return s.clock(t, now) }
	switch j.State {
	case store.Pending, store.Scheduled:
		v.Class, v.Open, v.Due, v.CSRF = "open", true, s.full(j.DueAt), s.csrf(token)
		toYou := j.PasswordTo == policy.ToSender
		switch {
		case j.DueAt.IsZero(): // password_to manual
			v.Due = "—"
			v.State = bi{"パスワードは、このページで「今すぐ送る」を押すまで宛先へ送られません。",
				"The password is not sent to the recipients until you press Release now on this page."}
		case toYou && j.DueAt.After(now):
			ja, en := remaining(j.DueAt.Sub(now))
			v.State = bi{
				fmt.Sprintf("パスワードは %s にあなた宛てに送られます（%s）。宛先の方へは、メール以外の方法でお伝えください。", at(j.DueAt), ja),
				fmt.Sprintf("The password will be mailed to you at %s (%s); give it to the recipients by another way than mail.", at(j.DueAt), en)}
		case j.Attempts > 0 && j.NextAttempt.After(now) && !j.DueAt.After(now):
			v.State = bi{
				fmt.Sprintf("前回の送信がうまくいかなかったため、パスワードは %s に再送されます。", at(j.NextAttempt)),
				fmt.Sprintf("The last try did not go through; the password will be sent again at %s.", at(j.NextAttempt))}
		case j.DueAt.After(now):
			ja, en := remaining(j.DueAt.Sub(now))
			v.State = bi{
				fmt.Sprintf("パスワードは %s に送信されます（%s）。", at(j.DueAt), ja),
				fmt.Sprintf("The password will be sent at %s (%s).", at(j.DueAt), en)}
		default:
			v.State = bi{"パスワードはまもなく送信されます。", "The password will be sent in a moment."}
		}
	case store.Sending:
		v.Class, v.Due = "open", s.full(j.DueAt)
		v.State = bi{"パスワードを送信しています。取り消しはできません。",
			"The password is being sent now; it can no longer be canceled."}
	case store.Released:
		v.Class = "done"
		v.State = bi{fmt.Sprintf("パスワードは %s に送信されました。", at(j.FinishedAt)),
			fmt.Sprintf("The password was sent at %s.", at(j.FinishedAt))}
		if j.PasswordTo == policy.ToSender {
			v.State = bi{fmt.Sprintf("パスワードは %s にあなた宛てに送信されました。", at(j.FinishedAt)),
				fmt.Sprintf("The password was mailed to you at %s.", at(j.FinishedAt))}
		}
	case store.Canceled:
		v.Class = "canceled"
		v.State = bi{fmt.Sprintf("パスワードの送信は %s に取り消されました。パスワードは送られません。", at(j.FinishedAt)),
			fmt.Sprintf("The password was canceled at %s; it will not be sent.", at(j.FinishedAt))}
	case store.Failed:
		v.Class = "failed"
		reason := j.LastError
		if reason == "" {
			reason = "—"
		}
		v.State = bi{fmt.Sprintf("パスワードを送信できませんでした（%s）。理由: %s　管理者にお問い合わせください。", at(j.FinishedAt), reason),
			fmt.Sprintf("The password could not be sent (%s). Reason: %s. Please contact your administrator.", at(j.FinishedAt), reason)}
	default:
		v.Class = "failed"
		v.State = bi{"状態が不明です: " + string(j.State), "Unknown state: " + string(j.State)}
	}
	return v
}

// clock shows t as HH:MM with its zone, with the date when it is not
// today.
func (s *Server) clock(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.In(s.loc())
	y1, m1, d1 := t.Date()
	y2, m2, d2 := now.Date()
	if y1 == y2 && m1 == m2 && d1 == d2 {
		return t.Format("15:04 MST")
	}
	return t.Format("2006-01-02 15:04 MST")
}

func (s *Server) full(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(s.loc()).Format("2006-01-02 15:04 MST")
}

// remaining says roughly how long until d has passed.
func remaining(d time.Duration) (ja, en string) {
	mins := int((d + time.Minute - 1) / time.Minute)
	if mins < 90 {
		return fmt.Sprintf("あと約 %d 分", mins), fmt.Sprintf("in about %d min", mins)
	}
	h := (mins + 30) / 60
	return fmt.Sprintf("あと約 %d 時間", h), fmt.Sprintf("in about %d h", h)
}
