package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// The admin pages (/admin/: domains, messages, audit), the JSON API
// (/api/v1/, api.go) and /metrics, on a listener of their own by default
// (admin.listen). Pages need a signed-in admin: an account made with
// `zipgate admin user add`, a session in the store (the cookie carries a
// random value, the store its SHA-256), and on every form the session's
// CSRF value. The API needs a token made with `zipgate admin token
// create`. GET never changes anything but the language cookie. No
// script, nothing loaded from elsewhere.

// AdminOptions configure the admin handler.
type AdminOptions struct {
	Store store.Store
	Log   *slog.Logger
	// Wake and WakeHold tell the release and hold schedulers about an
	// admin's action (nil: none).
	Wake, WakeHold func()
	// WakeLinks tells the links scheduler a link was taken back, so its
	// files go at once (nil: none).
	WakeLinks func()
	// Metrics serves /metrics (nil: none).
	Metrics http.Handler
	// Secure marks the session cookie Secure (web.base_url is https).
	Secure bool
	// SessionTimeout signs an admin out after this long idle.
	SessionTimeout time.Duration
	// Key is a secret of the server (32 random bytes): it signs the
	// login form.
	Key []byte
	// Defaults are the configuration's values under every rule, shown
	// beside the fields a rule leaves unset.
	Defaults policy.Defaults
}

// Admin serves the admin pages, the API and /metrics.
type Admin struct {
	// Now is the clock; tests set it.
	Now func() time.Time
	// Location is the zone times are shown in; nil means time.Local.
	Location *time.Location

	o       AdminOptions
	log     *slog.Logger
	mux     *http.ServeMux
	limiter *loginLimiter
}

// Cookies of the admin pages: the session, the login form's CSRF
// value, the chosen language.
const (
	sessionCookie = "zipgate_admin"
	loginCookie   = "zipgate_login"
	langCookie    = "zipgate_lang"
	adminPath     = "/admin/"
)

// maxAdminBody bounds a form or API body: a policy with a long note and
// many approvers is a few KiB.
const maxAdminBody = 64 << 10

// NewAdmin returns the admin handler.
func NewAdmin(o AdminOptions) *Admin {
	if len(o.Key) < 16 {
		panic("web: the admin key must be at least 16 bytes")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 8 * time.Hour
	}
	a := &Admin{Now: time.Now, o: o, log: o.Log, mux: http.NewServeMux(), limiter: newLoginLimiter()}
	m := a.mux
	// Public: the login form and the language switch.
	m.HandleFunc("GET /admin/login", a.loginPage)
	m.HandleFunc("POST /admin/login", a.login)
	m.HandleFunc("GET /admin/lang", a.setLang)
	// Everything else needs a session, and a POST its CSRF value.
	page := func(pattern string, h func(http.ResponseWriter, *http.Request, *adminReq)) {
		m.Handle(pattern, a.authed(h))
	}
	page("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request, _ *adminReq) {
		http.Redirect(w, r, "/admin/messages", http.StatusSeeOther)
	})
	page("POST /admin/logout", a.logout)
	page("GET /admin/domains", a.domainsPage)
	page("GET /admin/domain", a.domainPage)
	page("POST /admin/domain", a.domainSave)
	page("POST /admin/domain/delete", a.domainDelete)
	page("GET /admin/messages", a.messagesPage)
	page("GET /admin/messages/{id}", a.messagePage)
	page("POST /admin/messages/{id}/{op}", a.messageAction)
	page("GET /admin/audit", a.auditPage)
	// Any other admin path: 404, but only for a signed-in admin.
	page("/admin/", func(w http.ResponseWriter, r *http.Request, q *adminReq) {
		a.message(w, r, q, http.StatusNotFound, "error.not_found")
	})
	a.routeAPI()
	if o.Metrics != nil {
		m.Handle("GET /metrics", o.Metrics)
	}
	return a
}

func (a *Admin) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Admin) loc() *time.Location {
	if a.Location != nil {
		return a.Location
	}
	return time.Local
}

// Handler returns the HTTP handler: security headers, body limits, and
// for an unknown admin path the login page's 404.
func (a *Admin) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		a.mux.ServeHTTP(w, r)
	})
}

// HTTPServer returns the server for the admin listener, with the sender
// page's timeouts and header limit.
func (a *Admin) HTTPServer(t Timeouts, errorLog *log.Logger) *http.Server {
	return httpServer(a.Handler(), t, errorLog)
}

// Mount serves the admin pages, the API and /metrics beside the sender
// page on one listener (admin.listen = "web").
func Mount(sender *Server, admin *Admin) http.Handler {
	mux := http.NewServeMux()
	ah := admin.Handler()
	mux.Handle("/admin/", ah)
	mux.Handle("/api/", ah)
	mux.Handle("/metrics", ah)
	mux.Handle("/", sender.Handler())
	return mux
}

// adminReq is what a signed-in request carries.
type adminReq struct {
	name string
	sess *store.Session
	lang string
}

func (q *adminReq) actor() string { return "admin " + q.name }

func hashValue(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

func randomValue() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// authed runs h for a signed-in admin; others go to the login page. A
// POST without the session's CSRF value is refused (403), so no handler
// can forget the check.
func (a *Admin) authed(h func(http.ResponseWriter, *http.Request, *adminReq)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := a.now()
		var sess *store.Session
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			s, err := a.o.Store.SessionByHash(r.Context(), hashValue(c.Value), now)
			switch {
			case err == nil:
				sess = s
			case !errors.Is(err, store.ErrNoSession):
				a.fail(w, r, "reading a session", err)
				return
			}
		}
		if sess == nil {
			next := r.URL.Path
			if r.Method == http.MethodGet && r.URL.RawQuery != "" {
				next += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, "/admin/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		q := &adminReq{name: sess.Admin, sess: sess, lang: a.lang(r)}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				a.formError(w, r, q, err)
				return
			}
			if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(sess.CSRF)) {
				a.log.Warn("admin page: form without its CSRF value refused", "admin", sess.Admin, "path", r.URL.Path)
				a.message(w, r, q, http.StatusForbidden, "error.csrf")
				return
			}
		}
		// An admin at work stays signed in; written at most once a minute.
		if now.Sub(sess.SeenAt) >= time.Minute {
			if err := a.o.Store.TouchSession(r.Context(), sess.IDHash, now, now.Add(a.o.SessionTimeout)); err != nil {
				a.log.Warn("could not extend an admin session", "error", err.Error())
			}
		}
		h(w, r, q)
	})
}

func (a *Admin) formError(w http.ResponseWriter, r *http.Request, q *adminReq, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		a.message(w, r, q, http.StatusRequestEntityTooLarge, "error.too_large")
		return
	}
	a.message(w, r, q, http.StatusBadRequest, "error.bad_request")
}

// event adds a line to the audit trail; the action is done, so a store
// that cannot write it costs a log line.
func (a *Admin) event(ctx context.Context, e store.Event) {
	if e.At.IsZero() {
		e.At = a.now()
	}
	if err := a.o.Store.AddEvent(context.WithoutCancel(ctx), e); err != nil {
		a.log.Error("could not write the audit trail", "event", e.Event, "actor", e.Actor, "error", err.Error())
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginCSRF signs the login form's cookie value with the server key.
func (a *Admin) loginCSRF(cookie string) string {
	m := hmac.New(sha256.New, a.o.Key)
	m.Write([]byte("zipgate admin login\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type loginView struct {
	pageView
	Next, CSRF, Name, Error string
}

func (a *Admin) loginPage(w http.ResponseWriter, r *http.Request) {
	a.renderLogin(w, r, http.StatusOK, "", "")
}

func (a *Admin) renderLogin(w http.ResponseWriter, r *http.Request, status int, name, errKey string) {
	v := &loginView{pageView: a.pageView(r, nil, ""), Next: safeNext(r.FormValue("next")), Name: name}
	value := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 32 {
		value = c.Value
	} else {
		value = randomValue()
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: value, Path: "/admin/", HttpOnly: true,
			Secure: a.o.Secure, SameSite: http.SameSiteStrictMode})
	}
	v.CSRF = a.loginCSRF(value)
	if errKey != "" {
		v.Error = v.T(errKey)
	}
	a.render(w, status, "login", v)
}

// safeNext keeps a post-login target only when it is an admin page of
// this server.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/admin/") && !strings.HasPrefix(next, "/admin/login") && !strings.Contains(next, "//") &&
		!strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/admin/messages"
}

func (a *Admin) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		a.renderLogin(w, r, http.StatusBadRequest, "", "error.bad_request")
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(a.loginCSRF(c.Value))) {
		a.renderLogin(w, r, http.StatusForbidden, "", "error.csrf")
		return
	}
	name, password := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("password")
	ip, now := clientIP(r), a.now()
	if wait := a.limiter.try(ip, name, now); wait > 0 {
		a.log.Warn("admin login refused: too many failures", "admin", name, "client_ip", ip)
		a.renderLogin(w, r, http.StatusTooManyRequests, name, "login.too_many")
		return
	}
	ctx := r.Context()
	acct, err := a.o.Store.GetAdmin(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNoAdmin) {
		a.fail(w, r, "reading an admin account", err)
		return
	}
	// Without an account the hash is compared all the same, so the time
	// taken does not tell which names exist.
	hash := dummyHash
	if acct != nil {
		hash = acct.PasswordHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || acct == nil {
		// What was typed as the name is not recorded unless it is an
		// account: it may be a password typed in the wrong field.
		who := "an unknown name"
		if acct != nil {
			who = "admin " + acct.Name
		}
		a.log.Warn("admin login failed", "admin", who, "client_ip", ip)
		a.event(ctx, store.Event{Event: "login_failed", Actor: "anonymous from " + ip, Via: "page", Target: who,
			Detail: "from " + ip})
		a.renderLogin(w, r, http.StatusUnauthorized, name, "login.failed")
		return
	}
	a.limiter.success(ip, name)
	// A fresh session at each login (no fixation); its own CSRF value.
	value := randomValue()
	sess := &store.Session{IDHash: hashValue(value), Admin: acct.Name, CSRF: randomValue(), CreatedAt: now, SeenAt: now,
		Expires: now.Add(a.o.SessionTimeout)}
	if err := a.o.Store.CreateSession(ctx, sess); err != nil {
		a.fail(w, r, "creating a session", err)
		return
	}
	if err := a.o.Store.AdminLoggedIn(ctx, acct.Name, now); err != nil {
		a.log.Warn("could not stamp a login", "error", err.Error())
	}
	a.event(ctx, store.Event{Event: "login", Actor: "admin " + acct.Name, Via: "page", Target: "admin " + acct.Name, Detail: "from " + ip})
	a.log.Info("admin signed in", "admin", acct.Name, "client_ip", ip)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/admin/", HttpOnly: true, Secure: a.o.Secure,
		SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/admin/", MaxAge: -1, HttpOnly: true,
		Secure: a.o.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// dummyHash is compared when the name has no account.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such admin"), bcrypt.DefaultCost)

func (a *Admin) logout(w http.ResponseWriter, r *http.Request, q *adminReq) {
	if err := a.o.Store.DeleteSession(r.Context(), q.sess.IDHash); err != nil {
		a.fail(w, r, "ending a session", err)
		return
	}
	a.event(r.Context(), store.Event{Event: "logout", Actor: q.actor(), Via: "page", Target: "admin " + q.name})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/admin/", MaxAge: -1, HttpOnly: true,
		Secure: a.o.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

// setLang keeps the admin's choice of language in a cookie (a
// preference, so a GET may set it) and goes back.
func (a *Admin) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.URL.Query().Get("to")
	if _, ok := catalogs[lang]; ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/admin/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: a.o.Secure, SameSite: http.SameSiteStrictMode})
	}
	back := r.URL.Query().Get("back")
	if back != "/admin/login" && !strings.HasPrefix(back, "/admin/login?") {
		back = safeNext(back)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// fail logs an internal fault and answers 500 without its details.
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error("admin: "+what, "error", err.Error())
	a.message(w, r, nil, http.StatusInternalServerError, "error.internal")
}

// message answers with a short page in the admin's language.
func (a *Admin) message(w http.ResponseWriter, r *http.Request, q *adminReq, status int, key string) {
	v := a.pageView(r, q, "")
	a.render(w, status, "message", &noteView{pageView: v, Text: v.T(key)})
}

type noteView struct {
	pageView
	Text string
}

func (a *Admin) render(w http.ResponseWriter, status int, name string, v any) {
	var buf bytes.Buffer
	if err := adminPages.ExecuteTemplate(&buf, name, v); err != nil {
		a.log.Error("rendering an admin page", "page", name, "error", err.Error())
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// loginLimiter slows password guessing: after 5 failures within 15
// minutes for one name from one address, or 10 from one address for any
// names, logins from there (for that name) wait until the window has
// passed. Not per name alone: then anyone could keep an admin out with
// five wrong guesses. A try is counted before its password is compared
// and given back when it succeeds, so guesses sent at once cannot pass
// the limit while bcrypt runs. Kept in memory: a restart forgets it,
// which costs a guesser a restart of zipgate.
type loginLimiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
}

const (
	loginWindow     = 15 * time.Minute
	loginFailures   = 5  // per name and address
	addressFailures = 10 // per address, any names
)

func newLoginLimiter() *loginLimiter { return &loginLimiter{failures: map[string][]time.Time{}} }

// try counts a login from ip for name; when one is not allowed now, it
// counts nothing and says how long to wait.
func (l *loginLimiter) try(ip, name string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Guessed names must not grow the map without bound: past 10,000
	// keys, those with no failure in the window go.
	if len(l.failures) > 10000 {
		for k, ts := range l.failures {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= loginWindow {
				delete(l.failures, k)
			}
		}
	}
	pair, addr := "pair "+ip+" "+strings.ToLower(name), "ip "+ip
	var wait time.Duration
	for _, k := range []struct {
		key string
		max int
	}{{pair, loginFailures}, {addr, addressFailures}} {
		recent := l.failures[k.key][:0]
		for _, t := range l.failures[k.key] {
			if now.Sub(t) < loginWindow {
				recent = append(recent, t)
			}
		}
		l.failures[k.key] = recent
		if len(recent) >= k.max {
			wait = max(wait, loginWindow-now.Sub(recent[0]))
		}
	}
	if wait > 0 {
		return wait
	}
	l.failures[pair] = append(l.failures[pair], now)
	l.failures[addr] = append(l.failures[addr], now)
	return 0
}

// success gives back the try of a login that succeeded, and forgets the
// name's failures from that address.
func (l *loginLimiter) success(ip, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, "pair "+ip+" "+strings.ToLower(name))
	if ts := l.failures["ip "+ip]; len(ts) > 0 {
		l.failures["ip "+ip] = ts[:len(ts)-1]
	}
}
