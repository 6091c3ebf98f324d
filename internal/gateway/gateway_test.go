package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/store"
)

const withAttachment = "From: Taro <taro@example.co.jp>\r\n" +
	"To: Hanako <hanako@example.com>\r\n" +
	"Subject: =?UTF-8?B?6KaL56mN5pu4?=\r\n" +
	"Message-ID: <orig-1@example.co.jp>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"見積書を送ります。\r\n" +
	"--b1\r\n" +
	"Content-Type: application/pdf; name=\"=?UTF-8?B?6KaL56mN5pu4LnBkZg==?=\"\r\n" +
	"Content-Disposition: attachment; filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E6%9B%B8.pdf\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg==\r\n" +
	"--b1--\r\n"

func TestAttachmentLeavesInAZipAndThePasswordFollows(t *testing.T) {
	h := start(t, nil)
	if se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com", "jiro@example.net"}, []byte(withAttachment)); se != nil {
		t.Fatalf("got %d %s, want 250", se.Code, se.Message)
	}
	if got := h.hop.Messages(); len(got) != 1 {
		t.Fatalf("next hop got %d messages before the release; want only the message", len(got))
	}
	h.release(t)
	kinds := byKind(h.hop.Messages())
	if len(kinds["encrypted"]) != 1 || len(kinds["password"]) != 1 || len(kinds["notice"]) != 2 {
		t.Fatalf("next hop got %d messages, %d password mails, %d notices; want 1, 1 and 2 (scheduled, released)",
			len(kinds["encrypted"]), len(kinds["password"]), len(kinds["notice"]))
	}
	msg, pw := kinds["encrypted"][0], kinds["password"][0]
	for _, m := range []mailtest.Received{msg, pw} {
		if m.From != "taro@example.co.jp" || strings.Join(m.Rcpts, ",") != "hanako@example.com,jiro@example.net" {
			t.Errorf("envelope %s -> %v", m.From, m.Rcpts)
		}
	}
	for _, n := range kinds["notice"] {
		if n.From != "" || strings.Join(n.Rcpts, ",") != "taro@example.co.jp" {
			t.Errorf("notice envelope %q -> %v; want the null sender to the sender", n.From, n.Rcpts)
		}
	}
	if !bytes.HasPrefix(msg.Data, []byte("X-Zipgate: encrypted; id=")) {
		t.Errorf("no trace header:\n%s", msg.Data)
	}
	if bytes.Contains(msg.Data, []byte("JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg==")) {
		t.Fatal("the attachment left in the clear")
	}
	name, data := zipOf(t, msg.Data)
	if want := "attachments_"; !strings.HasPrefix(name, want) || !strings.HasSuffix(name, ".zip") {
		t.Errorf("zip name %q", name)
	}
	password := passwordOf(t, pw.Data)
	names, files := unzip(t, data, password)
	if len(names) != 1 || names[0] != "見積書.pdf" {
		t.Fatalf("zip holds %q, want [見積書.pdf]", names)
	}
	if want := "%PDF-1.4\n%äüöß\n1 0 obj\n<</Type/Catalog>>\nendobj\n"; string(files["見積書.pdf"]) != want {
		t.Errorf("bytes differ: %q", files["見積書.pdf"])
	}
	// The body keeps its text and gets the notice.
	var body string
	for _, e := range leaves(t, msg.Data) {
		if mt, _, _ := e.header.ContentType(); mt == "text/plain" {
			body = string(e.body)
		}
	}
	if !strings.HasPrefix(body, "見積書を送ります。\r\n") || !strings.Contains(body, name) || !strings.Contains(body, "パスワードは別のメールでお送りします") {
		t.Errorf("body:\n%s", body)
	}
	// The password mail threads under the original.
	if !bytes.Contains(pw.Data, []byte("In-Reply-To: <orig-1@example.co.jp>")) {
		t.Errorf("password mail does not thread:\n%s", pw.Data)
	}
	if bytes.Contains(msg.Data, []byte(password)) {
		t.Error("the password is in the message itself")
	}
}

func TestMailWithoutAttachmentsPassesByteForByte(t *testing.T) {
	h := start(t, nil)
	in := "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nno files here\r\n.leading dot\r\n"
	if se := send(t, h.addr, "a@example.com", []string{"b@example.com"}, []byte(in)); se != nil {
		t.Fatalf("got %d %s", se.Code, se.Message)
	}
	got := h.hop.Messages()
	if len(got) != 1 || string(got[0].Data) != in {
		t.Fatalf("next hop got %d messages: %+v", len(got), got)
	}
}

func TestNextHopFaults(t *testing.T) {
	cases := []struct {
		name     string
		fault    mailtest.Fault
		wantCode int
		wantEnh  smtp.EnhancedCode
		wantText string
	}{
		{"deferred", mailtest.Fault{Data: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "disk full"}}, 451, smtp.EnhancedCode{4, 4, 2}, "try again later"},
		{"refused", mailtest.Fault{Data: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "policy says no"}}, 550, smtp.EnhancedCode{5, 7, 1}, "policy says no"},
		{"recipient refused", mailtest.Fault{Rcpt: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}, 550, smtp.EnhancedCode{5, 1, 1}, "no such user"},
		{"dropped", mailtest.Fault{Drop: true}, 451, smtp.EnhancedCode{4, 4, 2}, "try again later"},
	}
	// The next hop dropped the connection after the whole message: it may
	// have queued it. Its job waits for Postfix's retry, which reuses it.
	mayHaveLeft := map[string]bool{"dropped": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil)
			h.hop.SetFault(tc.fault)
			se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(withAttachment))
			if se == nil {
				t.Fatal("got 250")
			}
			if se.Code != tc.wantCode || se.EnhancedCode != tc.wantEnh || !strings.Contains(se.Message, tc.wantText) {
				t.Fatalf("got %d %v %q, want %d %v containing %q", se.Code, se.EnhancedCode, se.Message, tc.wantCode, tc.wantEnh, tc.wantText)
			}
			h.hop.SetFault(mailtest.Fault{})
			h.release(t)
			jobs, _ := h.store.List(context.Background(), "", 10)
			if mayHaveLeft[tc.name] {
				if len(jobs) != 1 || jobs[0].State != store.Pending || len(h.hop.Messages()) != 0 {
					t.Fatalf("%d jobs (%v), %d mails; want one pending job and no password yet", len(jobs), jobs, len(h.hop.Messages()))
				}
				// Postfix's retry: the same password, so one password mail
				// opens whichever zip arrived; the job is scheduled now.
				if se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(withAttachment)); se != nil {
					t.Fatalf("retry: %d %s", se.Code, se.Message)
				}
				h.release(t)
				kinds := byKind(h.hop.Messages())
				if len(kinds["encrypted"]) != 1 || len(kinds["password"]) != 1 {
					t.Fatalf("after the retry: %d messages, %d password mails", len(kinds["encrypted"]), len(kinds["password"]))
				}
				_, data := zipOf(t, kinds["encrypted"][0].Data)
				unzip(t, data, passwordOf(t, kinds["password"][0].Data))
				if after, _ := h.store.List(context.Background(), "", 10); len(after) != 1 || after[0].ID != jobs[0].ID || after[0].State != store.Released {
					t.Fatalf("jobs after the retry: %v", after)
				}
				return
			}
			// The message did not leave: its release job is gone, so no
			// password can ever follow it.
			if len(jobs) != 0 || len(h.hop.Messages()) != 0 {
				t.Fatalf("%d jobs and %d mails left for a message that did not leave", len(jobs), len(h.hop.Messages()))
			}
		})
	}
}

func TestNextHopDownIs451(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	h := start(t, func(c *config.Config) { c.Relay.NextHop = closed })
	se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(withAttachment))
	if se == nil || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 4, 1}) {
		t.Fatalf("got %+v, want 451 4.4.1", se)
	}
}

func TestLimits(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.SMTP.MaxRecipients = 2
		c.SMTP.MaxMessageBytes = 4096
		c.SMTP.MaxMIMEDepth = 3
	})
	se := send(t, h.addr, "a@example.com", []string{"1@example.com", "2@example.com", "3@example.com"}, []byte(withAttachment))
	if se == nil || se.Code != 452 {
		t.Errorf("3 recipients with a limit of 2: got %+v, want 452", se)
	}
	big := withAttachment + strings.Repeat("x", 5000)
	if se := send(t, h.addr, "a@example.com", []string{"1@example.com"}, []byte(big)); se == nil || se.Code != 552 {
		t.Errorf("too big: got %+v, want 552", se)
	}
	if !strings.Contains(h.logs.String(), `"action":"refused","result":"552 5.3.4"`) {
		t.Error("no log line for the message refused as too big")
	}
	var deep strings.Builder
	deep.WriteString("From: a@example.com\r\nMIME-Version: 1.0\r\n")
	for i := range 6 {
		fmt.Fprintf(&deep, "Content-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n--d%d\r\n", i, i)
	}
	deep.WriteString("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n\r\nsecret\r\n")
	se = send(t, h.addr, "a@example.com", []string{"1@example.com"}, []byte(deep.String()))
	if se == nil || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 6, 0}) || !strings.Contains(se.Message, "nested too deeply") {
		t.Errorf("too deep: got %+v, want 554 5.6.0 with a reason", se)
	}
	if n := len(h.hop.Messages()); n != 0 {
		t.Errorf("next hop got %d messages; none of these may leave", n)
	}
}

func TestClientsOutsideAllowedNetworksAreRefusedAtConnect(t *testing.T) {
	h := start(t, func(c *config.Config) { c.SMTP.AllowedNetworks = []string{"192.0.2.0/24"} })
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 200)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "554 5.7.1 ") {
		t.Fatalf("greeting %q, want a 554 5.7.1 refusal", buf[:n])
	}
}

func TestEnvelopeParametersReachTheNextHop(t *testing.T) {
	h := start(t, nil)
	mo := &smtp.MailOptions{Body: smtp.Body8BitMIME, UTF8: true, Return: smtp.DSNReturnHeaders, EnvelopeID: "env-42"}
	ro := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed},
		OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "hanako@example.com"}
	if se := sendOpts(t, h.addr, "太郎@example.co.jp", mo, []string{"hanako@example.com"}, ro, []byte(withAttachment)); se != nil {
		t.Fatalf("got %+v", se)
	}
	m := h.hop.Messages()[0]
	if m.MailOpts.Body != smtp.Body8BitMIME || !m.MailOpts.UTF8 || m.MailOpts.Return != smtp.DSNReturnHeaders || m.MailOpts.EnvelopeID != "env-42" {
		t.Errorf("MAIL parameters lost: %+v", m.MailOpts)
	}
	if r := m.RcptOpts[0]; len(r.Notify) != 2 || r.OriginalRecipient != "hanako@example.com" {
		t.Errorf("RCPT parameters lost: %+v", r)
	}
	if m.From != "太郎@example.co.jp" {
		t.Errorf("sender %q", m.From)
	}
}

// TestOneLogLinePerMessage: the log answers who sent what to whom, and
// never shows the password.
func TestOneLogLinePerMessage(t *testing.T) {
	h := start(t, nil)
	msg := "Received: from mua.example.co.jp (mua [192.0.2.7])\r\n\tby pfx.localdomain (Postfix) with ESMTP id 4dK9xY2mZqz1;\r\n\tFri, 27 Nov 2026 21:00:00 +0900 (JST)\r\n" + withAttachment
	if se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(msg)); se != nil {
		t.Fatal(se)
	}
	h.release(t)
	password := passwordOf(t, byKind(h.hop.Messages())["password"][0].Data)
	var line map[string]any
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"message"`) {
			if line != nil {
				t.Fatal("more than one log line for one message")
			}
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatal("no log line")
	}
	if line["queue_id"] != "4dK9xY2mZqz1" || line["from"] != "taro@example.co.jp" || line["action"] != "encrypt" ||
		line["result"] != "250" {
		t.Errorf("log line %v", line)
	}
	// Which rule decided, for whom, and what became of the password.
	groups, _ := line["groups"].([]any)
	if len(groups) != 1 {
		t.Fatalf("groups %v", line["groups"])
	}
	g := groups[0].(map[string]any)
	if g["rule"] != "(config)" || g["action"] != "encrypt" || g["zip_method"] != "aes256" || g["job"] != line["id"] ||
		g["delivered"] != true || g["password_to"] != "recipient" || g["password_due"] == nil {
		t.Errorf("group %v", g)
	}
	atts, _ := line["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("attachments %v", line["attachments"])
	}
	a := atts[0].(map[string]any)
	// sha256 of the PDF bytes in withAttachment.
	pdf := []byte("%PDF-1.4\n%äüöß\n1 0 obj\n<</Type/Catalog>>\nendobj\n")
	sum := sha256.Sum256(pdf)
	if a["name"] != "見積書.pdf" || a["size"] != float64(len(pdf)) || a["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("attachment %v", a)
	}
	if strings.Contains(h.logs.String(), password) {
		t.Fatal("the password is in the log")
	}
}
