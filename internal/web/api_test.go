package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/zipgate/zipgate/internal/mailtest"
)

func (s *stack) api(t *testing.T, tok, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.adminTS.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lastTo is the last message the next hop took for rcpt.
func lastTo(t *testing.T, hop *mailtest.NextHop, rcpt string) []byte {
	t.Helper()
	msgs := hop.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		for _, r := range msgs[i].Rcpts {
			if r == rcpt {
				return msgs[i].Data
			}
		}
	}
	t.Fatalf("nothing for %s", rcpt)
	return nil
}

// A rule PUT through the API decides the very next message: pass sends
// it as written, encrypt again zips it; GET shows the rule as stored.
func TestAPIPolicyPutChangesTheNextMessage(t *testing.T) {
	s := startStack(t)
	tok := s.token(t, "ci")
	const rcpt = "bob@partner.example"
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, mailWith("before", "a.pdf")); se != nil {
		t.Fatal(se)
	}
	if got := lastTo(t, s.hop, rcpt); !bytes.Contains(got, []byte("application/zip")) {
		t.Fatalf("by default the file is not zipped:\n%s", got)
	}

	if code, body := s.api(t, tok, "PUT", "/api/v1/policies/partner.example", `{"action":"pass","note":"trusted"}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	orig := mailWith("after", "a.pdf")
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, orig); se != nil {
		t.Fatal(se)
	}
	if got := lastTo(t, s.hop, rcpt); !bytes.Equal(got, []byte(orig)) {
		t.Fatalf("after PUT action=pass the message was changed:\n%s", got)
	}

	code, body := s.api(t, tok, "GET", "/api/v1/policies/partner.example", "")
	var p map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &p) != nil || p["action"] != "pass" || p["note"] != "trusted" || p["delay"] != "" {
		t.Fatalf("GET: %d %s", code, body)
	}
	// PUT replaces the rule: a field left out is unset again.
	if code, body := s.api(t, tok, "PUT", "/api/v1/policies/partner.example", `{"delay":"30m"}`); code != 200 ||
		!strings.Contains(body, `"action": ""`) || !strings.Contains(body, `"delay": "30m"`) {
		t.Fatalf("second PUT: %d %s", code, body)
	}
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, mailWith("again", "a.pdf")); se != nil {
		t.Fatal(se)
	}
	if got := lastTo(t, s.hop, rcpt); !bytes.Contains(got, []byte("application/zip")) {
		t.Fatalf("back to encrypt, the file is not zipped:\n%s", got)
	}

	// The messages, filtered, with their state.
	code, body = s.api(t, tok, "GET", "/api/v1/messages?rcpt=bob@partner.example&state=scheduled", "")
	var list []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 2 {
		t.Fatalf("messages: %d %s", code, body)
	}
	if code, body := s.api(t, tok, "GET", "/api/v1/messages?state=bogus", ""); code != 400 || !strings.Contains(body, `"error"`) {
		t.Errorf("bad state: %d %s", code, body)
	}
	if code, body := s.api(t, tok, "GET", "/api/v1/messages/nonesuch", ""); code != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown message: %d %s", code, body)
	}

	// /metrics on the admin listener counts them.
	resp, err := http.Get(s.adminTS.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`zipgate_messages_total{action="encrypt",result="accepted"} 2`,
		`zipgate_messages_total{action="pass",result="accepted"} 1`, `zipgate_jobs{state="scheduled"} 2`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// /healthz on the sender listener: 503 naming the next hop when it takes
// no connection.
func TestHealthzChecksTheNextHop(t *testing.T) {
	s := startStack(t)
	get := func() (int, string) {
		resp, err := http.Get(s.senderTS.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	s.sender.NextHop = closed
	if code, body := get(); code != http.StatusServiceUnavailable || body != "next hop "+closed+" unavailable\n" {
		t.Fatalf("next hop down: %d %q", code, body)
	}

	// Anyone can ask; the next hop sees one session per few seconds.
	s.sender.NextHop = s.hop.Addr
	before := s.hop.Sessions()
	for range 50 {
		if code, body := get(); code != 200 {
			t.Fatalf("healthy again: %d %q", code, body)
		}
	}
	if n := s.hop.Sessions() - before; n > 1 {
		t.Errorf("50 requests to /healthz opened %d sessions at the next hop, want at most 1", n)
	}
}
