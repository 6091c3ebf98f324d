package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/text/encoding/japanese"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/store"
)

// localDomains is the organization of these tests.
func localDomains(c *config.Config) {
	c.Policy.LocalDomains = []string{"example.co.jp", "*.example.co.jp"}
}

// setPolicy stores a rule as `zipgate policy set` does, through a second
// handle on the database, as the CLI in another process would.
func setPolicy(t *testing.T, h *harness, p policy.Policy) {
	t.Helper()
	st, _, err := store.Open(context.Background(), h.cfg.DBFile(), h.cfg.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p.UpdatedAt = time.Now()
	if err := st.PutPolicy(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
}

func dur(d time.Duration) *time.Duration { return &d }

// rcptsOf is a received message's recipients, comma separated.
func rcptsOf(m mailtest.Received) string { return strings.Join(m.Rcpts, ",") }

func TestSplitDeliveryOneCopyPerTreatment(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "pass.example", Action: policy.Pass})
	rcpts := []string{"jiro@example.co.jp", "bob@partner.example", "carol@pass.example", "dave@osaka.example.co.jp"}
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatalf("got %d %s", se.Code, se.Message)
	}
	got := h.hop.Messages()
	if len(got) != 2 {
		t.Fatalf("next hop got %d messages, want the original and one zipped copy", len(got))
	}
	kinds := byKind(got)
	orig, zipped := kinds["untouched"], kinds["encrypted"]
	if len(orig) != 1 || len(zipped) != 1 {
		t.Fatalf("kinds %v", keysOf(kinds))
	}
	// The colleagues and the pass partner get the original bytes.
	if rcptsOf(orig[0]) != "jiro@example.co.jp,carol@pass.example,dave@osaka.example.co.jp" {
		t.Errorf("original went to %v", orig[0].Rcpts)
	}
	if !bytes.Equal(orig[0].Data, []byte(withAttachment)) {
		t.Errorf("the original copy is not byte for byte the message:\n%s", orig[0].Data)
	}
	if rcptsOf(zipped[0]) != "bob@partner.example" || orig[0].From != "taro@example.co.jp" || zipped[0].From != "taro@example.co.jp" {
		t.Errorf("zipped copy %s -> %v", zipped[0].From, zipped[0].Rcpts)
	}
	// Each recipient exactly one copy.
	var all []string
	for _, m := range got {
		all = append(all, m.Rcpts...)
	}
	slices.Sort(all)
	want := slices.Clone(rcpts)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("recipients of all copies %v, want each of %v once", all, want)
	}

	h.release(t)
	pws := byKind(h.hop.Messages())["password"]
	if len(pws) != 1 || rcptsOf(pws[0]) != "bob@partner.example" {
		t.Fatalf("password mails %d to %v; want one, to the zip's recipient only", len(pws), pws)
	}
	_, data := zipOf(t, zipped[0].Data)
	if names, _ := unzip(t, data, passwordOf(t, pws[0].Data)); len(names) != 1 || names[0] != "見積書.pdf" {
		t.Fatalf("zip holds %q", names)
	}

	// The log and the store say which rule decided for whom.
	line := logLine(t, h)
	groups := line["groups"].([]any)
	if len(groups) != 3 {
		t.Fatalf("log groups %v", groups)
	}
	for _, g := range groups {
		g := g.(map[string]any)
		switch {
		case g["reason"] == policy.ReasonInternal:
			if g["action"] != "pass" || len(g["rcpts"].([]any)) != 2 {
				t.Errorf("internal group %v", g)
			}
		case g["rule"] == "pass.example":
			if g["action"] != "pass" {
				t.Errorf("pass group %v", g)
			}
		case g["rule"] == policy.RuleConfig:
			if g["action"] != "encrypt" || g["job"] == nil {
				t.Errorf("encrypt group %v", g)
			}
		default:
			t.Errorf("unexpected group %v", g)
		}
	}
	msgs, err := h.store.ListMessages(context.Background(), 10)
	if err != nil || len(msgs) != 1 || len(msgs[0].Groups) != 3 || msgs[0].Subject != "見積書" {
		t.Fatalf("message record %+v, %v", msgs, err)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// logLine returns the last "message" log line.
func logLine(t *testing.T, h *harness) map[string]any {
	t.Helper()
	var line map[string]any
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"message"`) {
			line = nil
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatal("no message log line")
	}
	return line
}

// Mail from outside the local domains (Postfix filters inbound mail too)
// is none of zipgate's business: untouched, and never signed with our
// key, even when its From claims our domain.
func TestSenderNotLocalPassesUntouchedAndUnsigned(t *testing.T) {
	path, _ := ed25519Key(t)
	h := startSigning(t, localDomains, []relay.DKIMKey{{Domain: "example.co.jp", Selector: "zg", Algorithm: "ed25519", KeyFile: path}})
	if se := send(t, h.addr, "spoofer@internet.example", []string{"taro@example.co.jp", "x@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	got := h.hop.Messages()
	if len(got) != 1 || !bytes.Equal(got[0].Data, []byte(withAttachment)) {
		t.Fatalf("next hop got %d messages; want the message as sent", len(got))
	}
	if bytes.Contains(got[0].Data, []byte("DKIM-Signature")) {
		t.Error("zipgate signed mail from outside")
	}
	if line := logLine(t, h); line["action"] != "pass" || line["reason"] != policy.ReasonSenderNotLocal {
		t.Errorf("log line %v", line)
	}
	if jobs, _ := h.store.List(context.Background(), "", 10); len(jobs) != 0 {
		t.Errorf("%d jobs for a message that passed", len(jobs))
	}
}

// RCPT TO:<Postmaster> (no domain: this host's postmaster, RFC 5321
// 4.1.1.3) is taken and gets the message as sent, as a colleague does.
func TestPostmasterWithoutDomainGetsTheMessageAsSent(t *testing.T) {
	h := start(t, localDomains)
	if se := send(t, h.addr, "taro@example.co.jp", []string{"Postmaster"}, []byte(withAttachment)); se != nil {
		t.Fatalf("RCPT TO:<Postmaster>: %d %s", se.Code, se.Message)
	}
	got := h.hop.Messages()
	if len(got) != 1 || !bytes.Equal(got[0].Data, []byte(withAttachment)) || rcptsOf(got[0]) != "Postmaster" {
		t.Fatalf("next hop got %d messages; want the message as sent, to Postmaster", len(got))
	}
}

func TestRejectDomainRefusesAttachments(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "*.competitor.example", Action: policy.Reject})
	se := send(t, h.addr, "taro@example.co.jp", []string{"jiro@example.co.jp", "x@sales.competitor.example"}, []byte(withAttachment))
	if se == nil || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) ||
		!strings.Contains(se.Message, "mail with attachments to sales.competitor.example is not allowed") {
		t.Fatalf("got %+v, want 554 5.7.1 naming the domain", se)
	}
	if n := len(h.hop.Messages()); n != 0 {
		t.Fatalf("next hop got %d messages of a refused message", n)
	}
	msgs, _ := h.store.ListMessages(context.Background(), 10)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Result, "554 5.7.1") {
		t.Errorf("the refusal is not in the record: %+v", msgs)
	}
	// Without attachments it may go.
	plain := "From: taro@example.co.jp\r\nTo: x@sales.competitor.example\r\nSubject: hello\r\n\r\nno files\r\n"
	if se := send(t, h.addr, "taro@example.co.jp", []string{"x@sales.competitor.example"}, []byte(plain)); se != nil {
		t.Fatalf("a message without attachments: %d %s", se.Code, se.Message)
	}
	if got := h.hop.Messages(); len(got) != 1 || string(got[0].Data) != plain {
		t.Fatalf("next hop got %d messages", len(got))
	}
}

// With password_to sender the password goes to the sender, who passes it
// on by another channel; the recipients never get it by mail.
func TestPasswordToSender(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "partner.example", PasswordTo: policy.ToSender, Language: "ja"})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	h.release(t)
	kinds := byKind(h.hop.Messages())
	pws := kinds["password"]
	if len(pws) != 1 || rcptsOf(pws[0]) != "taro@example.co.jp" {
		t.Fatalf("password mails %v; want one, to the sender", pws)
	}
	body := text(t, pws[0].Data)
	if !strings.Contains(body, "メール以外の方法") || !strings.Contains(body, "bob@partner.example") {
		t.Errorf("password mail to the sender:\n%s", body)
	}
	_, data := zipOf(t, kinds["encrypted"][0].Data)
	unzip(t, data, passwordOf(t, pws[0].Data))
	// The recipient's body notice is in the domain's language, and says
	// the password comes from the sender.
	msgText := text(t, kinds["encrypted"][0].Data)
	if !strings.Contains(msgText, "送信者から") || strings.Contains(msgText, "The password follows") {
		t.Errorf("body notice:\n%s", msgText)
	}
	var notice string
	for _, n := range kinds["notice"] {
		notice += text(t, n.Data)
	}
	if !strings.Contains(notice, "あなた宛てに送られます") {
		t.Errorf("sender notices do not say the password comes to them:\n%s", notice)
	}
}

// text is every decoded text part of a message.
func text(t *testing.T, raw []byte) string {
	t.Helper()
	var b strings.Builder
	for _, e := range leaves(t, raw) {
		if mt, _, _ := e.header.ContentType(); strings.HasPrefix(mt, "text/") {
			b.Write(e.body)
		}
	}
	return b.String()
}

// With password_to manual nothing goes until the sender presses Release
// now, however long it takes.
func TestManualRelease(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "partner.example", PasswordTo: policy.Manual})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	h.sched.Now = func() time.Time { return time.Now().Add(30 * 24 * time.Hour) }
	h.release(t)
	kinds := byKind(h.hop.Messages())
	if len(kinds["password"]) != 0 || len(kinds["notice"]) != 1 {
		t.Fatalf("%d password mails and %d notices a month later; want none and the sender's notice", len(kinds["password"]), len(kinds["notice"]))
	}
	if n := text(t, kinds["notice"][0].Data); !strings.Contains(n, "「今すぐ送る」を押すまで") {
		t.Errorf("the notice does not say the password waits for the sender:\n%s", n)
	}
	jobs, _ := h.store.List(context.Background(), "", 10)
	if len(jobs) != 1 || jobs[0].State != store.Scheduled || !jobs[0].DueAt.IsZero() {
		t.Fatalf("job %+v", jobs)
	}
	// The sender presses Release now (the page and the CLI call this).
	if err := h.store.ReleaseNow(context.Background(), jobs[0].ID, h.sched.Now()); err != nil {
		t.Fatal(err)
	}
	h.release(t)
	pws := byKind(h.hop.Messages())["password"]
	if len(pws) != 1 || rcptsOf(pws[0]) != "bob@partner.example" {
		t.Fatalf("after Release now: %v", pws)
	}
}

// A rule changed while the server runs applies to the next message.
func TestPolicyChangeAppliesToTheNextMessage(t *testing.T) {
	h := start(t, localDomains)
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	setPolicy(t, h, policy.Policy{Domain: "partner.example", Action: policy.Pass, Note: "NDA signed"})
	second := strings.Replace(withAttachment, "<orig-1@", "<orig-2@", 1)
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(second)); se != nil {
		t.Fatal(se)
	}
	got := h.hop.Messages()
	if len(got) != 2 || len(byKind(got)["encrypted"]) != 1 || string(got[1].Data) != second {
		t.Fatalf("the change did not apply to the next message: kinds %v", keysOf(byKind(got)))
	}
}

// A per-domain zip method and file-name encoding: ZipCrypto with CP932
// names for a partner on Windows Explorer, opened by Info-ZIP unzip and
// CPython's zipfile with the right Japanese names and bytes.
func TestZipCryptoCP932ForOneDomain(t *testing.T) {
	h := start(t, localDomains)
	setPolicy(t, h, policy.Policy{Domain: "explorer.example", ZipMethod: "zipcrypto", FilenameEncoding: "cp932"})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@explorer.example", "carol@partner.example"}, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	h.release(t)
	kinds := byKind(h.hop.Messages())
	if len(kinds["encrypted"]) != 2 || len(kinds["password"]) != 2 {
		t.Fatalf("%d zipped copies and %d password mails; want one of each per zip method", len(kinds["encrypted"]), len(kinds["password"]))
	}
	password := map[string]string{}
	for _, p := range kinds["password"] {
		password[rcptsOf(p)] = passwordOf(t, p.Data)
	}
	pdf := []byte("%PDF-1.4\n%äüöß\n1 0 obj\n<</Type/Catalog>>\nendobj\n")
	for _, m := range kinds["encrypted"] {
		_, data := zipOf(t, m.Data)
		pw := password[rcptsOf(m)]
		if rcptsOf(m) == "carol@partner.example" {
			checkWithTools(t, data, pw, map[string][]byte{"見積書.pdf": pdf}) // AES-256, UTF-8 names
			continue
		}
		if data[6]&1 == 0 || data[8] == 99 {
			t.Errorf("explorer.example's zip is not ZipCrypto: flags %x, method %d", data[6], data[8])
		}
		dir := t.TempDir()
		zf := filepath.Join(dir, "a.zip")
		os.WriteFile(zf, data, 0o600)
		if _, err := exec.LookPath("unzip"); err != nil {
			t.Log("skipping the Info-ZIP check: unzip not installed (apt-get install unzip)")
		} else {
			// Debian's unzip writes a name without the UTF-8 flag as its
			// bytes: CP932 here, which is what Windows shows as Japanese
			// (with a Unicode Path field it may write UTF-8 instead).
			out := filepath.Join(dir, "out")
			cmd := exec.Command("unzip", "-P", pw, "-d", out, zf)
			cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("unzip: %v\n%s", err, b)
			}
			entries, _ := os.ReadDir(out)
			if len(entries) != 1 {
				t.Fatalf("unzip wrote %v", entries)
			}
			name := entries[0].Name()
			if sjis, _ := japanese.ShiftJIS.NewDecoder().String(name); name != "見積書.pdf" && sjis != "見積書.pdf" {
				t.Errorf("unzip wrote the name %q (%x), neither CP932 nor UTF-8 for 見積書.pdf", name, name)
			}
			if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || !bytes.Equal(got, pdf) {
				t.Errorf("unzip extracted other bytes: %v", err)
			}
		}
		if _, err := exec.LookPath("python3"); err != nil {
			t.Log("skipping the CPython check: python3 not installed")
			continue
		}
		py := `import base64, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], metadata_encoding="cp932") as z:
    json.dump({i.filename: base64.b64encode(z.read(i, pwd=sys.argv[2].encode())).decode() for i in z.infolist()}, sys.stdout)`
		out, err := exec.Command("python3", "-c", py, zf, pw).Output()
		if err != nil {
			t.Fatalf("python3 zipfile: %v", err)
		}
		var got map[string]string
		json.Unmarshal(out, &got)
		if b, _ := base64.StdEncoding.DecodeString(got["見積書.pdf"]); !bytes.Equal(b, pdf) {
			t.Errorf("python3 zipfile read %v", keysOf(got))
		}
	}
}

// A 4xx for one copy: the copy that was accepted is not sent again on
// Postfix's retry; only the missing one goes.
func TestRetryDeliversOnlyTheMissingCopy(t *testing.T) {
	h := start(t, localDomains)
	rcpts := []string{"jiro@example.co.jp", "bob@partner.example"}
	h.hop.SetFault(mailtest.Fault{RcptAddr: "bob@partner.example",
		Rcpt: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}})
	se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment))
	if se == nil || se.Code != 451 {
		t.Fatalf("got %+v, want 451 so that Postfix keeps the message", se)
	}
	if got := h.hop.Messages(); len(got) != 1 || rcptsOf(got[0]) != "jiro@example.co.jp" {
		t.Fatalf("first try: next hop got %d messages", len(got))
	}
	h.release(t)
	if n := len(byKind(h.hop.Messages())["password"]); n != 0 {
		t.Fatalf("%d password mails for a zip that did not leave", n)
	}
	h.hop.SetFault(mailtest.Fault{})
	// Postfix retries the whole message, every recipient.
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatalf("retry: %d %s", se.Code, se.Message)
	}
	got := h.hop.Messages()
	if len(got) != 2 || rcptsOf(got[1]) != "bob@partner.example" || len(byKind(got)["encrypted"]) != 1 {
		t.Fatalf("after the retry: %d messages, the second to %v", len(got), got[len(got)-1].Rcpts)
	}
	line := logLine(t, h)
	if already, _ := line["already_delivered"].([]any); len(already) != 1 || already[0] != "jiro@example.co.jp" {
		t.Errorf("log line of the retry: %v", line)
	}
	// The same message id across the tries: the admin follows one message.
	msgs, _ := h.store.ListMessages(context.Background(), 10)
	if len(msgs) != 1 || msgs[0].ID != line["id"] || len(msgs[0].Groups) != 2 {
		t.Fatalf("records %+v", msgs)
	}
	h.release(t)
	if pws := byKind(h.hop.Messages())["password"]; len(pws) != 1 || rcptsOf(pws[0]) != "bob@partner.example" {
		t.Fatalf("password mails %v", pws)
	}
	// A third try (zipgate stopped after the 250) delivers nothing again.
	before := len(h.hop.Messages())
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	if n := len(h.hop.Messages()); n != before {
		t.Fatalf("a message already delivered went again: %d new mails", n-before)
	}
}

// The sender cancels while Postfix still holds a message whose first
// try ended without knowing (no reply after the data): the retry does
// not send the zip the sender took back, and no password follows; the
// other recipients' copy still goes.
func TestRetryAfterCancelDoesNotSendTheCopy(t *testing.T) {
	h := start(t, localDomains)
	rcpts := []string{"jiro@example.co.jp", "bob@partner.example"}
	h.hop.SetFault(mailtest.Fault{Drop: true})
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se == nil || se.Code != 451 {
		t.Fatalf("first try: %+v", se)
	}
	jobs, _ := h.store.List(context.Background(), "", 10)
	if len(jobs) != 1 {
		t.Fatalf("jobs after an uncertain try: %+v", jobs)
	}
	if err := h.store.Cancel(context.Background(), jobs[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.hop.SetFault(mailtest.Fault{})
	before := len(h.hop.Messages())
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatalf("retry: %d %s", se.Code, se.Message)
	}
	got := h.hop.Messages()[before:]
	if len(got) != 1 || rcptsOf(got[0]) != "jiro@example.co.jp" {
		t.Fatalf("the retry sent %d mails, the first to %v", len(got), got)
	}
	line := logLine(t, h)
	groups, _ := line["groups"].([]any)
	taken := 0
	for _, g := range groups {
		if g.(map[string]any)["taken_back"] == jobs[0].ID {
			taken++
		}
	}
	if taken != 1 {
		t.Errorf("log line of the retry does not say the copy was taken back: %v", line)
	}
	evs, _ := h.store.Events(context.Background(), line["id"].(string))
	notSent := 0
	for _, e := range evs {
		if e.Event == "not_sent" && strings.Contains(e.Detail, jobs[0].ID) {
			notSent++
		}
		if e.Event == "delivered" && strings.Contains(e.Detail, "bob@partner.example") {
			t.Errorf("the history says the canceled copy was delivered: %+v", e)
		}
	}
	if notSent != 1 {
		t.Errorf("the history does not say the copy was not sent: %+v", evs)
	}
	h.release(t)
	if pws := byKind(h.hop.Messages())["password"]; len(pws) != 0 {
		t.Fatalf("a password went for a canceled copy: %v", pws)
	}
	// Postfix is done: a further try sends nothing.
	before = len(h.hop.Messages())
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatal(se)
	}
	if n := len(h.hop.Messages()); n != before {
		t.Fatalf("%d mails on a third try", n-before)
	}
}

// A permanent refusal of one copy after another was delivered: the one
// answer Postfix gets says for whom it is, so the bounce does not tell
// the sender that the delivered copy failed.
func TestPermanentRefusalOfOneCopySaysWhichRecipients(t *testing.T) {
	h := start(t, localDomains)
	h.hop.SetFault(mailtest.Fault{RcptAddr: "bob@partner.example",
		Rcpt: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}})
	se := send(t, h.addr, "taro@example.co.jp", []string{"jiro@example.co.jp", "bob@partner.example"}, []byte(withAttachment))
	if se == nil || se.Code != 550 || !strings.Contains(se.Message, "refused for bob@partner.example") ||
		!strings.Contains(se.Message, "delivered to jiro@example.co.jp") {
		t.Fatalf("got %+v", se)
	}
	if jobs, _ := h.store.List(context.Background(), "", 10); len(jobs) != 0 {
		t.Errorf("a job is left for a copy refused for good: %+v", jobs)
	}
}
