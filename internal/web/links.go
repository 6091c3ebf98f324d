package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	dl "github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/mimeparam"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/zipper"
)

// The recipients' page of a download link (/d/{token}, issue 15): who sent
// what, until when; the password form (or, with one-time codes, "send me
// a code" and the code form); once opened, each file and all of them as
// one zip (AES-256, the same password). As on the other pages, the link
// carries a token whose hash alone is stored, and every unknown or
// malformed token gets the one 404 page. Opening sets a cookie for this
// link's path, signed with the server key, for an hour; every download
// checks the link again, so a revoke stops it at once.

// LinkPages is what the recipients' pages need; without it (Server.Links
// nil) /d/ is not served.
type LinkPages struct {
	Files *dl.Files
	// Codes mails one-time codes (links.Scheduler).
	Codes interface {
		SendCode(ctx context.Context, l *store.Link, to, code string, expires time.Time) error
	}
	// Wake tells the links scheduler (a download, a lock, a revoke).
	Wake func()
	// TrustedProxies may name the client in X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// SecureCookie marks the page's cookie Secure (web.base_url is https).
	SecureCookie bool

	limits limiter
}

// Limits of the page. Wrong passwords and codes: at most linkTries per
// link and clientTries per client address within tryWindow, on top of
// the lock at links.LockAt wrong tries in all. Codes: one a minute per
// link, codesPerClient per client within tryWindow. Page views: one
// recorded per client and link, viewsPerLink per link within tryWindow.
const (
	tryWindow      = 10 * time.Minute
	linkTries      = 5
	clientTries    = 10
	codesPerClient = 5
	viewsPerLink   = 20
	codeEvery      = time.Minute
	codeLife       = 10 * time.Minute
	sessionLife    = time.Hour
	cookieName     = "zipgate_link"
)

func (s *Server) routeLinks() {
	s.mux.HandleFunc("GET /d/{token}", s.linkPage)
	s.mux.HandleFunc("POST /d/{token}/open", s.linkOpen)
	s.mux.HandleFunc("POST /d/{token}/code", s.linkSendCode)
	s.mux.HandleFunc("GET /d/{token}/f/{n}", s.linkFile)
	s.mux.HandleFunc("GET /d/{token}/all", s.linkZip)
	s.mux.HandleFunc("POST /s/{token}/revoke", s.revoke)
}

// limiter counts recent failures per key, in memory: a restart forgets
// them, the store's count (the lock) stays.
type limiter struct {
	mu   sync.Mutex
	hits map[string][]time.Time
}

// over reports whether key has had max hits within window before now.
func (l *limiter) over(key string, max int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(key, now)) >= max
}

func (l *limiter) add(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hits == nil || len(l.hits) > 100000 {
		l.hits = map[string][]time.Time{} // bounded: a flood forgets, the lock stays
	}
	l.hits[key] = append(l.recent(key, now), now)
}

func (l *limiter) recent(key string, now time.Time) []time.Time {
	list := l.hits[key]
	i := 0
	for i < len(list) && now.Sub(list[i]) >= tryWindow {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(l.hits, key)
		return nil
	}
	l.hits[key] = list
	return list
}

// last is the time of key's latest hit within the window (zero: none).
func (l *limiter) last(key string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if list := l.recent(key, now); len(list) > 0 {
		return list[len(list)-1]
	}
	return time.Time{}
}

// client is the address the request came from: the connection's, or,
// from a trusted proxy, the last address in X-Forwarded-For that is not
// one of the proxies.
func (s *Server) client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || s.Links == nil || !trusted(s.Links.TrustedProxies, addr) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !trusted(s.Links.TrustedProxies, a) {
			return a.Unmap().String()
		}
	}
	return host
}

func trusted(list []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// lookupLink finds the active or ended link of token. On false the
// answer is written: the 404 page (also for a link whose copy has not
// left yet) or 500.
func (s *Server) lookupLink(w http.ResponseWriter, ctx context.Context, token string) (*store.Link, bool) {
	if s.Links == nil || !validToken(token) {
		s.notFound(w)
		return nil, false
	}
	l, err := s.st.LinkByToken(ctx, release.HashToken(token))
	if errors.Is(err, store.ErrNotFound) || err == nil && l.State == store.LinkPending {
		s.notFound(w)
		return nil, false
	}
	if err != nil {
		s.fail(w, "looking up a download link", err)
		return nil, false
	}
	return l, true
}

// usable reports whether the link can still be used at now: active and not
// past its expiry or its downloads (the scheduler marks an expired one
// soon after).
func usable(l *store.Link, now time.Time) bool {
	return l.State == store.LinkActive && now.Before(l.ExpiresAt) &&
		(l.MaxDownloads == 0 || l.Downloads < l.MaxDownloads)
}

// event records what happened on the page in the message's history and
// in the log.
func (s *Server) event(r *http.Request, l *store.Link, name, item string) store.Event {
	ua := r.UserAgent()
	if len(ua) > 300 {
		ua = ua[:300]
	}
	return store.Event{Message: l.Message, At: s.now(), Event: name, Actor: s.client(r), Via: "link",
		Detail: strings.Join([]string{l.ID, item, strings.ToValidUTF8(ua, "?")}, " | ")}
}

func (s *Server) record(ctx context.Context, e store.Event, l *store.Link) {
	s.log.Info("download link: "+strings.TrimPrefix(e.Event, "link_"), "id", l.ID, "message", l.Message,
		"client", e.Actor, "detail", e.Detail)
	if err := s.st.AddEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.Warn("could not record a download link event", "id", l.ID, "event", e.Event, "error", err.Error())
	}
}

// session is the cookie value that says the link was opened: its end,
// signed with the server key for this token.
func (s *Server) session(token string, until time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(until.Unix()))
	return base64.RawURLEncoding.EncodeToString(b[:]) + "." + s.sessionMAC(token, b[:])
}

func (s *Server) sessionMAC(token string, until []byte) string {
	m := hmac.New(sha256.New, s.csrfKey)
	fmt.Fprintf(m, "zipgate link session\x00%s\x00", token)
	m.Write(until)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) opened(r *http.Request, token string) bool {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return false
	}
	raw, mac, ok := strings.Cut(c.Value, ".")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if !ok || err != nil || len(b) != 8 || !hmac.Equal([]byte(mac), []byte(s.sessionMAC(token, b))) {
		return false
	}
	return s.now().Before(time.Unix(int64(binary.BigEndian.Uint64(b)), 0))
}

// setSession opens the link for this browser. No Path: it defaults to
// the directory of the form's URL, /d/{token} as the browser sees it
// (behind a proxy's prefix too).
func (s *Server) setSession(w http.ResponseWriter, token string) {
	until := s.now().Add(sessionLife)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.session(token, until), Expires: until,
		HttpOnly: true, Secure: s.Links.SecureCookie, SameSite: http.SameSiteLaxMode})
}

func (s *Server) linkPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l, ok := s.lookupLink(w, r.Context(), token)
	if !ok {
		return
	}
	// A view is history, not a key: one per client address and link in
	// the window, at most viewsPerLink in all, so a reload loop or a
	// crawler does not grow the store.
	now, client := s.now(), s.client(r)
	if !s.Links.limits.over("view:"+l.ID+"|"+client, 1, now) && !s.Links.limits.over("views:"+l.ID, viewsPerLink, now) {
		s.Links.limits.add("view:"+l.ID+"|"+client, now)
		s.Links.limits.add("views:"+l.ID, now)
		s.record(r.Context(), s.event(r, l, dl.EventView, ""), l)
	}
	s.renderLink(w, r, l, token, nil)
}

// renderLink shows the page as l is now: gone (410, with why), open with
// the files, or the form.
func (s *Server) renderLink(w http.ResponseWriter, r *http.Request, l *store.Link, token string, m *note) {
	now := s.now()
	status := http.StatusOK
	v := s.linkView(l, token, now)
	if m != nil {
		v.Msg, status = &m.Text, m.Status
		if status == 0 {
			status = http.StatusConflict
		}
	}
	switch {
	case !usable(l, now):
		status = http.StatusGone
		v.Gone = goneReason(l, now)
	case s.opened(r, token):
		v.Opened = true
	}
	var buf bytes.Buffer
	if err := linkPages.ExecuteTemplate(&buf, "link", v); err != nil {
		s.fail(w, "rendering a download page", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// goneReason says why a link no longer opens.
func goneReason(l *store.Link, now time.Time) bi {
	switch {
	case l.State == store.LinkRevoked:
		return bi{"送信者がファイルを取り消しました。ダウンロードはできません。",
			"The sender withdrew the files; they can no longer be downloaded."}
	case l.State == store.LinkLocked:
		return bi{"パスワードまたは確認コードが何度も間違えられたため、このページは閉じられました。送信者にお問い合わせください。",
			"This page was locked after too many wrong passwords or codes. Please ask the sender."}
	case l.State == store.LinkUsedUp || l.MaxDownloads > 0 && l.Downloads >= l.MaxDownloads:
		return bi{"ダウンロードできる回数を使い切ったため、このページは閉じられました。",
			"The files were downloaded as many times as allowed; this page is closed."}
	}
	return bi{"ダウンロードの期限が過ぎたため、ファイルはもう開けません（1 時間後に削除されます）。",
		"The time to download is over; the files can no longer be opened (they are deleted an hour later)."}
}

// linkView is what the page shows; never the password but, once opened
// with a one-time code, the zip's (it has no other).
type linkView struct {
	Msg        *bi
	Gone       bi
	Opened     bool
	OTP        bool
	AskAddress bool   // several recipients: the code goes to the one who says who
	CodeTo     string // one recipient: where the code goes, masked
	CodeOpen   bool   // a code is in force: its form is shown
	From       string
	Subject    string
	Files      []linkFileView
	Expires    string
	Left       string // downloads left, "" for no limit
	ZipName    string
	ZipSize    string
	ZipPass    string // OTP only, once opened
	CSRF       string
	Links      struct{ Open, Code, Zip string }
}

type linkFileView struct{ Name, Size, Href string }

func (s *Server) linkView(l *store.Link, token string, now time.Time) *linkView {
	v := &linkView{OTP: l.Auth == policy.AuthOTP, From: mimeparam.DecodeHeader(l.HeaderFrom),
		Subject: l.Subject, Expires: s.full(l.ExpiresAt), ZipName: l.ZipName, CSRF: s.csrf(token)}
	if v.From == "" {
		v.From = l.Sender
	}
	var total int64
	for i, f := range l.Files {
		v.Files = append(v.Files, linkFileView{Name: f.Name, Size: notice.HumanSize(f.Size), Href: token + "/f/" + strconv.Itoa(i)})
		total += f.Size
	}
	v.ZipSize = notice.HumanSize(total)
	if l.MaxDownloads > 0 {
		left := max(l.MaxDownloads-l.Downloads, 0)
		v.Left = strconv.Itoa(left)
	}
	v.Links.Open, v.Links.Code, v.Links.Zip = token+"/open", token+"/code", token+"/all"
	if v.OTP {
		v.ZipPass = l.Password
		if len(l.Rcpts) == 1 {
			v.CodeTo = mask(l.Rcpts[0])
		} else {
			v.AskAddress = true
		}
		// Shown while a code is in force, and after any ask for one (also
		// for an address that is no recipient): the page looks the same.
		v.CodeOpen = len(l.CodeHash) > 0 && now.Before(l.CodeExpires) ||
			now.Sub(s.Links.limits.last("codelink:"+l.ID, now)) < codeLife
	}
	return v
}

// mask shows an address as h***@partner.example.
func mask(a string) string {
	local, domain, ok := strings.Cut(a, "@")
	if !ok || local == "" {
		return "***"
	}
	_, size := firstRune(local)
	return local[:size] + "***@" + domain
}

func firstRune(s string) (rune, int) {
	for i, r := range s {
		if i > 0 {
			return r, i
		}
	}
	return 0, len(s)
}

// linkForm checks a POST to the page and finds its link; on false the
// answer is written.
func (s *Server) linkForm(w http.ResponseWriter, r *http.Request) (*store.Link, string, bool) {
	token, ok := s.postForm(w, r, false)
	if !ok {
		return nil, "", false
	}
	l, ok := s.lookupLink(w, r.Context(), token)
	if !ok {
		return nil, "", false
	}
	if !usable(l, s.now()) {
		s.renderLink(w, r, l, token, nil)
		return nil, "", false
	}
	return l, token, true
}

// linkOpen takes the password, or the one-time code.
func (s *Server) linkOpen(w http.ResponseWriter, r *http.Request) {
	l, token, ok := s.linkForm(w, r)
	if !ok {
		return
	}
	ctx, now, client := r.Context(), s.now(), s.client(r)
	if s.Links.limits.over("link:"+l.ID, linkTries, now) || s.Links.limits.over("client:"+client, clientTries, now) {
		// Not even checked: a guesser learns nothing while limited.
		s.log.Warn("download link: tries limited", "id", l.ID, "client", client)
		s.renderLink(w, r, l, token, &msgTooManyTries)
		return
	}
	otp := l.Auth == policy.AuthOTP
	var good bool
	var wrong, right string
	if otp {
		code := strings.TrimSpace(r.PostForm.Get("code"))
		wrong, right = dl.EventCodeWrong, dl.EventCodeOK
		if len(l.CodeHash) == 0 || !now.Before(l.CodeExpires) {
			s.renderLink(w, r, l, token, &msgCodeExpired)
			return
		}
		good = hmac.Equal(s.codeHash(l.ID, code), l.CodeHash)
	} else {
		pw := strings.TrimSpace(r.PostForm.Get("password"))
		wrong, right = dl.EventPasswordWrong, dl.EventPasswordOK
		good = l.Password != "" && subtle.ConstantTimeCompare([]byte(pw), []byte(l.Password)) == 1
	}
	if !good {
		s.Links.limits.add("link:"+l.ID, now)
		s.Links.limits.add("client:"+client, now)
		e := s.event(r, l, wrong, "")
		s.log.Info("download link: "+strings.TrimPrefix(wrong, "link_"), "id", l.ID, "client", client)
		cur, err := s.st.LinkFailure(ctx, l.ID, dl.LockAt, e)
		switch {
		case errors.Is(err, store.ErrLinkEnded) || errors.Is(err, store.ErrLinkNotActive):
			cur, err = s.st.GetLink(ctx, l.ID)
		}
		if err != nil {
			s.fail(w, "download link: counting a wrong try", err)
			return
		}
		if cur.State == store.LinkLocked {
			s.log.Warn("download link locked after wrong tries", "id", l.ID, "message", l.Message, "from", l.Sender,
				"failures", cur.Failures)
			s.Links.Wake()
		}
		m := msgWrongPassword
		if otp {
			m = msgWrongCode
		}
		s.renderLink(w, r, cur, token, &m)
		return
	}
	if otp {
		if err := s.st.ClearLinkCode(ctx, l.ID); err != nil {
			s.fail(w, "download link: ending a used code", err)
			return
		}
	}
	s.record(ctx, s.event(r, l, right, ""), l)
	s.setSession(w, token)
	w.Header().Set("Location", "../"+token)
	w.WriteHeader(http.StatusSeeOther)
}

func (s *Server) codeHash(id, code string) []byte {
	m := hmac.New(sha256.New, s.csrfKey)
	fmt.Fprintf(m, "zipgate link code\x00%s\x00%s", id, code)
	return m.Sum(nil)
}

// linkSendCode mails a one-time code to a recipient of the link.
func (s *Server) linkSendCode(w http.ResponseWriter, r *http.Request) {
	l, token, ok := s.linkForm(w, r)
	if !ok {
		return
	}
	if l.Auth != policy.AuthOTP {
		s.notFound(w)
		return
	}
	ctx, now, client := r.Context(), s.now(), s.client(r)
	// One code a minute per link, whoever asked for whom (the stored
	// time survives a restart; the limiter also counts asks for
	// addresses that are no recipient, so both pace alike).
	if now.Sub(l.CodeSentAt) < codeEvery || now.Sub(s.Links.limits.last("codelink:"+l.ID, now)) < codeEvery ||
		s.Links.limits.over("code:"+client, codesPerClient, now) {
		s.renderLink(w, r, l, token, &msgCodeWait)
		return
	}
	s.Links.limits.add("codelink:"+l.ID, now)
	s.Links.limits.add("code:"+client, now)
	to := l.Rcpts[0]
	if len(l.Rcpts) > 1 {
		asked := strings.ToLower(strings.TrimSpace(r.PostForm.Get("address")))
		to = ""
		for _, a := range l.Rcpts {
			if strings.ToLower(a) == asked {
				to = a
			}
		}
		if to == "" {
			// The same answer as a code on its way (the code form, the
			// same pacing after): the page does not tell who the mail
			// went to, Bcc recipients included.
			s.record(ctx, s.event(r, l, "link_code_refused", asked), l)
			s.renderLink(w, r, l, token, &msgCodeSent)
			return
		}
	}
	var n [4]byte
	if _, err := rand.Read(n[:]); err != nil {
		s.fail(w, "download link: making a code", err)
		return
	}
	code := fmt.Sprintf("%06d", binary.BigEndian.Uint32(n[:])%1000000)
	expires := now.Add(codeLife)
	e := s.event(r, l, dl.EventCodeSent, to)
	if err := s.st.SetLinkCode(ctx, l.ID, s.codeHash(l.ID, code), to, expires, e); err != nil {
		s.fail(w, "download link: storing a code", err)
		return
	}
	if err := s.Links.Codes.SendCode(ctx, l, to, code, expires.In(s.loc())); err != nil {
		s.log.Warn("download link: code mail not sent", "id", l.ID, "to", to, "error", err.Error())
		s.renderLink(w, r, l, token, &msgCodeNotSent)
		return
	}
	s.log.Info("download link: code sent", "id", l.ID, "to", to, "client", client)
	cur, err := s.st.GetLink(ctx, l.ID)
	if err != nil {
		s.fail(w, "download link: reading it back", err)
		return
	}
	s.renderLink(w, r, cur, token, &msgCodeSent)
}

// download checks the session and the link, counts the download and
// says what to send; on false the answer is written.
// back is the page, relative to the download's URL.
func (s *Server) download(w http.ResponseWriter, r *http.Request, back, item string, files []int) (*store.Link, []io.ReadCloser, bool) {
	token := r.PathValue("token")
	ctx := r.Context()
	l, ok := s.lookupLink(w, ctx, token)
	if !ok {
		return nil, nil, false
	}
	if !usable(l, s.now()) {
		s.renderLink(w, r, l, token, nil)
		return nil, nil, false
	}
	if !s.opened(r, token) {
		// Not opened in this browser (or its hour is over): the form.
		w.Header().Set("Location", back)
		w.WriteHeader(http.StatusSeeOther)
		return nil, nil, false
	}
	for _, n := range files {
		if n < 0 || n >= len(l.Files) {
			s.notFound(w)
			return nil, nil, false
		}
	}
	if item == "" && len(files) == 1 {
		item = l.Files[files[0]].Name
	}
	if r.Method == http.MethodHead {
		// A look, not a download: nothing is counted or sent.
		w.WriteHeader(http.StatusOK)
		return nil, nil, false
	}
	// Every file is opened before the download counts. When the link
	// ends meanwhile (the last allowed download, its expiry, a take
	// back), its files stay for links.FilesGrace, so what is in flight
	// reads to its end. The first file also shows it opens (its header
	// and first chunk decrypt with the link's key) before anything is
	// counted: a damaged file is the error page, not an empty download.
	open, err := s.Links.Files.Open(ctx, l.ID, files, l.FileKey)
	if err == nil && len(open) > 0 {
		var first io.ReadCloser
		if first, err = peek(open[0]); err == nil {
			open[0] = first
		} else {
			for _, f := range open {
				f.Close()
			}
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		s.log.Info("download link: the client left before its download began", "id", l.ID, "client", s.client(r))
		return nil, nil, false
	case err != nil:
		s.fail(w, "download link: opening the files", err)
		return nil, nil, false
	}
	closeAll := func() {
		for _, f := range open {
			f.Close()
		}
	}
	cur, err := s.st.LinkDownload(ctx, l.ID, s.now(), s.event(r, l, dl.EventDownload, item))
	if err != nil {
		closeAll()
		if errors.Is(err, store.ErrLinkEnded) {
			if cur, gerr := s.st.GetLink(ctx, l.ID); gerr == nil {
				s.renderLink(w, r, cur, token, nil)
				return nil, nil, false
			}
		}
		s.fail(w, "download link: counting a download", err)
		return nil, nil, false
	}
	s.log.Info("download link: download", "id", l.ID, "message", l.Message, "client", s.client(r), "item", item,
		"downloads", cur.Downloads)
	if cur.Downloads == 1 {
		s.Links.Wake() // the first download: the sender is told
	}
	return cur, open, true
}

// peek reads the first byte of f, so a file that does not open fails
// before its download is counted; the byte is read again first. An empty
// file is no error.
func peek(f io.ReadCloser) (io.ReadCloser, error) {
	var b [1]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && err != io.EOF {
		return nil, err
	}
	return &peeked{head: b[:n], ReadCloser: f}, nil
}

type peeked struct {
	head []byte
	io.ReadCloser
}

func (p *peeked) Read(b []byte) (int, error) {
	if len(p.head) > 0 && len(b) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.ReadCloser.Read(b)
}

// usedUp ends a link whose last allowed download was made.
func (s *Server) usedUp(ctx context.Context, r *http.Request, l *store.Link) {
	if l.MaxDownloads == 0 || l.Downloads < l.MaxDownloads {
		return
	}
	e := s.event(r, l, "link_used_up", fmt.Sprintf("%d downloads", l.Downloads))
	e.Actor, e.Via = "zipgate", "link"
	err := s.st.EndLink(context.WithoutCancel(ctx), l.ID, store.LinkUsedUp, "zipgate", e)
	if err != nil && !errors.Is(err, store.ErrLinkEnded) {
		s.log.Error("download link: ending a used-up link", "id", l.ID, "error", err.Error())
		return
	}
	s.log.Info("download link used up", "id", l.ID, "downloads", l.Downloads)
	s.Links.Wake()
}

// downloadHeaders make the answer a file to save, never a page: any
// type, any name.
func downloadHeaders(w http.ResponseWriter, name string, size int64) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
}

func (s *Server) linkFile(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || r.PathValue("n") != strconv.Itoa(n) {
		s.notFound(w)
		return
	}
	// The name for the history comes from the link itself, read again in
	// download; a bad n is refused there.
	l, files, ok := s.download(w, r, "../../"+r.PathValue("token"), "", []int{n})
	if !ok {
		return
	}
	defer files[0].Close()
	f := l.Files[n]
	downloadHeaders(w, f.Name, f.Size)
	_, err = copyOut(w, files[0])
	if err != nil {
		s.log.Warn("download link: file download cut", "id", l.ID, "file", f.Name, "error", err.Error())
	}
	s.usedUp(r.Context(), r, l)
}

func (s *Server) linkZip(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	l0, ok := s.lookupLink(w, r.Context(), token)
	if !ok {
		return
	}
	all := make([]int, len(l0.Files))
	for i := range all {
		all[i] = i
	}
	l, files, ok := s.download(w, r, "../"+token, l0.ZipName, all)
	if !ok {
		return
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	downloadHeaders(w, l.ZipName, -1)
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	bw := bufio.NewWriterSize(dw, 64<<10)
	zw := zipper.NewWriter(bw, zipper.Options{Method: zipper.AES256, Names: zipper.UTF8, Password: l.Password,
		ModTime: l.CreatedAt.In(s.loc())})
	var err error
	for i, f := range files {
		if _, err = zw.Add(l.Files[i].Name, f); err != nil {
			break
		}
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.log.Warn("download link: zip download cut", "id", l.ID, "error", err.Error())
	}
	s.usedUp(r.Context(), r, l)
}

// copyOut streams a download, pushing the write deadline on as the bytes
// flow: a large file to a slow recipient takes longer than the page
// server's 30 s, a stalled one does not.
func copyOut(w http.ResponseWriter, r io.Reader) (int64, error) {
	return io.CopyBuffer(&deadlineWriter{w: w, rc: http.NewResponseController(w)}, r, make([]byte, 64<<10))
}

type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(DefaultTimeouts.Write))
	return d.w.Write(p)
}

// contentDisposition is attachment with the name in RFC 5987 UTF-8 and
// an ASCII fallback for old clients.
func contentDisposition(name string) string {
	var ascii, ext strings.Builder
	for _, r := range name {
		if r < 0x80 && r >= 0x20 && r != '"' && r != '\\' && r != 0x7f {
			ascii.WriteRune(r)
		} else {
			ascii.WriteByte('_')
		}
	}
	for _, b := range []byte(name) {
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0 {
			ext.WriteByte(b)
		} else {
			fmt.Fprintf(&ext, "%%%02X", b)
		}
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii.String(), ext.String())
}

// revoke is the sender page's Take back: the link stops working at once,
// whatever was already sent, and its password mail does not go.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	token, ok := s.postForm(w, r, true)
	if !ok {
		return
	}
	page := "../" + token
	ctx := r.Context()
	j, ok := s.lookup(w, ctx, token)
	if !ok {
		return
	}
	err := s.revokeLink(ctx, j, j.Sender, "page")
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w) // not a link's job, or purged
		return
	case err == nil, errors.Is(err, store.ErrLinkEnded):
		// Over already (expired, used up): the page says how.
		w.Header().Set("Location", page)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	s.fail(w, "sender page: take back", err)
}

// revokeLink ends the link of job j for actor.
func (s *Server) revokeLink(ctx context.Context, j *store.Job, actor, via string) error {
	l, err := s.st.GetLink(ctx, j.ID)
	if err != nil {
		return err
	}
	err = s.st.EndLink(ctx, l.ID, store.LinkRevoked, actor, store.Event{Message: l.Message, At: s.now(),
		Event: dl.EventRevoked, Actor: actor, Via: via, Detail: l.ID})
	if err == nil {
		s.log.Info("download link revoked", "id", l.ID, "message", l.Message, "by", actor, "via", via,
			"downloads", l.Downloads)
		if s.Links != nil {
			s.Links.Wake()
		}
		s.wake()
	}
	return err
}

// note is a message on the recipients' page with the status it comes
// with (0: 409).
type note struct {
	Text   bi
	Status int
}

// Texts of the recipients' page.
var (
	msgWrongPassword = note{bi{"パスワードが違います。", "Wrong password."}, http.StatusForbidden}
	msgWrongCode     = note{bi{"確認コードが違います。", "Wrong code."}, http.StatusForbidden}
	msgTooManyTries  = note{bi{"間違いが続いたため、しばらく受け付けません。10 分ほど待ってから、もう一度お試しください。",
		"Too many wrong tries: please wait about 10 minutes, then try again."}, http.StatusTooManyRequests}
	msgCodeExpired = note{bi{"確認コードの期限が切れています。新しいコードを送ってください。",
		"The code has expired; ask for a new one."}, http.StatusForbidden}
	msgCodeWait = note{bi{"確認コードは少し前に送りました。届かない場合は、1 分ほど待ってからもう一度押してください。",
		"A code was sent a moment ago. If it does not come, wait a minute and press the button again."}, http.StatusTooManyRequests}
	msgCodeSent = note{bi{"確認コードをメールで送りました（宛先のアドレスが正しい場合）。10 分間有効です。",
		"A code is on its way by mail (if the address is one this mail went to). It works for 10 minutes."}, http.StatusOK}
	msgCodeNotSent = note{bi{"確認コードを送れませんでした。しばらくしてからもう一度お試しください。",
		"The code could not be sent. Please try again in a moment."}, http.StatusServiceUnavailable}
)

// linkStatus is the download link on the sender's page.
type linkStatus struct {
	State bi
	Class string
	Open  bool // Take back is shown
	CSRF  string
	First string // the first download, "" before it
}

func (s *Server) linkStatus(l *store.Link, token string) *linkStatus {
	now := s.now().In(s.loc())
	at := func(t time.Time) string { return s.clock(t, now) }
	v := &linkStatus{Class: "open", CSRF: s.csrf(token)}
	if !l.FirstDownloadAt.IsZero() {
		v.First = s.full(l.FirstDownloadAt)
	}
	count := bi{fmt.Sprintf("ダウンロード: %d 回", l.Downloads), fmt.Sprintf("Downloads: %d", l.Downloads)}
	if l.MaxDownloads > 0 {
		count = bi{fmt.Sprintf("ダウンロード: %d / %d 回", l.Downloads, l.MaxDownloads),
			fmt.Sprintf("Downloads: %d of %d", l.Downloads, l.MaxDownloads)}
	}
	switch {
	case l.State == store.LinkPending:
		v.Open = true
		v.State = bi{"メールを送信中です。送信が終わると、宛先の方がダウンロードできるようになります。",
			"The mail is on its way; the recipients can download the files once it has left."}
	case l.State == store.LinkActive && now.Before(l.ExpiresAt):
		v.Open = true
		v.State = bi{fmt.Sprintf("宛先の方は %s までダウンロードできます。%s。", s.full(l.ExpiresAt), count.Ja),
			fmt.Sprintf("The recipients can download the files until %s. %s.", s.full(l.ExpiresAt), count.En)}
	case l.State == store.LinkRevoked:
		v.Class = "canceled"
		v.State = bi{fmt.Sprintf("%s に取り消しました。ダウンロードはできません。%s。", at(l.EndedAt), count.Ja),
			fmt.Sprintf("Taken back at %s; the files can no longer be downloaded. %s.", at(l.EndedAt), count.En)}
	case l.State == store.LinkUsedUp:
		v.Class = "done"
		v.State = bi{fmt.Sprintf("ダウンロードできる回数を使い切りました（%s）。ファイルはもう開けず、1 時間後に削除されます。", at(l.EndedAt)),
			fmt.Sprintf("All allowed downloads were made (%s): the files can no longer be opened and are deleted an hour later.", at(l.EndedAt))}
	case l.State == store.LinkLocked:
		v.Class = "failed"
		v.State = bi{fmt.Sprintf("パスワードまたは確認コードが %d 回間違えられたため、%s にページを閉じました。ファイルはもう開けず、1 時間後に削除されます。", l.Failures, at(l.EndedAt)),
			fmt.Sprintf("Locked at %s after %d wrong passwords or codes: the files can no longer be opened and are deleted an hour later.", at(l.EndedAt), l.Failures)}
	default:
		v.Class = "canceled"
		v.State = bi{fmt.Sprintf("期限（%s）が過ぎました。ファイルはもう開けず、1 時間後に削除されます。%s。", s.full(l.ExpiresAt), count.Ja),
			fmt.Sprintf("The link expired at %s: the files can no longer be opened and are deleted an hour later. %s.", s.full(l.ExpiresAt), count.En)}
	}
	return v
}
