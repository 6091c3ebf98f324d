package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zipgate/zipgate/internal/hold"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
)

const sender = "taro@example.jp"

// said opens the block that shows an approver's reason for rejecting,
// line breaks kept.
const said = `<p class="said"><span class="label">却下の理由 / Reason given</span>`

// newHeld stores a message held for 5 minutes (edit changes it before it
// is stored) and returns the token of its sender's page.
func (f *fixture) newHeld(t *testing.T, id string, edit func(h *store.HeldMessage)) string {
	t.Helper()
	h := &store.HeldMessage{ID: id, Key: []byte("key-" + id), Envelope: []byte(`{}`), Sender: sender,
		Rcpts: []string{"hanako@partner.example", "jiro@partner.example"}, Size: 5000,
		Subject: "見積書の送付 <第2版>", MessageID: "<" + id + "@example.jp>",
		Files: []store.File{
			{Name: "見積書.pdf", Size: 123456},
			{Name: "仕様 & 条件.xlsx", Size: 2048},
		},
		Reasons: []string{store.ReasonHold}, SenderOK: true, HoldUntil: f.now.Add(5 * time.Minute), CreatedAt: f.now}
	if edit != nil {
		edit(h)
	}
	m := &store.Message{ID: id, Key: h.Key, CreatedAt: f.now, UpdatedAt: f.now, Sender: h.Sender, Rcpts: h.Rcpts,
		Subject: h.Subject, Size: h.Size, Result: "held"}
	if err := f.st.HoldMessage(f.ctx, m, h); err != nil {
		t.Fatal(err)
	}
	token, hash, err := release.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetHeldToken(f.ctx, id, hash); err != nil {
		t.Fatal(err)
	}
	return token
}

// approverToken makes the token of approver's page of message id, as the
// hold scheduler does.
func (f *fixture) approverToken(t *testing.T, id, approver string) string {
	t.Helper()
	token, hash, err := release.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.AddApproverToken(f.ctx, id, approver, hash); err != nil {
		t.Fatal(err)
	}
	return token
}

// needsApproval: two approver sets, one of boss or lead, and legal; 24 h
// to decide; no hold of its own.
func needsApproval(h *store.HeldMessage) {
	h.Reasons, h.HoldUntil = []string{store.ReasonApproval}, h.CreatedAt
	h.Approvals = [][]string{{"boss@example.jp", "lead@example.jp"}, {"legal@example.jp"}}
	h.Expires = h.CreatedAt.Add(24 * time.Hour)
}

// guarded: the To/Cc guard holds it until the sender says send.
func guarded(h *store.HeldMessage) {
	h.Reasons, h.HoldUntil, h.SenderOK, h.Visible = []string{store.ReasonGuard}, h.CreatedAt, false, 12
	h.Expires = h.CreatedAt.Add(24 * time.Hour)
}

func (f *fixture) held(t *testing.T, id string) *store.HeldMessage {
	t.Helper()
	h, err := f.st.GetHeld(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (f *fixture) events(t *testing.T, id string) []store.Event {
	t.Helper()
	ev, err := f.st.Events(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// press posts a page's form: path is /h/{token}/send and the like.
func (f *fixture) press(t *testing.T, path, csrf string, extra url.Values) resp {
	t.Helper()
	form := url.Values{}
	for k, v := range extra {
		form[k] = v
	}
	if csrf != "" {
		form.Set("csrf", csrf)
	}
	return f.do(t, "POST", path, form)
}

func has(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
	if t.Failed() {
		t.Logf("%s:\n%s", what, body)
	}
}

func lacks(t *testing.T, what, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			t.Errorf("%s shows %q", what, w)
		}
	}
}

// redirectsTo checks a 303 back to the page at page (a path).
func (f *fixture) redirectsTo(t *testing.T, r resp, from, page string) {
	t.Helper()
	if r.code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303\n%s", r.code, r.body)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	base, _ := url.Parse(f.ts.URL + from)
	if got := base.ResolveReference(loc).Path; got != page {
		t.Errorf("redirect to %q (%q), want %s", got, r.header.Get("Location"), page)
	}
}

func TestHeldPageWhileHeld(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", nil)
	r := f.do(t, "GET", "/h/"+token, nil)
	if r.code != 200 {
		t.Fatalf("status %d\n%s", r.code, r.body)
	}
	has(t, "held page", r.body,
		"<title>zipgate — 送信保留 / Held mail</title>",
		"このメールはまだ送信されていません。", "This mail has not left yet.",
		"10:05 JST まで保留し、その後に送信します（あと約 5 分）。", "It is held until 10:05 JST (in about 5 min), then sent.",
		"見積書の送付 &lt;第2版&gt;", "hanako@partner.example", "jiro@partner.example",
		"見積書.pdf", "120.6 KB", "仕様 &amp; 条件.xlsx", "2.0 KB",
		"受付日時 / Received", "2026-11-27 10:00 JST", "保留期限 / Held until", "2026-11-27 10:05 JST",
		"送信を取り消す / Cancel", "今すぐ送る / Send now",
		`action="`+token+`/cancel"`, `action="`+token+`/send"`,
		`name="csrf" value="`+f.srv.csrf(token)+`"`,
		"宛先を間違えた場合は「送信を取り消す」を押してください。", "If it is addressed wrongly, press Cancel: the mail never leaves.")
	lacks(t, "held page", r.body, "<script", "http://", "https://", "決定の期限", "Decide by", "approval")
}

// Every state and reason, as the sender reads it (Japanese and English),
// and whether the forms are there.
func TestHeldPageStates(t *testing.T) {
	f := setup(t)
	at := f.now
	for _, tc := range []struct {
		name  string
		edit  func(*store.HeldMessage)
		then  func(t *testing.T, id string) // moves it on with the store's own calls
		now   time.Time                     // when the page is looked at (zero: f.now)
		forms []string                      // the buttons offered
		wants []string
		not   []string
	}{
		{name: "guard", edit: guarded, forms: []string{"Cancel", "Send now"}, wants: []string{
			"宛先（To/Cc）に社外のアドレスが 12 件表示されています。Bcc のつもりではありませんでしたか？ このまま送る場合は「今すぐ送る」を、やめる場合は「送信を取り消す」を押してください。",
			"12 outside addresses visible in To/Cc; did you mean Bcc? Press Send now to send it as it is, or Cancel.",
			"2026-11-28 10:00 JST までに「今すぐ送る」が押されない場合、このメールは送信されません。",
			"Unless you press Send now by 2026-11-28 10:00 JST, it is not sent.",
			"決定の期限 / Decide by",
		}},
		{name: "approval", edit: needsApproval, forms: []string{"Cancel"}, wants: []string{
			"承認待ち: boss@example.jp または lead@example.jp", "Waiting for approval by boss@example.jp or lead@example.jp.",
			"承認待ち: legal@example.jp", "Waiting for approval by legal@example.jp.",
			"2026-11-28 10:00 JST までに承認されない場合、このメールは送信されません。", "If nobody approves it by 2026-11-28 10:00 JST, it is not sent.",
			"決定の期限 / Decide by",
		}, not: []string{"Send now", "保留期限"}},
		{name: "approval and hold", edit: func(h *store.HeldMessage) {
			needsApproval(h)
			h.Reasons, h.HoldUntil = []string{store.ReasonHold, store.ReasonApproval}, h.CreatedAt.Add(5*time.Minute)
		}, forms: []string{"Cancel", "Send now"}, wants: []string{
			// not "then sent": the approval is needed too
			"10:05 JST まで保留します（あと約 5 分）。", "It is held until 10:05 JST (in about 5 min).",
			"「今すぐ送る」を押しても、承認者の承認がそろうまでは送信されません。",
			"Send now does not skip the approval: the mail leaves once it is approved.",
		}, not: []string{"その後に送信します", "then sent"}},
		{name: "one approver done", edit: needsApproval, then: func(t *testing.T, id string) {
			if err := f.st.ApproveHeld(f.ctx, id, "lead@example.jp", "page", at.Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, forms: []string{"Cancel"}, wants: []string{
			"lead@example.jp さんが 10:02 JST に承認しました。", "Approved by lead@example.jp at 10:02 JST.",
			"承認待ち: legal@example.jp",
		}, not: []string{"boss@example.jp"}},
		{name: "approval and guard", edit: func(h *store.HeldMessage) {
			needsApproval(h)
			h.Reasons, h.SenderOK, h.Visible = []string{store.ReasonApproval, store.ReasonGuard}, false, 3
		}, forms: []string{"Cancel", "Send now"}, wants: []string{
			"社外のアドレスが 3 件表示されています", "3 outside addresses visible in To/Cc",
			"2026-11-28 10:00 JST までに承認と送信の確認がそろわない場合、このメールは送信されません。",
			"Unless it is approved and confirmed by 2026-11-28 10:00 JST, it is not sent.",
		}},
		{name: "guard confirmed, approval open", edit: func(h *store.HeldMessage) {
			needsApproval(h)
			h.Reasons, h.SenderOK, h.Visible = []string{store.ReasonApproval, store.ReasonGuard}, false, 3
		}, then: func(t *testing.T, id string) {
			if err := f.st.SendHeldNow(f.ctx, id, sender, "page", at); err != nil {
				t.Fatal(err)
			}
		}, forms: []string{"Cancel"}, wants: []string{
			"宛先（To/Cc）に社外のアドレスが 3 件表示されていますが、このまま送ることが確認されました。",
			"3 outside addresses are visible in To/Cc; sending it as it is was confirmed.",
		}, not: []string{"did you mean Bcc"}},
		{name: "hold over", now: at.Add(6 * time.Minute), forms: []string{"Cancel"},
			wants: []string{"まもなく送信されます。", "It will be sent in a moment."}, not: []string{"保留し"}},
		{name: "deferred", then: func(t *testing.T, id string) {
			if err := f.st.ClaimHeld(f.ctx, id, at.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := f.st.MarkHeldRetry(f.ctx, id, at.Add(6*time.Minute), "451 4.3.0 try later"); err != nil {
				t.Fatal(err)
			}
		}, now: at.Add(5 * time.Minute), forms: []string{"Cancel", "Send now"}, wants: []string{
			"前回の送信がうまくいかなかったため、10:06 JST にもう一度送信します。",
			"The last try to send it did not go through; it will be tried again at 10:06 JST.",
		}},
		{name: "sending", then: func(t *testing.T, id string) {
			if err := f.st.ClaimHeld(f.ctx, id, at.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, now: at.Add(5 * time.Minute), wants: []string{
			"このメールを送信しています。取り消しはできません。", "The mail is being sent now; it can no longer be canceled.",
		}},
		{name: "sent", then: func(t *testing.T, id string) {
			if err := f.st.ClaimHeld(f.ctx, id, at.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := f.st.MarkHeldSent(f.ctx, id, at.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, now: at.Add(time.Hour), wants: []string{
			"このメールは 10:05 JST に送信されました。", "The mail was sent at 10:05 JST.",
		}, not: []string{"保留期限"}},
		{name: "canceled by the sender", then: func(t *testing.T, id string) {
			if err := f.st.CancelHeld(f.ctx, id, sender, "page", at.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{
			"このメールの送信は 10:01 JST に取り消されました。このメールは送信されません。",
			"You canceled this mail at 10:01 JST; it will not be sent.",
		}},
		{name: "canceled by an admin", then: func(t *testing.T, id string) {
			if err := f.st.CancelHeld(f.ctx, id, "admin", "cli", at.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{
			"このメールの送信は 10:01 JST に管理者によって取り消されました。", "This mail was canceled at 10:01 JST by an administrator",
		}},
		{name: "rejected", edit: needsApproval, then: func(t *testing.T, id string) {
			if err := f.st.RejectHeld(f.ctx, id, "boss@example.jp", "page", "宛先が違います <B社>", at.Add(3*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{
			"このメールは 10:03 JST に boss@example.jp さんに却下されたため、送信されません。",
			"This mail was rejected by boss@example.jp at 10:03 JST; it will not be sent.",
			said + "宛先が違います &lt;B社&gt;</p>",
		}, not: []string{"決定の期限"}},
		{name: "expired, not approved", edit: needsApproval, then: func(t *testing.T, id string) {
			if err := f.st.ExpireHeld(f.ctx, id, at.Add(24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, now: at.Add(25 * time.Hour), wants: []string{
			"期限（2026-11-28 10:00 JST）までに承認されなかったため、このメールは送信されません。",
			"Nobody approved this mail by 2026-11-28 10:00 JST, so it is not sent.",
		}},
		{name: "expired, not confirmed", edit: guarded, then: func(t *testing.T, id string) {
			if err := f.st.ExpireHeld(f.ctx, id, at.Add(24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, now: at.Add(25 * time.Hour), wants: []string{
			"期限（2026-11-28 10:00 JST）までに「今すぐ送る」が押されなかったため、このメールは送信されません。",
			"Send now was not pressed by 2026-11-28 10:00 JST, so this mail is not sent.",
		}},
		{name: "past its time, not yet expired", edit: guarded, now: at.Add(24 * time.Hour), wants: []string{
			"「今すぐ送る」が押されなかったため、このメールは送信されません。",
		}, not: []string{"did you mean Bcc"}},
		{name: "failed", then: func(t *testing.T, id string) {
			if err := f.st.ClaimHeld(f.ctx, id, at.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := f.st.MarkHeldFailed(f.ctx, id, at.Add(5*time.Minute), "550 5.1.1 <hanako@partner.example>: user unknown"); err != nil {
				t.Fatal(err)
			}
		}, now: at.Add(time.Hour), wants: []string{
			"このメールを送信できませんでした（10:05 JST）。理由: 550 5.1.1 &lt;hanako@partner.example&gt;: user unknown",
			"The mail could not be sent (10:05 JST). Reason: 550 5.1.1 &lt;hanako@partner.example&gt;: user unknown. Please contact your administrator.",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			f.now = at
			token := f.newHeld(t, id, tc.edit)
			if tc.then != nil {
				tc.then(t, id)
			}
			if !tc.now.IsZero() {
				f.now = tc.now
			}
			r := f.do(t, "GET", "/h/"+token, nil)
			if r.code != 200 {
				t.Fatalf("status %d", r.code)
			}
			has(t, tc.name, r.body, tc.wants...)
			lacks(t, tc.name, r.body, tc.not...)
			for _, b := range []string{"Cancel", "Send now"} {
				want := strings.Contains(strings.Join(tc.forms, ","), b)
				if got := strings.Contains(r.body, "/ "+b+"</button>"); got != want {
					t.Errorf("button %s shown: %v, want %v", b, got, want)
				}
			}
			if len(tc.forms) == 0 && strings.Contains(r.body, "<form") {
				t.Error("a form on a page with nothing to do")
			}
		})
	}
}

func TestHeldSendNow(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", nil)
	f.now = f.now.Add(2 * time.Minute)
	r := f.press(t, "/h/"+token+"/send", f.srv.csrf(token), nil)
	f.redirectsTo(t, r, "/h/"+token+"/send", "/h/"+token)
	h := f.held(t, "h1")
	if h.State != store.HeldWaiting || !h.SenderOK || h.HoldUntil.After(f.now) {
		t.Errorf("after Send now: %s, sender ok %v, held until %v; want free to leave at %v", h.State, h.SenderOK, h.HoldUntil, f.now)
	}
	ev := f.events(t, "h1")
	if last := ev[len(ev)-1]; last.Event != "send_now" || last.Actor != sender || last.Via != "page" || !last.At.Equal(f.now) {
		t.Errorf("history ends with %+v", last)
	}
	if f.holdWakes.Load() != 1 || f.wakes.Load() != 0 {
		t.Errorf("hold scheduler woken %d times, password scheduler %d; want 1 and 0", f.holdWakes.Load(), f.wakes.Load())
	}
	r = f.do(t, "GET", "/h/"+token, nil)
	has(t, "page after Send now", r.body, "まもなく送信されます。", "It will be sent in a moment.", "送信を取り消す / Cancel")
	lacks(t, "page after Send now", r.body, "今すぐ送る / Send now", "保留し")
}

// Send now ends the hold, but an approval is still needed, and the page
// says so before and after.
func TestHeldSendNowStillNeedsApproval(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", func(h *store.HeldMessage) {
		needsApproval(h)
		h.Reasons, h.HoldUntil = []string{store.ReasonHold, store.ReasonApproval}, h.CreatedAt.Add(10*time.Minute)
	})
	r := f.press(t, "/h/"+token+"/send", f.srv.csrf(token), nil)
	f.redirectsTo(t, r, "/h/"+token+"/send", "/h/"+token)
	h := f.held(t, "h1")
	if h.HoldUntil.After(f.now) || len(h.Approvals) != 2 || h.State != store.HeldWaiting {
		t.Errorf("after Send now: held until %v, approvals %v, %s", h.HoldUntil, h.Approvals, h.State)
	}
	r = f.do(t, "GET", "/h/"+token, nil)
	has(t, "page", r.body, "承認待ち: boss@example.jp または lead@example.jp", "Waiting for approval by legal@example.jp.")
	lacks(t, "page", r.body, "まもなく送信されます", "in a moment", "保留し")
}

func TestHeldCancel(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", nil)
	f.now = f.now.Add(3 * time.Minute)
	r := f.press(t, "/h/"+token+"/cancel", f.srv.csrf(token), nil)
	f.redirectsTo(t, r, "/h/"+token+"/cancel", "/h/"+token)
	h := f.held(t, "h1")
	if h.State != store.HeldCanceled || h.DecidedBy != sender || !h.FinishedAt.Equal(f.now) {
		t.Errorf("after cancel: %s by %q at %v", h.State, h.DecidedBy, h.FinishedAt)
	}
	ev := f.events(t, "h1")
	if last := ev[len(ev)-1]; last.Event != "canceled" || last.Actor != sender || last.Via != "page" {
		t.Errorf("history ends with %+v", last)
	}
	if f.holdWakes.Load() != 1 {
		t.Errorf("hold scheduler woken %d times, want 1", f.holdWakes.Load())
	}
	r = f.do(t, "GET", "/h/"+token, nil)
	has(t, "canceled page", r.body, "10:03 JST に取り消されました", "You canceled this mail at 10:03 JST")
	lacks(t, "canceled page", r.body, "<form")

	// A second try, either way: 409, why, the page as it is, no change.
	for _, c := range []struct{ action, ja, en string }{
		{"cancel", "このメールの送信は既に取り消されています。", "The mail was already canceled."},
		{"send", "このメールの送信は既に取り消されているため、送信できません。", "The mail was already canceled; it cannot be sent."},
	} {
		r = f.press(t, "/h/"+token+"/"+c.action, f.srv.csrf(token), nil)
		if r.code != http.StatusConflict {
			t.Errorf("%s after cancel: %d, want 409", c.action, r.code)
		}
		has(t, c.action+" after cancel", r.body, c.ja, c.en, "You canceled this mail at 10:03 JST", `href="../`+token+`"`)
	}
	if h2 := f.held(t, "h1"); !reflect.DeepEqual(h, h2) {
		t.Errorf("refused actions changed the message:\n%+v\n%+v", h, h2)
	}
	if f.holdWakes.Load() != 1 {
		t.Error("a refused action woke the scheduler")
	}
}

// Refusals while it is on its way, after it left, after an approver said
// no, and past the time to confirm.
func TestHeldRefusals(t *testing.T) {
	f := setup(t)
	start := f.now
	token := f.newHeld(t, "h1", nil)
	if err := f.st.ClaimHeld(f.ctx, "h1", start.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.now = start.Add(5 * time.Minute)
	r := f.press(t, "/h/"+token+"/cancel", f.srv.csrf(token), nil)
	if r.code != http.StatusConflict {
		t.Errorf("cancel while sending: %d", r.code)
	}
	has(t, "cancel while sending", r.body, "今まさに送信中のため、取り消せませんでした", "it could not be canceled. Reload this page in a moment.")
	r = f.press(t, "/h/"+token+"/send", f.srv.csrf(token), nil)
	has(t, "send while sending", r.body, "このメールは今まさに送信中です。", "The mail is being sent right now.")
	if err := f.st.MarkHeldSent(f.ctx, "h1", f.now); err != nil {
		t.Fatal(err)
	}
	r = f.press(t, "/h/"+token+"/cancel", f.srv.csrf(token), nil)
	if r.code != http.StatusConflict {
		t.Errorf("cancel after sending: %d", r.code)
	}
	has(t, "cancel after sending", r.body, "このメールは既に送信されました。取り消せません。", "The mail was already sent; it cannot be canceled.",
		"The mail was sent at 10:05 JST.")
	lacks(t, "cancel after sending", r.body, "<form")
	r = f.press(t, "/h/"+token+"/send", f.srv.csrf(token), nil)
	has(t, "send after sending", r.body, "このメールは既に送信されています。", "The mail was already sent.")
	if h := f.held(t, "h1"); h.State != store.HeldSent {
		t.Errorf("state %s after refused actions", h.State)
	}

	f.now = start
	rej := f.newHeld(t, "h2", needsApproval)
	if err := f.st.RejectHeld(f.ctx, "h2", "legal@example.jp", "page", "", f.now); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"send", "cancel"} {
		r = f.press(t, "/h/"+rej+"/"+action, f.srv.csrf(rej), nil)
		if r.code != http.StatusConflict {
			t.Errorf("%s after a rejection: %d", action, r.code)
		}
		has(t, action+" after a rejection", r.body, "このメールの送信は既に終わっているため、変更できません",
			"This mail is already finished", "rejected by legal@example.jp")
	}

	late := f.newHeld(t, "h3", guarded)
	f.now = start.Add(24 * time.Hour)
	r = f.press(t, "/h/"+late+"/send", f.srv.csrf(late), nil)
	if r.code != http.StatusConflict {
		t.Errorf("Send now past the time to confirm: %d", r.code)
	}
	has(t, "Send now past its time", r.body, "期限を過ぎたため、送信できません。", "The time to confirm is over")
	if h := f.held(t, "h3"); h.SenderOK || h.State != store.HeldWaiting {
		t.Errorf("a late Send now was taken: sender ok %v, %s", h.SenderOK, h.State)
	}
	if f.holdWakes.Load() != 0 {
		t.Errorf("refusals woke the scheduler %d times", f.holdWakes.Load())
	}
}

func TestApproverPage(t *testing.T) {
	f := setup(t)
	senderToken := f.newHeld(t, "h1", needsApproval)
	boss := f.approverToken(t, "h1", "boss@example.jp")
	r := f.do(t, "GET", "/a/"+boss, nil)
	if r.code != 200 {
		t.Fatalf("status %d\n%s", r.code, r.body)
	}
	has(t, "approver page", r.body,
		"<title>zipgate — 承認依頼 / Approval request</title>",
		"taro@example.jp さんのメールが、あなたの承認を待っています。", "This mail from taro@example.jp waits for your approval.",
		"送信者 / From", "<dd>taro@example.jp</dd>",
		"見積書の送付 &lt;第2版&gt;", "hanako@partner.example", "jiro@partner.example", "見積書.pdf", "120.6 KB",
		"承認待ち: legal@example.jp", "Waiting for approval by legal@example.jp.",
		"決定の期限 / Decide by", "2026-11-28 10:00 JST",
		"承認する / Approve", "却下する / Reject", `<textarea id="reason" name="reason" maxlength="500"`,
		"Reason for rejecting (optional, up to 500 characters; the sender is told)",
		`action="`+boss+`/approve"`, `action="`+boss+`/reject"`, `name="csrf" value="`+f.srv.csrf(boss)+`"`)
	// Nothing that leads to the sender's page or tells its token.
	lacks(t, "approver page", r.body, senderToken, f.srv.csrf(senderToken), "/h/", "../", "<a ", "今すぐ送る",
		"送信を取り消す", "<script", "http://", "https://")

	f.now = f.now.Add(7 * time.Minute)
	r = f.press(t, "/a/"+boss+"/approve", f.srv.csrf(boss), nil)
	f.redirectsTo(t, r, "/a/"+boss+"/approve", "/a/"+boss)
	h := f.held(t, "h1")
	if len(h.Approvals) != 1 || h.Approvals[0][0] != "legal@example.jp" || len(h.Approved) != 1 ||
		h.Approved[0].By != "boss@example.jp" || h.Approved[0].Via != "page" || !h.Approved[0].At.Equal(f.now) {
		t.Errorf("after approving: still %v, approved %+v", h.Approvals, h.Approved)
	}
	ev := f.events(t, "h1")
	if last := ev[len(ev)-1]; last.Event != "approved" || last.Actor != "boss@example.jp" || last.Via != "page" {
		t.Errorf("history ends with %+v", last)
	}
	if f.holdWakes.Load() != 1 {
		t.Errorf("hold scheduler woken %d times, want 1", f.holdWakes.Load())
	}
	r = f.do(t, "GET", "/a/"+boss, nil)
	has(t, "page after approving", r.body, "あなたは 10:07 JST にこのメールを承認しました。", "You approved this mail at 10:07 JST.",
		"承認待ち: legal@example.jp")
	lacks(t, "page after approving", r.body, "<form")

	// Again: 409, saying it is done.
	r = f.press(t, "/a/"+boss+"/approve", f.srv.csrf(boss), nil)
	if r.code != http.StatusConflict {
		t.Errorf("second approval: %d", r.code)
	}
	has(t, "second approval", r.body, "このメールは、あなたが 10:07 JST に承認済みです。", "You already approved this mail at 10:07 JST.")

	// A colleague of the same set: no longer needed, said politely.
	lead := f.approverToken(t, "h1", "lead@example.jp")
	r = f.do(t, "GET", "/a/"+lead, nil)
	has(t, "colleague's page", r.body, "同じ承認グループの方が既に承認したため、あなたの判断は不要になりました",
		"Someone in your approver group already approved this mail, so your decision is no longer needed.",
		"boss@example.jp さんが 10:07 JST に承認しました。")
	lacks(t, "colleague's page", r.body, "<form")
	r = f.press(t, "/a/"+lead+"/approve", f.srv.csrf(lead), nil)
	if r.code != http.StatusConflict {
		t.Errorf("colleague approves: %d", r.code)
	}
	has(t, "colleague approves", r.body, "ご確認ありがとうございます。", "Thank you for looking.")
	r = f.press(t, "/a/"+lead+"/reject", f.srv.csrf(lead), url.Values{"reason": {"待って"}})
	if r.code != http.StatusConflict {
		t.Errorf("colleague rejects: %d", r.code)
	}
	has(t, "colleague rejects", r.body, "送信者（taro@example.jp）に直接ご連絡ください", "please contact the sender (taro@example.jp) directly")
	if h2 := f.held(t, "h1"); !reflect.DeepEqual(h, h2) {
		t.Errorf("the colleague's refused decisions changed the message")
	}

	// The last set approves: nothing waits any more.
	legal := f.approverToken(t, "h1", "legal@example.jp")
	f.redirectsTo(t, f.press(t, "/a/"+legal+"/approve", f.srv.csrf(legal), nil), "/a/"+legal+"/approve", "/a/"+legal)
	if h := f.held(t, "h1"); len(h.Approvals) != 0 || h.Waiting() {
		t.Errorf("after every set approved: %v", h.Approvals)
	}
	has(t, "sender's page, approved", f.do(t, "GET", "/h/"+senderToken, nil).body, "まもなく送信されます。",
		"Approved by legal@example.jp at 10:07 JST.")
}

func TestApproverReject(t *testing.T) {
	f := setup(t)
	senderToken := f.newHeld(t, "h1", needsApproval)
	legal := f.approverToken(t, "h1", "legal@example.jp")
	boss := f.approverToken(t, "h1", "boss@example.jp")
	f.now = f.now.Add(4 * time.Minute)
	r := f.press(t, "/a/"+legal+"/reject", f.srv.csrf(legal), url.Values{"reason": {"  宛先が違います。\r\nB社ではなく <A社> です。 "}})
	f.redirectsTo(t, r, "/a/"+legal+"/reject", "/a/"+legal)
	h := f.held(t, "h1")
	want := "宛先が違います。\nB社ではなく <A社> です。"
	if h.State != store.HeldRejected || h.DecidedBy != "legal@example.jp" || h.Reason != want || !h.FinishedAt.Equal(f.now) {
		t.Errorf("after reject: %s by %q, reason %q at %v", h.State, h.DecidedBy, h.Reason, h.FinishedAt)
	}
	ev := f.events(t, "h1")
	if last := ev[len(ev)-1]; last.Event != "rejected" || last.Actor != "legal@example.jp" || last.Via != "page" || last.Detail != want {
		t.Errorf("history ends with %+v", last)
	}
	if f.holdWakes.Load() != 1 {
		t.Errorf("hold scheduler woken %d times, want 1", f.holdWakes.Load())
	}
	escaped := "宛先が違います。\nB社ではなく &lt;A社&gt; です。"
	has(t, "rejecter's page", f.do(t, "GET", "/a/"+legal, nil).body,
		"あなたは 10:04 JST にこのメールを却下しました。このメールは送信されません。",
		"You rejected this mail at 10:04 JST; it will not be sent.", said+escaped+"</p>")
	has(t, "other approver's page", f.do(t, "GET", "/a/"+boss, nil).body,
		"このメールは 10:04 JST に legal@example.jp さんに却下されたため、送信されません。",
		"This mail was rejected by legal@example.jp at 10:04 JST")
	has(t, "sender's page", f.do(t, "GET", "/h/"+senderToken, nil).body,
		"legal@example.jp さんに却下されたため", "rejected by legal@example.jp", said+escaped+"</p>")

	// A second decision: 409 with who decided first.
	r = f.press(t, "/a/"+boss+"/approve", f.srv.csrf(boss), nil)
	if r.code != http.StatusConflict {
		t.Errorf("approve after a rejection: %d", r.code)
	}
	has(t, "approve after a rejection", r.body, "このメールは、既に legal@example.jp さんが却下しました。",
		"legal@example.jp already rejected this mail.")
	r = f.press(t, "/a/"+legal+"/reject", f.srv.csrf(legal), url.Values{"reason": {"again"}})
	if r.code != http.StatusConflict {
		t.Errorf("second reject: %d", r.code)
	}
	has(t, "second reject", r.body, "このメールは、あなたが既に却下しています。", "You already rejected this mail.")
	if h2 := f.held(t, "h1"); !reflect.DeepEqual(h, h2) {
		t.Errorf("second decisions changed the message:\n%+v\n%+v", h, h2)
	}
	if f.holdWakes.Load() != 1 {
		t.Error("refused decisions woke the scheduler")
	}
}

// After the sender canceled or it left, an approver has nothing to
// decide; past the time to decide, nothing is taken.
func TestApproverAfterTheEnd(t *testing.T) {
	f := setup(t)
	start := f.now
	f.newHeld(t, "h1", needsApproval)
	boss := f.approverToken(t, "h1", "boss@example.jp")
	if err := f.st.CancelHeld(f.ctx, "h1", sender, "page", start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	has(t, "page after cancel", f.do(t, "GET", "/a/"+boss, nil).body,
		"送信者がこのメールを 10:01 JST に取り消しました。", "The sender canceled this mail at 10:01 JST; it will not be sent.")
	r := f.press(t, "/a/"+boss+"/approve", f.srv.csrf(boss), nil)
	if r.code != http.StatusConflict {
		t.Errorf("approve after cancel: %d", r.code)
	}
	has(t, "approve after cancel", r.body, "このメールは取り消されたため、承認や却下の必要はありません。", "The mail was canceled; there is nothing to decide.")

	f.newHeld(t, "h2", needsApproval)
	legal := f.approverToken(t, "h2", "legal@example.jp")
	f.now = start.Add(24 * time.Hour)
	r = f.do(t, "GET", "/a/"+legal, nil)
	has(t, "page past its time", r.body, "期限（2026-11-28 10:00 JST）までに承認されなかったため、このメールは送信されません。")
	lacks(t, "page past its time", r.body, "<form")
	for _, action := range []string{"approve", "reject"} {
		r = f.press(t, "/a/"+legal+"/"+action, f.srv.csrf(legal), nil)
		if r.code != http.StatusConflict {
			t.Errorf("%s past the time to decide: %d", action, r.code)
		}
		has(t, action+" past its time", r.body, "決定の期限（2026-11-28 10:00 JST）を過ぎたため、承認も却下もできません。",
			"The time to decide (until 2026-11-28 10:00 JST) is over")
	}
	if h := f.held(t, "h2"); h.State != store.HeldWaiting || len(h.Approved) != 0 {
		t.Errorf("a late decision was taken: %s, approved %v", h.State, h.Approved)
	}
	if err := f.st.ExpireHeld(f.ctx, "h2", f.now); err != nil {
		t.Fatal(err)
	}
	r = f.press(t, "/a/"+legal+"/approve", f.srv.csrf(legal), nil)
	has(t, "approve when expired", r.body, "決定の期限（2026-11-28 10:00 JST）を過ぎたため、このメールは送信されません。")
	if f.holdWakes.Load() != 0 {
		t.Error("refused decisions woke the scheduler")
	}
}

// A reason is at most 500 characters (counted as the browser counts
// them: a line break is one); a longer one is refused and given back to
// be shortened, never cut.
func TestRejectReasonLimit(t *testing.T) {
	f := setup(t)
	f.newHeld(t, "h1", needsApproval)
	boss := f.approverToken(t, "h1", "boss@example.jp")

	long := strings.Repeat("あ", 250) + "\r\n" + strings.Repeat("い", 250) // 501 with the break
	r := f.press(t, "/a/"+boss+"/reject", f.srv.csrf(boss), url.Values{"reason": {long}})
	if r.code != http.StatusBadRequest {
		t.Fatalf("501 characters: %d, want 400", r.code)
	}
	has(t, "501 characters", r.body, "却下の理由が長すぎます（501 文字。500 文字まで）。", "The reason is too long (501 characters; at most 500).",
		"Nothing was changed yet.", ">"+strings.Repeat("あ", 250)+"\n"+strings.Repeat("い", 250)+"</textarea>", "却下する / Reject")
	if h := f.held(t, "h1"); h.State != store.HeldWaiting {
		t.Fatalf("a refused reason rejected the message: %s", h.State)
	}
	if f.holdWakes.Load() != 0 {
		t.Error("a refused reason woke the scheduler")
	}

	// 500 Japanese characters are 4,500 bytes in the form: over the 4 KiB
	// of the other forms, within the reject's limit.
	ok := strings.Repeat("う", 500)
	if n := len(url.Values{"reason": {ok}}.Encode()); n <= maxBody {
		t.Fatalf("the form is %d bytes; the test needs more than %d", n, maxBody)
	}
	r = f.press(t, "/a/"+boss+"/reject", f.srv.csrf(boss), url.Values{"reason": {ok}})
	f.redirectsTo(t, r, "/a/"+boss+"/reject", "/a/"+boss)
	if h := f.held(t, "h1"); h.State != store.HeldRejected || h.Reason != ok || utf8.RuneCountInString(h.Reason) != 500 {
		t.Errorf("500 characters: %s, reason of %d characters", h.State, utf8.RuneCountInString(h.Reason))
	}

	// Bodies beyond the reject's limit are cut off by the server: 413.
	f.newHeld(t, "h2", needsApproval)
	legal := f.approverToken(t, "h2", "legal@example.jp")
	r = f.press(t, "/a/"+legal+"/reject", f.srv.csrf(legal), url.Values{"reason": {strings.Repeat("x", maxReasonBody)}})
	if r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d bytes: %d, want 413", maxReasonBody, r.code)
	}
	// and the other forms keep their 4 KiB.
	r = f.press(t, "/a/"+legal+"/approve", f.srv.csrf(legal), url.Values{"pad": {strings.Repeat("x", 8<<10)}})
	if r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("8 KiB approve form: %d, want 413", r.code)
	}
	if h := f.held(t, "h2"); h.State != store.HeldWaiting || len(h.Approved) != 0 {
		t.Errorf("oversized forms changed the message: %s", h.State)
	}
}

func TestCleanReason(t *testing.T) {
	for in, want := range map[string]string{
		"  理由\r\n二行目\r三行目 \t": "理由\n二行目\n三行目",
		"a\x00b\x1bc\x7fd":    "abcd",
		"tab\tkept":           "tab\tkept",
		"bad \xff utf8":       "bad \uFFFD utf8",
		"\r\n\r\n":            "",
	} {
		if got := cleanReason(in); got != want {
			t.Errorf("cleanReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeldCSRF(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", guarded)
	f.newHeld(t, "h2", needsApproval)
	boss := f.approverToken(t, "h2", "boss@example.jp")
	other, _, _ := release.NewToken()
	before1, before2 := f.held(t, "h1"), f.held(t, "h2")
	for _, c := range []struct{ path, own string }{
		{"/h/" + token + "/send", token},
		{"/h/" + token + "/cancel", token},
		{"/a/" + boss + "/approve", boss},
		{"/a/" + boss + "/reject", boss},
	} {
		for name, csrf := range map[string]string{
			"missing":           "",
			"garbage":           "x",
			"the token":         c.own,
			"another token's":   f.srv.csrf(other),
			"the other page's":  f.srv.csrf(map[string]string{token: boss, boss: token}[c.own]),
			"another key's":     New(f.st, nil, make([]byte, 32), nil).csrf(c.own),
			"one character off": f.srv.csrf(c.own) + "A",
		} {
			r := f.press(t, c.path, csrf, url.Values{"reason": {"no"}})
			if r.code != http.StatusForbidden || !strings.Contains(r.body, "nothing was done") {
				t.Errorf("%s, %s CSRF value: %d, want 403\n%s", c.path, name, r.code, r.body)
			}
		}
		// Only the body counts, not the query.
		if r := f.do(t, "POST", c.path+"?csrf="+f.srv.csrf(c.own), url.Values{}); r.code != http.StatusForbidden {
			t.Errorf("%s with the CSRF value in the query: %d, want 403", c.path, r.code)
		}
	}
	if h := f.held(t, "h1"); !reflect.DeepEqual(h, before1) {
		t.Error("the sender's message changed without a valid CSRF value")
	}
	if h := f.held(t, "h2"); !reflect.DeepEqual(h, before2) {
		t.Error("the approver's message changed without a valid CSRF value")
	}
	if f.holdWakes.Load() != 0 {
		t.Error("scheduler woken without a valid CSRF value")
	}
}

// An approver's token opens its own message and nothing else: not
// another message, not the sender's page of the same one.
func TestApproverTokenOpensOnlyItsMessage(t *testing.T) {
	f := setup(t)
	senderA := f.newHeld(t, "A", func(h *store.HeldMessage) { needsApproval(h); h.Subject = "Message A" })
	f.newHeld(t, "B", func(h *store.HeldMessage) { needsApproval(h); h.Subject = "Message B" })
	bossA := f.approverToken(t, "A", "boss@example.jp")
	bossB := f.approverToken(t, "B", "boss@example.jp")
	r := f.do(t, "GET", "/a/"+bossA, nil)
	has(t, "A's approver page", r.body, "Message A")
	lacks(t, "A's approver page", r.body, "Message B", bossB, f.srv.csrf(bossB))

	// A's form sent to B's page: refused.
	if r := f.press(t, "/a/"+bossB+"/approve", f.srv.csrf(bossA), nil); r.code != http.StatusForbidden {
		t.Errorf("A's CSRF value on B: %d, want 403", r.code)
	}
	f.redirectsTo(t, f.press(t, "/a/"+bossA+"/approve", f.srv.csrf(bossA), nil), "/a/"+bossA+"/approve", "/a/"+bossA)
	if a, b := f.held(t, "A"), f.held(t, "B"); len(a.Approved) != 1 || len(b.Approved) != 0 {
		t.Errorf("approving A: A approved by %v, B by %v", a.Approved, b.Approved)
	}
	// The approver's token is not a sender's token, nor the reverse.
	ref := f.do(t, "GET", "/nope", nil)
	for name, r := range map[string]resp{
		"approver token on the sender's page": f.do(t, "GET", "/h/"+bossA, nil),
		"approver token, cancel":              f.press(t, "/h/"+bossA+"/cancel", f.srv.csrf(bossA), nil),
		"approver token, send now":            f.press(t, "/h/"+bossA+"/send", f.srv.csrf(bossA), nil),
		"sender token on the approver's page": f.do(t, "GET", "/a/"+senderA, nil),
		"sender token, approve":               f.press(t, "/a/"+senderA+"/approve", f.srv.csrf(senderA), nil),
		"sender token, reject":                f.press(t, "/a/"+senderA+"/reject", f.srv.csrf(senderA), nil),
		"held token on the password page":     f.do(t, "GET", "/s/"+senderA, nil),
	} {
		if r.code != 404 || r.body != ref.body || !sameHeaders(r.header, ref.header) {
			t.Errorf("%s: %d\n%s", name, r.code, r.body)
		}
	}
	if a := f.held(t, "A"); a.State != store.HeldWaiting || len(a.Approved) != 1 {
		t.Errorf("A after tokens used on the wrong pages: %s, %v", a.State, a.Approved)
	}
}

func TestHeldNotFound(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", needsApproval)
	boss := f.approverToken(t, "h1", "boss@example.jp")
	_, jobToken := f.newJob(t, "job1")
	unknown, _, _ := release.NewToken()
	ref := f.do(t, "GET", "/nope", nil)
	cases := map[string]resp{
		"password token on the held page":     f.do(t, "GET", "/h/"+jobToken, nil),
		"password token on the approver page": f.do(t, "GET", "/a/"+jobToken, nil),
		"trailing slash":                      f.do(t, "GET", "/h/"+token+"/", nil),
		"unknown action":                      f.do(t, "POST", "/h/"+token+"/release", url.Values{}),
		"unknown approver action":             f.do(t, "POST", "/a/"+boss+"/cancel", url.Values{}),
	}
	for _, p := range []string{"h", "a"} {
		cases[p+": unknown token"] = f.do(t, "GET", "/"+p+"/"+unknown, nil)
		cases[p+": malformed token"] = f.do(t, "GET", "/"+p+"/not.a.token!", nil)
		cases[p+": short token"] = f.do(t, "GET", "/"+p+"/abc", nil)
		cases[p+": long token"] = f.do(t, "GET", "/"+p+"/"+strings.Repeat("A", 300), nil)
		cases[p+": token with a slash"] = f.do(t, "GET", "/"+p+"/"+token[:20]+"%2F"+token[20:], nil)
		cases[p+": no token"] = f.do(t, "GET", "/"+p+"/", nil)
	}
	for _, path := range []string{"h/%s/send", "h/%s/cancel", "a/%s/approve", "a/%s/reject"} {
		cases[path+", unknown token"] = f.press(t, "/"+strings.Replace(path, "%s", unknown, 1), f.srv.csrf(unknown), nil)
		cases[path+", malformed token"] = f.press(t, "/"+strings.Replace(path, "%s", "x", 1), f.srv.csrf("x"), nil)
	}
	for name, r := range cases {
		if r.code != 404 || r.body != ref.body || !sameHeaders(r.header, ref.header) {
			t.Errorf("%s: %d %v\n%s\nwant the page of GET /nope", name, r.code, r.header, r.body)
		}
	}
}

// GET and HEAD, however often, change nothing and wake nobody: link
// scanners open these pages too.
func TestHeldGetChangesNothing(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", func(h *store.HeldMessage) {
		needsApproval(h)
		h.Reasons, h.SenderOK, h.Visible = []string{store.ReasonApproval, store.ReasonGuard}, false, 12
	})
	boss := f.approverToken(t, "h1", "boss@example.jp")
	before, evBefore := f.held(t, "h1"), f.events(t, "h1")
	for range 3 {
		for _, p := range []string{"/h/" + token, "/a/" + boss} {
			for _, m := range []string{"GET", "HEAD"} {
				if r := f.do(t, m, p, nil); r.code != 200 {
					t.Errorf("%s %s: %d", m, p, r.code)
				}
			}
		}
	}
	if after := f.held(t, "h1"); !reflect.DeepEqual(before, after) {
		t.Errorf("GET changed the message:\n%+v\n%+v", before, after)
	}
	if ev := f.events(t, "h1"); len(ev) != len(evBefore) {
		t.Errorf("GET added history: %+v", ev[len(evBefore):])
	}
	if f.holdWakes.Load() != 0 || f.wakes.Load() != 0 {
		t.Error("GET woke a scheduler")
	}
}

func TestHeldMethodsAndHeaders(t *testing.T) {
	f := setup(t)
	token := f.newHeld(t, "h1", needsApproval)
	boss := f.approverToken(t, "h1", "boss@example.jp")
	for _, c := range []struct{ method, path string }{
		{"POST", "/h/" + token},
		{"PUT", "/a/" + boss},
		{"GET", "/h/" + token + "/send"},
		{"GET", "/h/" + token + "/cancel"},
		{"GET", "/a/" + boss + "/approve"},
		{"GET", "/a/" + boss + "/reject"},
	} {
		if r := f.do(t, c.method, c.path, nil); r.code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", c.method, c.path, r.code)
		}
	}
	for _, path := range []string{"/h/" + token, "/a/" + boss} {
		r := f.do(t, "GET", path, nil)
		for k, v := range map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Cache-Control":           "no-store",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
		} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
}

// What senders, approvers and mail clients wrote is text on the pages,
// never markup.
func TestHeldEscaping(t *testing.T) {
	f := setup(t)
	const evil = `<script>alert("x")</script>`
	token := f.newHeld(t, "h1", func(h *store.HeldMessage) {
		needsApproval(h)
		h.Subject = "件名 " + evil
		h.Sender = `"<b>taro</b>"@example.jp`
		h.Rcpts = []string{`"<i>hanako</i>"@partner.example`}
		h.Files = []store.File{{Name: `<img src=x onerror=alert(1)>.pdf`, Size: 10}}
		h.Approvals = [][]string{{`"<u>boss</u>"@example.jp`}}
	})
	boss := f.approverToken(t, "h1", `"<u>boss</u>"@example.jp`)
	pages := map[string]string{
		"sender's page":   f.do(t, "GET", "/h/"+token, nil).body,
		"approver's page": f.do(t, "GET", "/a/"+boss, nil).body,
	}
	long := strings.Repeat("x", 495) + evil
	pages["a long reason given back"] = f.press(t, "/a/"+boss+"/reject", f.srv.csrf(boss), url.Values{"reason": {long}}).body
	r := f.press(t, "/a/"+boss+"/reject", f.srv.csrf(boss), url.Values{"reason": {"理由 " + evil}})
	f.redirectsTo(t, r, "/a/"+boss+"/reject", "/a/"+boss)
	pages["approver's page, rejected"] = f.do(t, "GET", "/a/"+boss, nil).body
	pages["sender's page, rejected"] = f.do(t, "GET", "/h/"+token, nil).body
	for name, body := range pages {
		lacks(t, name, body, "<script", "<b>", "<i>", "<u>", "<img")
	}
	has(t, "sender's page", pages["sender's page"], "件名 &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
		"&lt;i&gt;hanako&lt;/i&gt;", "&lt;img src=x onerror=alert(1)&gt;.pdf", "&lt;u&gt;boss&lt;/u&gt;")
	has(t, "approver's page", pages["approver's page"], "&lt;b&gt;taro&lt;/b&gt;", "件名 &lt;script&gt;")
	has(t, "a long reason given back", pages["a long reason given back"], "xxx&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</textarea>")
	has(t, "sender's page, rejected", pages["sender's page, rejected"], said+"理由 &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>")
}

// The approver's page in the states an approver meets after deciding or
// while others decide; what the next hop said is not theirs to read.
func TestApproverPageStates(t *testing.T) {
	f := setup(t)
	at := f.now
	// approved: every set has said yes, so the message may leave.
	approved := func(t *testing.T, id string) {
		for _, a := range []string{"boss@example.jp", "legal@example.jp"} {
			if err := f.st.ApproveHeld(f.ctx, id, a, "page", at.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	claimed := func(t *testing.T, id string) {
		approved(t, id)
		if err := f.st.ClaimHeld(f.ctx, id, at.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*store.HeldMessage)
		then  func(t *testing.T, id string)
		wants []string
		not   []string
	}{
		{name: "guard open", edit: func(h *store.HeldMessage) {
			needsApproval(h)
			h.Reasons, h.SenderOK, h.Visible = []string{store.ReasonApproval, store.ReasonGuard}, false, 12
		}, wants: []string{
			"宛先（To/Cc）に社外のアドレスが 12 件表示されているため、送信者の確認を待っています。",
			"12 outside addresses are visible in To/Cc; it waits for the sender to confirm.",
			"承認する / Approve",
		}, not: []string{"did you mean Bcc", "今すぐ送る"}},
		{name: "guard open, approved", edit: func(h *store.HeldMessage) {
			needsApproval(h)
			h.Reasons, h.SenderOK, h.Visible = []string{store.ReasonApproval, store.ReasonGuard}, false, 12
		}, then: approved, wants: []string{
			"あなたは 10:01 JST にこのメールを承認しました。",
			"2026-11-28 10:00 JST までに送信者が確認しない場合、このメールは送信されません。",
			"Unless the sender confirms it by 2026-11-28 10:00 JST, it is not sent.",
		}, not: []string{"<form"}},
		{name: "held after approval", edit: func(h *store.HeldMessage) {
			needsApproval(h)
			h.Reasons, h.HoldUntil = []string{store.ReasonHold, store.ReasonApproval}, h.CreatedAt.Add(5*time.Minute)
		}, then: approved, wants: []string{
			"10:05 JST まで保留し、その後に送信します", "It is held until 10:05 JST (in about 5 min), then sent.",
		}, not: []string{"<form"}},
		{name: "sending", edit: needsApproval, then: claimed, wants: []string{
			"このメールを送信しています。", "The mail is being sent now.",
		}, not: []string{"<form"}},
		{name: "sent", edit: needsApproval, then: func(t *testing.T, id string) {
			claimed(t, id)
			if err := f.st.MarkHeldSent(f.ctx, id, at.Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{"このメールは 10:02 JST に送信されました。", "The mail was sent at 10:02 JST."}, not: []string{"<form"}},
		{name: "failed", edit: needsApproval, then: func(t *testing.T, id string) {
			claimed(t, id)
			if err := f.st.MarkHeldFailed(f.ctx, id, at.Add(2*time.Minute), "550 5.1.1 secret-detail"); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{"このメールは送信できませんでした（10:02 JST）。", "The mail could not be sent (10:02 JST)."},
			not: []string{"secret-detail", "<form"}},
		{name: "canceled by an admin", edit: needsApproval, then: func(t *testing.T, id string) {
			if err := f.st.CancelHeld(f.ctx, id, "admin", "cli", at.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{"このメールは 10:01 JST に管理者によって取り消されました。", "This mail was canceled at 10:01 JST by an administrator"},
			not: []string{"<form"}},
		{name: "expired", edit: needsApproval, then: func(t *testing.T, id string) {
			if err := f.st.ExpireHeld(f.ctx, id, at.Add(24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, wants: []string{"期限（2026-11-28 10:00 JST）までに承認されなかったため、このメールは送信されません。",
			"Nobody approved this mail by 2026-11-28 10:00 JST, so it is not sent."}, not: []string{"<form"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "a-" + strings.ReplaceAll(tc.name, " ", "-")
			f.newHeld(t, id, tc.edit)
			boss := f.approverToken(t, id, "boss@example.jp")
			if tc.then != nil {
				tc.then(t, id)
			}
			r := f.do(t, "GET", "/a/"+boss, nil)
			if r.code != 200 {
				t.Fatalf("status %d", r.code)
			}
			has(t, tc.name, r.body, tc.wants...)
			lacks(t, tc.name, r.body, tc.not...)
		})
	}
}

// The links in the hold scheduler's mails open these pages: the sender's
// notice the sender's page, each approval request that approver's page.
func TestLinksFromTheHoldScheduler(t *testing.T) {
	f := setup(t)
	hop := mailtest.StartNextHop(t)
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := hold.NewDir(filepath.Join(t.TempDir(), "held"))
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(context.Context, *relay.Envelope, *spool.File) error {
		t.Error("a message was delivered while held")
		return nil
	}
	sch := hold.New(f.st, dir, deliver, &relay.Client{Addr: hop.Addr, HeloName: "zipgate.test", Timeout: 10 * time.Second},
		tmpl, slog.New(slog.NewTextHandler(tlog{t}, nil)))
	sch.Now = func() time.Time { return f.now }
	sch.BaseURL, sch.Hostname = f.ts.URL+"/", "zipgate.test"
	f.newHeld(t, "h1", func(h *store.HeldMessage) {
		needsApproval(h)
		h.Approvals = [][]string{{"boss@example.jp"}}
	})
	if _, err := sch.RunOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{} // recipient: link
	link := regexp.MustCompile(regexp.QuoteMeta(f.ts.URL) + `/[ha]/[A-Za-z0-9_-]+`)
	for _, m := range hop.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, msg.Body))
		if err != nil {
			t.Fatalf("%s: %v", msg.Header.Get("Content-Transfer-Encoding"), err)
		}
		links[strings.Join(m.Rcpts, ",")] = link.FindString(string(body))
	}
	if len(links) != 2 || !strings.Contains(links[sender], "/h/") || !strings.Contains(links["boss@example.jp"], "/a/") {
		t.Fatalf("links in the mails: %v", links)
	}
	get := func(u string) resp {
		t.Helper()
		return f.do(t, "GET", strings.TrimPrefix(u, f.ts.URL), nil)
	}
	has(t, "sender's page from the notice", get(links[sender]).body, "承認待ち: boss@example.jp", "送信を取り消す / Cancel")
	boss := strings.TrimPrefix(links["boss@example.jp"], f.ts.URL+"/a/")
	has(t, "approver's page from the request", get(links["boss@example.jp"]).body,
		"taro@example.jp さんのメールが、あなたの承認を待っています。", `name="csrf" value="`+f.srv.csrf(boss)+`"`)
	f.redirectsTo(t, f.press(t, "/a/"+boss+"/approve", f.srv.csrf(boss), nil), "/a/"+boss+"/approve", "/a/"+boss)
	if h := f.held(t, "h1"); len(h.Approvals) != 0 || len(h.Approved) != 1 || h.Approved[0].By != "boss@example.jp" {
		t.Errorf("after approving from the mailed link: %v, %+v", h.Approvals, h.Approved)
	}
}
