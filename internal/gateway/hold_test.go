package gateway_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// sentCopies lists what the next hop got that is not a notice to someone.
func sentCopies(h *harness) []mailtest.Received {
	var out []mailtest.Received
	for kind, ms := range byKind(h.hop.Messages()) {
		if kind != "notice" {
			out = append(out, ms...)
		}
	}
	return out
}

// noticesTo returns the text of the notices an address got.
func noticesTo(t *testing.T, h *harness, addr string) []string {
	t.Helper()
	var out []string
	for _, m := range byKind(h.hop.Messages())["notice"] {
		if rcptsOf(m) == addr {
			out = append(out, text(t, m.Data))
		}
	}
	return out
}

func heldOne(t *testing.T, h *harness) *store.HeldMessage {
	t.Helper()
	list, err := h.store.ListHeld(context.Background(), "", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("held messages %v, %v; want one", list, err)
	}
	return list[0]
}

var linkRe = regexp.MustCompile(`https://zipgate\.example\.jp/([ha])/([A-Za-z0-9_-]{40,})`)

// A hold keeps the whole message back, the sender can see it on their
// page, and it leaves once, on its normal path, when the hold is over.
func TestHoldThenSend(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "partner.example", Hold: dur(5 * time.Minute)})
	rcpts := []string{"jiro@example.co.jp", "bob@partner.example"}
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatalf("got %d %s, want 250 once it is held", se.Code, se.Message)
	}
	hm := heldOne(t, h)
	if hm.State != store.HeldWaiting || hm.Reasons[0] != store.ReasonHold || len(hm.Files) != 1 || hm.Files[0].Name != "見積書.pdf" {
		t.Fatalf("held %+v", hm)
	}
	if !h.held.Has(hm.ID) {
		t.Fatal("the held message is not on disk")
	}
	h.runHolds(t)
	if n := len(sentCopies(h)); n != 0 {
		t.Fatalf("%d mails left during the hold (the colleague's copy too must wait)", n)
	}
	notes := noticesTo(t, h, "taro@example.co.jp")
	if len(notes) != 1 || !strings.Contains(notes[0], "まで保留し") || !strings.Contains(notes[0], "見積書.pdf") {
		t.Fatalf("notice to the sender: %q", notes)
	}
	if m := linkRe.FindStringSubmatch(notes[0]); m == nil || m[1] != "h" {
		t.Fatalf("no link to the sender's page in %q", notes[0])
	}

	h.later = 5*time.Minute + time.Second
	h.runHolds(t)
	copies := sentCopies(h)
	kinds := byKind(copies)
	if len(copies) != 2 || len(kinds["untouched"]) != 1 || len(kinds["encrypted"]) != 1 {
		t.Fatalf("after the hold: %d mails (%v), want the colleague's original and the partner's zip", len(copies), keysOf(kinds))
	}
	if got := heldOne(t, h); got.State != store.HeldSent || h.held.Has(got.ID) {
		t.Errorf("after sending: state %s, file kept %v", got.State, h.held.Has(got.ID))
	}
	// Its password job came with the zip, the delay counted from now.
	h.release(t)
	if pws := byKind(h.hop.Messages())["password"]; len(pws) != 1 || rcptsOf(pws[0]) != "bob@partner.example" {
		t.Fatalf("password mails %v", pws)
	}
	// Nothing goes twice, however often the scheduler runs.
	before := len(sentCopies(h))
	h.runHolds(t)
	h.runHolds(t)
	if n := len(sentCopies(h)); n != before {
		t.Fatalf("%d more mails on later passes", n-before)
	}
	if ev, _ := h.store.Events(context.Background(), hm.ID); len(ev) < 2 || ev[0].Event != "held" ||
		!slices.ContainsFunc(ev, func(e store.Event) bool { return e.Event == "sent" }) {
		t.Errorf("history %+v", ev)
	}
	if out := noticesTo(t, h, "taro@example.co.jp"); !strings.Contains(strings.Join(out, "\n"), "保留していたメール「見積書」を") {
		t.Errorf("no outcome notice: %q", out)
	}
}

func TestHeldSendNowAndCancel(t *testing.T) {
	h := start(t, func(c *config.Config) {
		localDomains(c)
		c.Policy.Hold = config.Duration(10 * time.Minute) // the global default
	})
	ctx := context.Background()
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	hm := heldOne(t, h)
	if err := h.store.SendHeldNow(ctx, hm.ID, hm.Sender, "page", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.runHolds(t)
	if n := len(byKind(sentCopies(h))["encrypted"]); n != 1 {
		t.Fatalf("Send now: %d copies, want 1", n)
	}

	second := strings.Replace(withAttachment, "<orig-1@", "<orig-2@", 1)
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(second)); se != nil {
		t.Fatal(se)
	}
	list, _ := h.store.ListHeld(ctx, store.HeldWaiting, 10)
	if len(list) != 1 {
		t.Fatalf("waiting: %v", list)
	}
	id := list[0].ID
	if err := h.store.CancelHeld(ctx, id, "taro@example.co.jp", "page", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.later = time.Hour
	h.runHolds(t)
	if n := len(byKind(sentCopies(h))["encrypted"]); n != 1 {
		t.Fatalf("a canceled message left: %d copies", n)
	}
	if h.held.Has(id) {
		t.Error("the canceled message's copy on disk is still there")
	}
	notes := strings.Join(noticesTo(t, h, "taro@example.co.jp"), "\n")
	if !strings.Contains(notes, "送信を取り消しました") || !strings.Contains(notes, "was canceled") {
		t.Errorf("the sender was not told of the cancel:\n%s", notes)
	}
}

// An approver whose address is not ASCII gets the request: the relay
// asks the next hop for SMTPUTF8, which such an address needs.
func TestApprovalRequestToUTF8Address(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "bank.example", Approvers: []string{"部長@example.co.jp"}})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"x@bank.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	h.runHolds(t)
	var got []mailtest.Received
	for _, m := range byKind(h.hop.Messages())["notice"] {
		if rcptsOf(m) == "部長@example.co.jp" {
			got = append(got, m)
		}
	}
	if len(got) != 1 || !got[0].MailOpts.UTF8 || !strings.Contains(text(t, got[0].Data), "見積書.pdf") {
		t.Fatalf("approval requests to 部長@example.co.jp: %d (SMTPUTF8 asked: %v)", len(got), len(got) == 1 && got[0].MailOpts.UTF8)
	}
}

func TestApproval(t *testing.T) {
	h := start(t, localDomains)
	ctx := context.Background()
	setPolicy(t, h, policy.Policy{Domain: "bank.example", Approvers: []string{"boss@example.co.jp", "lead@example.co.jp"}})
	send3 := func(n int) string {
		t.Helper()
		msg := strings.Replace(withAttachment, "<orig-1@", fmt.Sprintf("<approval-%d@", n), 1)
		if se := send(t, h.addr, "taro@example.co.jp", []string{"x@bank.example"}, []byte(msg)); se != nil {
			t.Fatal(se)
		}
		list, _ := h.store.ListHeld(ctx, store.HeldWaiting, 1)
		return list[0].ID
	}

	// Approved by one of the two: it leaves.
	id := send3(1)
	h.runHolds(t)
	var reqs []string
	for _, a := range []string{"boss@example.co.jp", "lead@example.co.jp"} {
		got := noticesTo(t, h, a)
		if len(got) != 1 || !strings.Contains(got[0], "taro@example.co.jp") || !strings.Contains(got[0], "見積書.pdf") {
			t.Fatalf("request to %s: %q", a, got)
		}
		if m := linkRe.FindStringSubmatch(got[0]); m == nil || m[1] != "a" {
			t.Fatalf("no approver link for %s", a)
		}
		reqs = append(reqs, got[0])
	}
	if n := len(sentCopies(h)); n != 0 {
		t.Fatal("left before the approval")
	}
	if err := h.store.ApproveHeld(ctx, id, "lead@example.co.jp", "page", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.runHolds(t)
	if n := len(byKind(sentCopies(h))["encrypted"]); n != 1 {
		t.Fatalf("after the approval: %d copies", n)
	}

	// Rejected with a reason the sender is told.
	id = send3(2)
	if err := h.store.RejectHeld(ctx, id, "boss@example.co.jp", "page", "wrong customer", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.runHolds(t)
	if n := len(byKind(sentCopies(h))["encrypted"]); n != 1 {
		t.Fatal("a rejected message left")
	}
	notes := strings.Join(noticesTo(t, h, "taro@example.co.jp"), "\n")
	if !strings.Contains(notes, "boss@example.co.jp さんに却下") || !strings.Contains(notes, "wrong customer") {
		t.Errorf("the sender was not told of the rejection:\n%s", notes)
	}

	// Nobody decides: not sent after approval_timeout, the sender told.
	id = send3(3)
	h.later = 24*time.Hour + time.Minute
	h.runHolds(t)
	if got, _ := h.store.GetHeld(ctx, id); got.State != store.HeldExpired {
		t.Fatalf("after the timeout: %s", got.State)
	}
	if n := len(byKind(sentCopies(h))["encrypted"]); n != 1 {
		t.Fatal("an expired message left")
	}
	if notes := strings.Join(noticesTo(t, h, "taro@example.co.jp"), "\n"); !strings.Contains(notes, "送信されませんでした") {
		t.Errorf("the sender was not told of the expiry:\n%s", notes)
	}
}

func toLine(n int) string {
	var list []string
	for i := range n {
		list = append(list, fmt.Sprintf("Customer %d <customer%d@client%d.example>", i, i, i))
	}
	return strings.Join(list, ", ")
}

// The To/Cc guard holds a message that shows more outside addresses than
// allowed, until the sender says send; or refuses it where a rule says so.
func TestToCcGuard(t *testing.T) {
	h := start(t, func(c *config.Config) {
		localDomains(c)
		c.Policy.MaxVisibleExternal = 3
	})
	ctx := context.Background()
	msg := func(n int, id string) []byte {
		return []byte("From: taro@example.co.jp\r\nTo: " + toLine(n) + "\r\nCc: jiro@example.co.jp\r\nSubject: news\r\n" +
			"Message-ID: <" + id + "@example.co.jp>\r\n\r\nhello all\r\n")
	}
	if se := send(t, h.addr, "taro@example.co.jp", []string{"customer0@client0.example"}, msg(3, "g3")); se != nil {
		t.Fatal(se)
	}
	if n := len(h.hop.Messages()); n != 1 {
		t.Fatalf("3 outside addresses (the limit) were held: %d sent", n)
	}
	if se := send(t, h.addr, "taro@example.co.jp", []string{"customer0@client0.example"}, msg(4, "g4")); se != nil {
		t.Fatal(se)
	}
	hm := heldOne(t, h)
	if hm.Visible != 4 || hm.Reasons[0] != store.ReasonGuard || hm.Expires.IsZero() {
		t.Fatalf("guard-held %+v", hm)
	}
	h.later = time.Hour // no hold time: it waits for the sender, not the clock
	h.runHolds(t)
	if n := len(h.hop.Messages()) - len(noticesTo(t, h, "taro@example.co.jp")); n != 1 {
		t.Fatalf("the guard-held message left without the sender: %d", n)
	}
	if notes := strings.Join(noticesTo(t, h, "taro@example.co.jp"), "\n"); !strings.Contains(notes, "4 件") || !strings.Contains(notes, "Bcc") {
		t.Errorf("the notice does not say why:\n%s", notes)
	}
	if err := h.store.SendHeldNow(ctx, hm.ID, hm.Sender, "page", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.runHolds(t)
	if got, _ := h.store.GetHeld(ctx, hm.ID); got.State != store.HeldSent {
		t.Fatalf("after Send now: %s", got.State)
	}

	setPolicy(t, h, policy.Policy{Domain: "client0.example", Guard: policy.GuardReject})
	se := send(t, h.addr, "taro@example.co.jp", []string{"customer0@client0.example"}, msg(5, "g5"))
	if se == nil || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || !strings.Contains(se.Message, "5 addresses outside") {
		t.Fatalf("guard reject: %+v", se)
	}
}

// Postfix's retry of a message zipgate held already (it stopped before
// its 250) gets 250 and is not held twice.
func TestRetryOfAHeldMessage(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "partner.example", Hold: dur(5 * time.Minute)})
	for range 2 {
		if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
			t.Fatal(se)
		}
	}
	heldOne(t, h)
}

// Over the disk set aside for held messages, one more gets 452 and stays
// with Postfix; nothing held is dropped.
func TestHoldBudget(t *testing.T) {
	h := start(t, func(c *config.Config) {
		localDomains(c)
		c.Policy.HoldMaxBytes = int64(len(withAttachment)) + 10
	})
	setPolicy(t, h, policy.Policy{Domain: "partner.example", Hold: dur(5 * time.Minute)})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	second := strings.Replace(withAttachment, "<orig-1@", "<orig-2@", 1)
	se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(second))
	if se == nil || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("over the budget: %+v", se)
	}
	heldOne(t, h)
}

// A held message the next hop defers is tried again later; one it
// refuses for good is not retried, and the sender is told why.
func TestHeldMessageDeferredThenRefused(t *testing.T) {
	h := start(t, localDomains)
	ctx := context.Background()
	setPolicy(t, h, policy.Policy{Domain: "partner.example", Hold: dur(time.Minute)})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	hm := heldOne(t, h)
	h.runHolds(t) // the notice
	h.hop.SetFault(mailtest.Fault{RcptAddr: "bob@partner.example",
		Rcpt: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}})
	h.later = 2 * time.Minute
	h.runHolds(t)
	got, _ := h.store.GetHeld(ctx, hm.ID)
	if got.State != store.HeldWaiting || got.Attempts != 1 || !got.NextAttempt.After(time.Now()) || !h.held.Has(hm.ID) {
		t.Fatalf("after a 4xx: %+v", got)
	}
	h.hop.SetFault(mailtest.Fault{RcptAddr: "bob@partner.example",
		Rcpt: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}})
	h.later = 10 * time.Minute
	h.runHolds(t)
	got, _ = h.store.GetHeld(ctx, hm.ID)
	if got.State != store.HeldFailed || !strings.Contains(got.LastError, "no such user") || h.held.Has(hm.ID) {
		t.Fatalf("after a 5xx: %+v", got)
	}
	if notes := strings.Join(noticesTo(t, h, "taro@example.co.jp"), "\n"); !strings.Contains(notes, "no such user") {
		t.Errorf("the sender was not told why:\n%s", notes)
	}
	if n := len(byKind(h.hop.Messages())["encrypted"]); n != 0 {
		t.Errorf("%d copies went", n)
	}
}
