package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// Every admin page refuses a visitor without a session (to the login
// page, coming back after it), and every API route one without a valid
// token (401, JSON).
func TestAdminRoutesRefuseWithoutAuth(t *testing.T) {
	s := startStack(t)
	b := s.browser(t)
	for _, r := range []struct{ method, path string }{
		{"GET", "/admin/"}, {"GET", "/admin/domains"}, {"GET", "/admin/domain?d=partner.example"},
		{"POST", "/admin/domain"}, {"POST", "/admin/domain/delete"}, {"GET", "/admin/messages?sender=taro"},
		{"GET", "/admin/messages/m1"}, {"POST", "/admin/messages/m1/cancel"}, {"POST", "/admin/messages/m1/release"},
		{"POST", "/admin/messages/m1/sendnow"}, {"POST", "/admin/messages/m1/approve"}, {"GET", "/admin/audit?q=x"},
		{"GET", "/admin/audit?format=csv"}, {"POST", "/admin/logout"}, {"GET", "/admin/nonesuch"},
	} {
		a := b.do(r.method, r.path, url.Values{"domain": {"partner.example"}, "action": {"pass"}})
		loc := a.header.Get("Location")
		if a.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/login?next=") {
			t.Errorf("%s %s without a session: %d, Location %q", r.method, r.path, a.status, loc)
		}
	}
	if a := b.get("/admin/messages?sender=taro"); a.header.Get("Location") != "/admin/login?next=%2Fadmin%2Fmessages%3Fsender%3Dtaro" {
		t.Errorf("next lost: %q", a.header.Get("Location"))
	}
	good := s.token(t, "ci")
	for _, tok := range []string{"", "Bearer", "Bearer zgt_wrong", "Basic " + good, "bearer " + good} {
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/v1/policies"}, {"GET", "/api/v1/policies/partner.example"}, {"PUT", "/api/v1/policies/partner.example"},
			{"DELETE", "/api/v1/policies/partner.example"}, {"GET", "/api/v1/messages?state=held"}, {"GET", "/api/v1/messages/m1"},
			{"POST", "/api/v1/messages/m1/cancel"}, {"POST", "/api/v1/messages/m1/release"}, {"POST", "/api/v1/messages/m1/approve"},
			{"GET", "/api/v1/audit?q=x"}, {"GET", "/api/v1/audit?format=csv"}, {"GET", "/api/v1/nonesuch"},
		} {
			var hdr []string
			if tok != "" {
				hdr = []string{"Authorization", tok}
			}
			a := b.do(r.method, r.path, nil, hdr...)
			var body map[string]string
			if a.status != http.StatusUnauthorized || json.Unmarshal([]byte(a.body), &body) != nil || body["error"] == "" ||
				a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %q: %d %s", r.method, r.path, tok, a.status, a.body)
			}
		}
	}
	// Nothing changed, and the policies are as they were.
	if list, _ := s.st.ListPolicies(context.Background()); len(list) != 0 {
		t.Errorf("policies changed without auth: %v", list)
	}
	// With the token, the same route answers.
	if a := b.do("GET", "/api/v1/policies", nil, "Authorization", "Bearer "+good); a.status != 200 || strings.TrimSpace(a.body) != "[]" {
		t.Errorf("with the token: %d %s", a.status, a.body)
	}
}

// A form without the session's CSRF value changes nothing; so does a
// login form without its signed value.
func TestAdminCSRF(t *testing.T) {
	s := startStack(t)
	b, csrf := s.signedIn(t)
	for _, bad := range []url.Values{
		{"domain": {"partner.example"}, "action": {"pass"}},
		{"domain": {"partner.example"}, "action": {"pass"}, "csrf": {"forged"}},
		{"domain": {"partner.example"}, "action": {"pass"}, "csrf": {csrf + "x"}},
	} {
		if a := b.post("/admin/domain", bad); a.status != http.StatusForbidden || !strings.Contains(a.body, "フォームが正しくない") {
			t.Errorf("POST without the CSRF value: %d", a.status)
		}
	}
	if _, err := s.st.GetPolicy(context.Background(), "partner.example"); err == nil {
		t.Fatal("a forged form stored a policy")
	}
	// Another session's value does not do either.
	other, otherCSRF := s.signedIn(t)
	_ = other
	if a := b.post("/admin/domain", url.Values{"domain": {"partner.example"}, "csrf": {otherCSRF}}); a.status != http.StatusForbidden {
		t.Errorf("another session's CSRF value: %d", a.status)
	}
	if a := b.post("/admin/logout", url.Values{}); a.status != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", a.status)
	}
	// The login form: its value is signed and bound to its cookie.
	fresh := s.browser(t)
	if a := fresh.post("/admin/login", url.Values{"name": {adminName}, "password": {adminPassword}, "csrf": {"x"}}); a.status != http.StatusForbidden {
		t.Errorf("login without the form's value: %d", a.status)
	}
	page := fresh.get("/admin/login")
	stolen := csrfOf(t, page.body)
	third := s.browser(t)
	third.get("/admin/login") // a cookie of its own
	if a := third.post("/admin/login", url.Values{"name": {adminName}, "password": {adminPassword}, "csrf": {stolen}}); a.status != http.StatusForbidden {
		t.Errorf("login with another browser's form value: %d", a.status)
	}
	// With the right value, the change goes through.
	if a := b.post("/admin/domain", url.Values{"domain": {"partner.example"}, "action": {"pass"}, "csrf": {csrf}}); a.status != http.StatusSeeOther {
		t.Fatalf("save with CSRF: %d %s", a.status, a.body)
	}
}

// The session cookie is HttpOnly and SameSite=Strict; Secure behind
// https; the store keeps only its hash.
func TestAdminSessionCookie(t *testing.T) {
	s := startStack(t)
	b := s.browser(t)
	a := b.login(adminName, adminPassword)
	var c *http.Cookie
	for _, k := range (&http.Response{Header: a.header}).Cookies() {
		if k.Name == sessionCookie && k.Value != "" {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/admin/" {
		t.Fatalf("session cookie %+v", c)
	}
	if _, err := s.st.SessionByHash(context.Background(), []byte(c.Value), time.Now()); err == nil {
		t.Error("the store has the cookie's value itself")
	}
	if _, err := s.st.SessionByHash(context.Background(), hashValue(c.Value), time.Now()); err != nil {
		t.Errorf("the store lacks the cookie's hash: %v", err)
	}
	s.admin.o.Secure = true
	a = s.browser(t).login(adminName, adminPassword)
	if !strings.Contains(a.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("no Secure cookie behind https: %q", a.header.Values("Set-Cookie"))
	}
	// Signing out ends the session for good.
	csrf := csrfOf(t, b.get("/admin/domains").body)
	if a := b.post("/admin/logout", url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", a.status)
	}
	if a := b.get("/admin/domains"); a.status != http.StatusSeeOther {
		t.Errorf("a page after logout: %d", a.status)
	}
}

// Wrong passwords are refused, and after five from one address even the
// right one is, for a while.
func TestAdminLoginRateLimited(t *testing.T) {
	s := startStack(t)
	now := time.Now()
	s.admin.Now = func() time.Time { return now }
	b := s.browser(t)
	for i := range 5 {
		if a := b.login(adminName, "wrong password "+string(rune('a'+i))); a.status != http.StatusUnauthorized ||
			!strings.Contains(a.body, "ユーザー名またはパスワードが違います") {
			t.Fatalf("wrong password %d: %d", i, a.status)
		}
	}
	if a := b.login(adminName, adminPassword); a.status != http.StatusTooManyRequests {
		t.Fatalf("right password after 5 failures: %d", a.status)
	}
	// alice at another desk is not kept out by the guesses from here.
	elsewhere := s.browser(t)
	elsewhere.c.Transport = &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}
	if a := elsewhere.login(adminName, adminPassword); a.status != http.StatusSeeOther {
		t.Errorf("the right password from another address: %d", a.status)
	}
	// Other names from here: 10 failures in all, then this address waits.
	for i := range 5 {
		if a := s.browser(t).login("nobody", "guess "+string(rune('a'+i))); a.status != http.StatusUnauthorized {
			t.Fatalf("another name from the same address, try %d: %d", i, a.status)
		}
	}
	if a := s.browser(t).login("someone", adminPassword); a.status != http.StatusTooManyRequests {
		t.Errorf("an 11th try from one address: %d", a.status)
	}
	now = now.Add(16 * time.Minute)
	if a := b.login(adminName, adminPassword); a.status != http.StatusSeeOther {
		t.Errorf("after the window: %d", a.status)
	}
	var failed int
	for _, e := range s.events(t) {
		if e.Event.Event == "login_failed" && e.Target == "admin alice" {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d failed logins for alice in the audit, want 5", failed)
	}
	// A name that is no account is not recorded: it may be a password.
	for _, e := range s.events(t) {
		if strings.Contains(e.Target+e.Actor+e.Detail, "nobody") {
			t.Errorf("a name that is no account is in the audit: %+v", e.Event)
		}
	}
}

// The pages speak the browser's language, and the switch changes it.
func TestAdminLanguage(t *testing.T) {
	s := startStack(t)
	b := s.browser(t)
	if a := b.do("GET", "/admin/login", nil, "Accept-Language", "en-US,en;q=0.9,ja;q=0.5"); !strings.Contains(a.body, `<html lang="en">`) ||
		!strings.Contains(a.body, "Sign in") {
		t.Errorf("English browser got:\n%s", a.body)
	}
	if a := b.do("GET", "/admin/login", nil, "Accept-Language", "ja,en;q=0.8"); !strings.Contains(a.body, "ログイン") {
		t.Errorf("Japanese browser got:\n%s", a.body)
	}
	a := b.get("/admin/lang?to=en&back=/admin/login")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/admin/login" {
		t.Fatalf("switch: %d %q", a.status, a.header.Get("Location"))
	}
	if a := b.do("GET", "/admin/login", nil, "Accept-Language", "ja"); !strings.Contains(a.body, "Sign in") {
		t.Error("the switch did not win over the browser's language")
	}
	if a := b.get("/admin/lang?to=en&back=https://evil.example/"); a.header.Get("Location") != "/admin/messages" {
		t.Errorf("the switch went elsewhere: %q", a.header.Get("Location"))
	}
	for _, k := range []string{"ja", "en"} {
		for key := range catalogs["en"] {
			if _, ok := catalogs[k][key]; !ok {
				t.Errorf("%s lacks %s", k, key)
			}
		}
		for key := range catalogs[k] {
			if _, ok := catalogs["en"][key]; !ok {
				t.Errorf("en lacks %s (in %s)", key, k)
			}
		}
	}
	for _, f := range policy.Fields {
		if _, ok := catalogs["ja"]["field."+f.Name]; !ok {
			t.Errorf("no label for the policy field %s", f.Name)
		}
	}
}

// Every admin action, on the pages, through the API and from the
// accounts themselves, is in the audit with who did it and how.
func TestEveryAdminActionIsAudited(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	b, csrf := s.signedIn(t)
	tok := s.token(t, "ci")
	api := func(method, path, body string) answer {
		t.Helper()
		req, _ := http.NewRequest(method, s.adminTS.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return answer{resp.StatusCode, resp.Header, buf.String()}
	}

	// Domains on the page: add, change, delete.
	form := url.Values{"csrf": {csrf}, "domain": {"Partner.Example."}, "action": {"encrypt"}, "delay": {"15m"},
		"zip_method": {"zipcrypto"}, "approvers": {"boss@example.co.jp"}, "note": {"見積は ZIP で"}}
	if a := b.post("/admin/domain", form); a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Location"), "done=saved") {
		t.Fatalf("add: %d %s", a.status, a.body)
	}
	form.Set("delay", "bogus")
	if a := b.post("/admin/domain", form); a.status != http.StatusBadRequest || !strings.Contains(a.body, "is not a duration") ||
		!strings.Contains(a.body, `value="bogus"`) {
		t.Fatalf("bad delay: %d %s", a.status, a.body)
	}
	form.Set("delay", "")
	form.Set("approvers", "")
	if a := b.post("/admin/domain", form); a.status != http.StatusSeeOther {
		t.Fatalf("change: %d", a.status)
	}
	p, err := s.st.GetPolicy(ctx, "partner.example")
	if err != nil || p.Delay != nil || p.Approvers != nil || p.ZipMethod != "zipcrypto" || p.Note != "見積は ZIP で" {
		t.Fatalf("stored %+v, %v", p, err)
	}
	page := b.get("/admin/domains")
	if !strings.Contains(page.body, "partner.example") || !strings.Contains(page.body, "zipcrypto") || !strings.Contains(page.body, "(10m)") {
		t.Errorf("domains page:\n%s", page.body)
	}
	edit := b.get("/admin/domain?d=partner.example")
	for _, f := range policy.Fields {
		if !strings.Contains(edit.body, `name="`+f.Name+`"`) {
			t.Errorf("the form lacks %s", f.Name)
		}
	}
	if a := b.post("/admin/domain/delete", url.Values{"csrf": {csrf}, "domain": {"partner.example"}}); a.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", a.status)
	}

	// Through the API: put, then delete.
	if a := api("PUT", "/api/v1/policies/rival.example", `{"action":"reject","note":"no files"}`); a.status != 200 ||
		!strings.Contains(a.body, `"action": "reject"`) {
		t.Fatalf("PUT: %d %s", a.status, a.body)
	}
	if a := api("PUT", "/api/v1/policies/rival.example", `{"action":"explode"}`); a.status != 400 || !strings.Contains(a.body, "explode") {
		t.Fatalf("bad PUT: %d %s", a.status, a.body)
	}
	if a := api("PUT", "/api/v1/policies/rival.example", `{"colour":"red"}`); a.status != 400 || !strings.Contains(a.body, "unknown field") {
		t.Fatalf("unknown field: %d %s", a.status, a.body)
	}
	if a := api("DELETE", "/api/v1/policies/rival.example", ""); a.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", a.status, a.body)
	}
	if a := api("DELETE", "/api/v1/policies/rival.example", ""); a.status != 404 {
		t.Fatalf("second DELETE: %d %s", a.status, a.body)
	}

	// A message with its password scheduled: the page releases it, the
	// API cancels one of another message.
	for _, subj := range []string{"one", "two"} {
		if se := s.send(t, "taro@example.co.jp", []string{"bob@partner.example"}, mailWith(subj, "見積書.pdf")); se != nil {
			t.Fatalf("send: %v", se)
		}
	}
	msgs, _ := s.st.FindMessages(ctx, store.MessageQuery{State: "scheduled"})
	if len(msgs) != 2 {
		t.Fatalf("%d messages with a password waiting", len(msgs))
	}
	one, two := msgs[1], msgs[0]
	var passwords []string
	for _, m := range msgs {
		for _, j := range s.mustJobs(t, m.ID) {
			full, err := s.st.Get(ctx, j.ID)
			if err != nil || full.Password == "" {
				t.Fatalf("job %s: %v", j.ID, err)
			}
			passwords = append(passwords, full.Password)
		}
	}
	msgJSON := api("GET", "/api/v1/messages/"+one.ID, "")
	detail := b.get("/admin/messages/" + one.ID)
	if !strings.Contains(detail.body, "見積書.pdf") || !strings.Contains(detail.body, "/release") || !strings.Contains(detail.body, "received") {
		t.Fatalf("message page:\n%s", detail.body)
	}
	if a := b.post("/admin/messages/"+one.ID+"/release", url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther {
		t.Fatalf("release: %d %s", a.status, a.body)
	}
	if a := api("POST", "/api/v1/messages/"+two.ID+"/cancel", ""); a.status != 200 || !strings.Contains(a.body, `"done": "canceled"`) {
		t.Fatalf("API cancel: %d %s", a.status, a.body)
	}
	if a := api("POST", "/api/v1/messages/"+two.ID+"/cancel", ""); a.status != 409 {
		t.Fatalf("second cancel: %d %s", a.status, a.body)
	}
	if j, _ := s.st.JobsOf(ctx, two.ID); len(j) != 1 || j[0].State != store.Canceled {
		t.Fatalf("job of two: %+v", j)
	}

	// A held message that waits for an approver: approved in their name.
	if a := api("PUT", "/api/v1/policies/bank.example", `{"approvers":["boss@example.co.jp"]}`); a.status != 200 {
		t.Fatalf("PUT approvers: %d %s", a.status, a.body)
	}
	if se := s.send(t, "taro@example.co.jp", []string{"kim@bank.example"}, mailWith("three", "a.pdf")); se != nil {
		t.Fatalf("send held: %v", se)
	}
	held, _ := s.st.FindMessages(ctx, store.MessageQuery{State: "held"})
	if len(held) != 1 {
		t.Fatalf("%d held", len(held))
	}
	page = b.get("/admin/messages/" + held[0].ID)
	if !strings.Contains(page.body, "boss@example.co.jp") || !strings.Contains(page.body, "/sendnow") {
		t.Fatalf("held message page:\n%s", page.body)
	}
	if a := b.post("/admin/messages/"+held[0].ID+"/approve", url.Values{"csrf": {csrf}, "by": {"boss@example.co.jp"}}); a.status != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", a.status, a.body)
	}
	if a := b.post("/admin/messages/"+held[0].ID+"/cancel", url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther {
		t.Fatalf("cancel held: %d %s", a.status, a.body)
	}

	// The audit: each action with its actor and how.
	type line struct{ event, actor, via string }
	var got []line
	for _, e := range s.events(t) {
		if strings.HasPrefix(e.Actor, "admin ") || strings.HasPrefix(e.Actor, "token ") {
			got = append(got, line{e.Event.Event, e.Actor, e.Via})
		}
	}
	want := []line{
		{"login", "admin alice", "page"},
		{"policy_added", "admin alice", "page"},
		{"policy_set", "admin alice", "page"},
		{"policy_deleted", "admin alice", "page"},
		{"policy_added", "token ci", "api"},
		{"policy_deleted", "token ci", "api"},
		{"password_release_now", "admin alice", "page"},
		{"password_canceled", "token ci", "api"},
		{"policy_added", "token ci", "api"},
		{"approved_by_admin", "admin alice", "page"},
		{"canceled", "admin alice", "page"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%v\nwant\n%v", got, want)
	}
	var set store.AuditRow
	for _, e := range s.events(t) {
		if e.Event.Event == "policy_set" {
			set = e
		}
	}
	if set.Target != "policy partner.example" || set.Detail != "delay: 15m → (unset); approvers: boss@example.co.jp → (unset)" {
		t.Errorf("what changed: %+v", set)
	}

	// The audit page finds by file name; its CSV is UTF-8 with a BOM.
	if a := b.get("/admin/audit?q=" + url.QueryEscape("見積書")); a.status != 200 || strings.Count(a.body, "見積書.pdf") < 2 {
		t.Errorf("audit search:\n%s", a.body)
	}
	a := b.get("/admin/audit?q=" + url.QueryEscape("見積書") + "&format=csv")
	if a.status != 200 || !strings.HasPrefix(a.body, "\ufefftime,message,event,") || !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %d %q", a.status, a.body[:min(len(a.body), 80)])
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(a.body, "\ufeff"))).ReadAll()
	if err != nil || len(rows) < 5 || !slices.Contains(rows[1:][0], "見積書.pdf") && !strings.Contains(a.body, "見積書.pdf") {
		t.Fatalf("CSV rows %d: %v", len(rows), err)
	}
	// The API answers the same search as JSON.
	js := api("GET", "/api/v1/audit?file="+url.QueryEscape("見積書")+"&rcpt=bob@", "")
	var list []map[string]any
	if js.status != 200 || json.Unmarshal([]byte(js.body), &list) != nil || len(list) == 0 {
		t.Fatalf("API audit: %d %s", js.status, js.body)
	}
	// And none of it shows a password.
	if msgJSON.status != 200 || !strings.Contains(msgJSON.body, `"events"`) {
		t.Fatalf("API message: %d %s", msgJSON.status, msgJSON.body)
	}
	for _, pw := range passwords {
		for what, body := range map[string]string{"CSV": a.body, "JSON": js.body, "message API": msgJSON.body, "page": detail.body} {
			if strings.Contains(body, pw) {
				t.Errorf("the password is in the %s", what)
			}
		}
	}
}

func (s *stack) mustJobs(t *testing.T, id string) []*store.Job {
	t.Helper()
	jobs, err := s.st.JobsOf(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// admin.listen = "web": the admin pages, the API and /metrics beside the
// sender page on one listener, each answering as on its own.
func TestMountOnTheSenderListener(t *testing.T) {
	s := startStack(t)
	ts := httptest.NewServer(Mount(s.sender, s.admin))
	defer ts.Close()
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/admin/login", `name="password"`, 200},
		{"/api/v1/policies", `"error"`, 401},
		{"/metrics", "zipgate_build_info", 200},
		{"/healthz", "ok", 200},
		{"/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ページが見つかりません", 404},
	} {
		resp, err := http.Get(ts.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(buf.String(), c.want) {
			t.Errorf("%s: %d, want %d with %q", c.path, resp.StatusCode, c.status, c.want)
		}
	}
}

// A subject or file name that a spreadsheet would read as a formula stays
// text in the CSV.
func TestAuditCSVNoFormulas(t *testing.T) {
	s := startStack(t)
	b, _ := s.signedIn(t)
	if se := s.send(t, "taro@example.co.jp", []string{"bob@partner.example"}, mailWith("=HYPERLINK(\"http://evil.example\")", "@SUM(A1).pdf")); se != nil {
		t.Fatal(se)
	}
	a := b.get("/admin/audit?format=csv&rcpt=bob")
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(a.body, "\ufeff"))).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("CSV: %v\n%s", err, a.body)
	}
	for _, row := range rows[1:] {
		if row[9] != `'=HYPERLINK("http://evil.example")` || row[10] != "'@SUM(A1).pdf" {
			t.Fatalf("row %q", row)
		}
	}
}
