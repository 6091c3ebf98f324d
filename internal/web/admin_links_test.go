package web

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	dl "github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/store"
)

var linkURLRe = regexp.MustCompile(`http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]+`)

// An admin's Cancel of a message sent as a download link takes the link
// back, also after its password went: the page answers 410 and the audit
// says who did it. A link opened by codes has no password to release.
func TestAdminTakesBackADownloadLink(t *testing.T) {
	s := startStack(t)
	tok := s.token(t, "ci")
	const rcpt = "bob@partner.example"
	if code, body := s.api(t, tok, "PUT", "/api/v1/policies/partner.example", `{"action":"link","max_downloads":3}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, mailWith("drawings", "図面.pdf")); se != nil {
		t.Fatal(se)
	}
	link := linkURLRe.FindString(string(lastTo(t, s.hop, rcpt)))
	if link == "" {
		t.Fatalf("no download link in:\n%s", lastTo(t, s.hop, rcpt))
	}
	ls, err := s.st.ListLinks(context.Background(), 10)
	if err != nil || len(ls) != 1 {
		t.Fatalf("links %v %v", ls, err)
	}
	id := ls[0].Message
	if code, body := s.api(t, tok, "POST", "/api/v1/messages/"+id+"/release", ""); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	if _, err := s.sched.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pw := lastTo(t, s.hop, rcpt); !strings.Contains(string(pw), "Password") {
		t.Fatalf("the last mail to %s is not the password:\n%s", rcpt, pw)
	}
	if st := getStatus(t, link); st != http.StatusOK {
		t.Fatalf("the link answers %d before it is taken back", st)
	}

	// The page shows the link and offers Cancel though the password went.
	b, _ := s.signedIn(t)
	page := b.get("/admin/messages/" + id)
	if !strings.Contains(page.body, "ダウンロードリンク: active、ダウンロード 0 回") ||
		!strings.Contains(page.body, `action="/admin/messages/`+id+`/cancel"`) {
		t.Fatalf("the message page does not offer to take the link back:\n%s", page.body)
	}
	if code, body := s.api(t, tok, "POST", "/api/v1/messages/"+id+"/cancel", ""); code != 200 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if l, _ := s.st.GetLink(context.Background(), ls[0].ID); l.State != store.LinkRevoked {
		t.Fatalf("link state after the admin's cancel: %s", l.State)
	}
	if st := getStatus(t, link); st != http.StatusGone {
		t.Fatalf("the link answers %d after it was taken back, want 410", st)
	}
	found := false
	for _, e := range s.events(t) {
		if e.Event.Event == dl.EventRevoked && e.Actor == "token ci" && e.Via == "api" {
			found = true
		}
	}
	if !found {
		t.Errorf("the audit does not say the token took the link back: %+v", s.events(t))
	}
	if code, _ := s.api(t, tok, "POST", "/api/v1/messages/"+id+"/cancel", ""); code != http.StatusConflict {
		t.Errorf("a second cancel: %d, want 409", code)
	}

	// Opened by codes: nothing to release.
	if code, body := s.api(t, tok, "PUT", "/api/v1/policies/partner.example", `{"action":"link","link_auth":"otp"}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, mailWith("codes", "a.pdf")); se != nil {
		t.Fatal(se)
	}
	ls, _ = s.st.ListLinks(context.Background(), 10)
	if code, body := s.api(t, tok, "POST", "/api/v1/messages/"+ls[0].Message+"/release", ""); code != http.StatusConflict {
		t.Errorf("release of a link opened by codes: %d %s, want 409", code, body)
	}
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
