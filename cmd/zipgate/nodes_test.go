package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/pgtest"
)

// Several zipgate nodes on one PostgreSQL (issue 14): each a real
// `zipgate serve` with a data_dir of its own, its own next hop (its
// host's Postfix) and web listener, the same key file, one database.

type gwNode struct {
	name               string
	listen, web, admin string
	hop                *mailtest.NextHop
	config             string
	cmd                *exec.Cmd
}

// startNodes writes the configuration of n nodes on a fresh database of
// the shared test cluster and starts them; extra is added to every
// configuration.
func startNodes(t *testing.T, n int, delay string, extra string) []*gwNode {
	t.Helper()
	return startNodesOn(t, pgtest.Shared(t), n, delay, extra)
}

func startNodesOn(t *testing.T, c *pgtest.Cluster, n int, delay string, extra string) []*gwNode {
	t.Helper()
	return startNodesVia(t, c, func(url string) string { return url }, n, delay, extra)
}

// startNodesVia is startNodesOn with the database's URL through via (a
// proxy).
func startNodesVia(t *testing.T, c *pgtest.Cluster, via func(string) string, n int, delay string, extra string) []*gwNode {
	t.Helper()
	db := c.NewDatabase(t)
	shared := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	pw := filepath.Join(shared, "pgpass")
	if err := os.WriteFile(pw, []byte(c.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []*gwNode
	for i := range n {
		dir := t.TempDir()
		// Each node has its copy of the one key.
		keyFile := filepath.Join(dir, "zipgate.key")
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		nd := &gwNode{name: string(rune('A' + i)), listen: freeAddr(t), web: freeAddr(t), admin: freeAddr(t),
			hop: mailtest.StartNextHop(t)}
		nd.config = filepath.Join(dir, "zipgate.toml")
		text := fmt.Sprintf(`data_dir = %q
[smtp]
listen = %q
[relay]
next_hop = %q
[release]
delay = %q
key_file = %q
[web]
listen = %q
base_url = "http://%s"
[admin]
listen = %q
[store]
url = %q
password_file = %q
lease = "5s"
%s`, filepath.Join(dir, "data"), nd.listen, nd.hop.Addr, delay, keyFile, nd.web, nd.web, nd.admin,
			via(c.BareURL(db)), pw, extra)
		if err := os.WriteFile(nd.config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		nd.cmd = startZipgate(t, "serve", "-config", nd.config)
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		waitListening(t, nd.listen)
		waitListening(t, nd.web)
	}
	return nodes
}

// zipgateCmd runs an admin command of the real program.
func zipgateCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zipgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mails are what a next hop got of one kind (encrypted, password,
// notice), by zipgate id, with their decoded text.
func mails(t *testing.T, hop *mailtest.NextHop, kind string) map[string][]string {
	t.Helper()
	re := regexp.MustCompile(`X-Zipgate: ` + kind + `; id=([a-z0-9-]+)`)
	out := map[string][]string{}
	for _, m := range hop.Messages() {
		if mm := re.FindSubmatch(m.Data); mm != nil {
			out[string(mm[1])] = append(out[string(mm[1])], texts(t, m.Data))
		}
	}
	return out
}

// waitFor polls cond until it holds, or fails the test after limit
// saying what.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is a client with cookies that does not follow redirects.
func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// on is u (a link a node mailed) on node nd's web listener: the nodes
// stand behind one name.
func on(nd *gwNode, u string) string {
	parsed, _ := url.Parse(u)
	parsed.Host = nd.web
	return parsed.String()
}

// TestTwoNodesShareThePages: a sender page, an approver's page and a
// download link that one node mailed work on the other, forms included
// (the CSRF values and the page cookie come from the one key every node
// has), and what one node holds leaves once, from whichever node.
func TestTwoNodesShareThePages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two real servers on PostgreSQL")
	}
	nodes := startNodes(t, 2, "1h", "")
	a, b := nodes[0], nodes[1]
	zipgateCmd(t, "policy", "set", "bank.example", "-approvers", "boss@example.jp", "-config", a.config)
	zipgateCmd(t, "policy", "set", "files.example", "-action", "link", "-delay", "0s", "-config", b.config)

	// 1. The sender page of a zip that went through A, opened on A,
	// released from B with A's form.
	if err := sendTo(a.listen, "hanako@example.com", mailWithAttachment(1)); err != nil {
		t.Fatal(err)
	}
	linkRe := regexp.MustCompile(`http://[0-9.:]+/([sahd])/[A-Za-z0-9_-]{43}`)
	var sender string
	waitFor(t, 30*time.Second, "A's sender notice", func() bool {
		for _, texts := range mails(t, a.hop, "notice") {
			for _, text := range texts {
				if l := linkRe.FindString(text); strings.Contains(l, "/s/") {
					sender = l
				}
			}
		}
		return sender != ""
	})
	br := browser()
	code, page := get(t, br, on(a, sender))
	csrf := csrfRe.FindStringSubmatch(page)
	if code != 200 || csrf == nil {
		t.Fatalf("sender page on A: %d\n%s", code, page)
	}
	if code, page := post(t, br, on(b, sender)+"/release", url.Values{"csrf": {csrf[1]}}); code >= 400 {
		t.Fatalf("release now on B with A's form: %d\n%s", code, page)
	}
	waitFor(t, 30*time.Second, "the released password", func() bool {
		return len(mails(t, a.hop, "password"))+len(mails(t, b.hop, "password")) == 1
	})

	// 2. A message to an approver's domain, held by B; its approver opens
	// the request on A and approves there; it leaves once.
	if err := sendTo(b.listen, "cfo@bank.example", mailWithAttachment(2)); err != nil {
		t.Fatal(err)
	}
	var approve string
	waitFor(t, 30*time.Second, "the approval request", func() bool {
		for _, hop := range []*mailtest.NextHop{a.hop, b.hop} {
			for _, texts := range mails(t, hop, "notice") {
				for _, text := range texts {
					for _, l := range linkRe.FindAllString(text, -1) {
						if strings.Contains(l, "/a/") {
							approve = l
						}
					}
				}
			}
		}
		return approve != ""
	})
	code, page = get(t, br, on(a, approve))
	csrf = csrfRe.FindStringSubmatch(page)
	if code != 200 || csrf == nil || !strings.Contains(page, "cfo@bank.example") {
		t.Fatalf("approver page on A: %d\n%s", code, page)
	}
	if code, page := post(t, br, on(a, approve)+"/approve", url.Values{"csrf": {csrf[1]}}); code >= 400 {
		t.Fatalf("approve on A: %d\n%s", code, page)
	}
	count := func(kind string) int { return len(mails(t, a.hop, kind)) + len(mails(t, b.hop, kind)) }
	waitFor(t, 30*time.Second, "the approved message", func() bool { return count("encrypted") == 2 })

	// 3. A download link made by B: opened with its password on A, the
	// file downloaded from B with the cookie A set.
	if err := sendTo(b.listen, "kyoko@files.example", mailWithAttachment(3)); err != nil {
		t.Fatal(err)
	}
	pwRe := regexp.MustCompile(`Password: (\S+)`)
	var link, pw string
	waitFor(t, 30*time.Second, "the link and its password", func() bool {
		for _, m := range append(b.hop.Messages(), a.hop.Messages()...) {
			text := texts(t, m.Data)
			if l := linkRe.FindString(text); strings.Contains(l, "/d/") {
				link = l
			}
			if p := pwRe.FindStringSubmatch(text); p != nil && slices.Contains(m.Rcpts, "kyoko@files.example") {
				pw = p[1]
			}
		}
		return link != "" && pw != ""
	})
	dl := browser()
	code, page = get(t, dl, on(a, link))
	csrf = csrfRe.FindStringSubmatch(page)
	if code != 200 || csrf == nil {
		t.Fatalf("link page on A: %d\n%s", code, page)
	}
	if code, page := post(t, dl, on(a, link)+"/open", url.Values{"csrf": {csrf[1]}, "password": {pw}}); code >= 400 {
		t.Fatalf("password on A: %d\n%s", code, page)
	}
	code, file := get(t, dl, on(b, link)+"/f/0")
	if code != 200 || file != "%PDF-1.4\n" {
		t.Fatalf("file from B with A's cookie: %d %q", code, file)
	}

	if c, l := count("encrypted"), count("link"); c != 2 || l != 1 {
		t.Errorf("%d zipped and %d linked copies left, want 2 and 1 (one per message, none twice)", c, l)
	}
}

// TestTwoNodesKillNine: 20 messages spread over two nodes, node A killed
// with SIGKILL while every password still waits: each password goes out
// exactly once, all of them from the survivor (A's jobs once A's leases
// ran out), and a sender page link A mailed works on the survivor, with
// the form A's page gave before it died.
func TestTwoNodesKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two real servers on PostgreSQL for half a minute")
	}
	nodes := startNodes(t, 2, "20s", "")
	a, b := nodes[0], nodes[1]
	const n = 20
	for i := range n {
		to := a
		if i%2 == 1 {
			to = b
		}
		if err := sendTo(to.listen, "hanako@example.com", mailWithAttachment(100+i)); err != nil {
			t.Fatalf("message %d to node %s: %v", i, to.name, err)
		}
	}
	count := func(kind string) (map[string]int, map[string]int) {
		byA, byB := map[string]int{}, map[string]int{}
		for id, m := range mails(t, a.hop, kind) {
			byA[id] += len(m)
		}
		for id, m := range mails(t, b.hop, kind) {
			byB[id] += len(m)
		}
		return byA, byB
	}
	waitFor(t, 30*time.Second, "20 zipped copies and their sender notices", func() bool {
		ca, cb := count("encrypted")
		na, nb := count("notice")
		return len(ca)+len(cb) == n && len(na)+len(nb) == n
	})
	copiesA, copiesB := count("encrypted")
	if len(copiesA) != n/2 || len(copiesB) != n/2 {
		t.Fatalf("copies: %d through A, %d through B; want %d each", len(copiesA), len(copiesB), n/2)
	}

	// A notice A mailed, and the page's form, fetched from A.
	linkRe := regexp.MustCompile(`http://[0-9.:]+/s/[A-Za-z0-9_-]{43}`)
	var link, linkJob string
	for id, texts := range mails(t, a.hop, "notice") {
		if l := linkRe.FindString(texts[0]); l != "" {
			link, linkJob = l, id
			break
		}
	}
	if link == "" {
		t.Fatal("node A mailed no sender notice")
	}
	br := browser()
	code, page := get(t, br, on(a, link))
	csrf := csrfRe.FindStringSubmatch(page)
	if code != 200 || csrf == nil {
		t.Fatalf("sender page on A: %d\n%s", code, page)
	}

	pwA, pwB := count("password")
	if len(pwA)+len(pwB) != 0 {
		t.Fatalf("%d password mails before the kill: the machine is too slow for a 20 s delay", len(pwA)+len(pwB))
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()

	// The survivor serves the dead node's link, and takes its form.
	code, page = get(t, br, on(b, link))
	if code != 200 || !strings.Contains(page, "attachments_") {
		t.Fatalf("A's link on B: %d\n%s", code, page)
	}
	if code, page := post(t, br, on(b, link)+"/release", url.Values{"csrf": {csrf[1]}}); code >= 400 {
		t.Fatalf("Release now on B with the form A gave: %d\n%s", code, page)
	}
	waitFor(t, 20*time.Second, "the password released on B's page", func() bool {
		_, pwB := count("password")
		return pwB[linkJob] > 0
	})

	waitFor(t, 90*time.Second, "all 20 password mails", func() bool {
		pwA, pwB := count("password")
		return len(pwA)+len(pwB) == n
	})
	// A second one of anything would show within a lease and a poll.
	time.Sleep(8 * time.Second)
	pwA, pwB = count("password")
	if len(pwA) != 0 {
		t.Errorf("the dead node sent %d password mails", len(pwA))
	}
	all := maps.Clone(copiesA)
	maps.Copy(all, copiesB)
	for id := range all {
		if pwB[id] != 1 {
			t.Errorf("job %s: %d password mails from the survivor, want exactly 1", id, pwB[id])
		}
	}
	out := zipgateCmd(t, "jobs", "list", "-state", "released", "-config", b.config)
	for id := range all {
		if !strings.Contains(out, id) {
			t.Errorf("job %s is not released in the store:\n%s", id, out)
		}
	}
	t.Logf("20 messages (10 through each node), node A killed, 20 password mails, each once, all from node B")
}

// TestNodeKilledWhileSendingAPassword: node A dies with SIGKILL while
// its password mail is on its way (claimed, the data sent, no answer
// yet, so its next hop drops it as Postfix does when the client goes).
// Node B takes the claimed job over once A's lease ran out and sends the
// password, once.
func TestNodeKilledWhileSendingAPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two real servers on PostgreSQL")
	}
	nodes := startNodes(t, 2, "8s", "")
	a, b := nodes[0], nodes[1]
	if err := sendTo(a.listen, "hanako@example.com", mailWithAttachment(7)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the zipped copy and the sender notice at A's next hop", func() bool {
		return len(mails(t, a.hop, "encrypted")) == 1 && len(mails(t, a.hop, "notice")) == 1
	})
	var id string
	for id = range mails(t, a.hop, "encrypted") {
	}
	// The next mail A hands its next hop is the password: hold its answer.
	onItsWay, killed := make(chan struct{}), make(chan struct{})
	a.hop.SetFault(mailtest.Fault{Drop: true, BeforeReply: func() {
		close(onItsWay)
		<-killed
	}})
	select {
	case <-onItsWay:
	case <-time.After(60 * time.Second):
		t.Fatal("node A never sent the password mail")
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	close(killed)

	waitFor(t, 60*time.Second, "the password from node B", func() bool {
		return len(mails(t, b.hop, "password")[id]) > 0
	})
	// A second one would show within a lease and a poll.
	time.Sleep(8 * time.Second)
	if n := len(mails(t, b.hop, "password")[id]); n != 1 {
		t.Errorf("node B sent the password %d times, want once", n)
	}
	if n := len(mails(t, a.hop, "password")); n != 0 {
		t.Errorf("A's next hop kept %d password mails of a node that died before the answer", n)
	}
	out := zipgateCmd(t, "jobs", "show", id, "-config", b.config)
	if !strings.Contains(out, "released") {
		t.Errorf("job %s is not released in the store:\n%s", id, out)
	}
}

// fromPostfix counts what a next hop got that Postfix sent through the
// node: what the node mails itself (sender notices) is not.
func fromPostfix(hop *mailtest.NextHop) int {
	n := 0
	for _, m := range hop.Messages() {
		if !strings.Contains(string(m.Data), "X-Zipgate: notice;") {
			n++
		}
	}
	return n
}

// TestDatabaseDownIs451: with the database gone, every message gets 451
// (Postfix keeps it), with attachments or without, and nothing reaches
// the next hop, in the clear or at all; /healthz says why. Once the
// database is back, Postfix's retry goes through, zipped.
func TestDatabaseDownIs451(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real server on a PostgreSQL it stops")
	}
	c := pgtest.Start(t)
	a := startNodesOn(t, c, 1, "1h", "")[0]
	if err := sendTo(a.listen, "hanako@example.com", mailWithAttachment(1)); err != nil {
		t.Fatalf("with the database up: %v", err)
	}
	c.Stop()
	plain := "From: taro@example.jp\r\nTo: hanako@example.com\r\nSubject: no files\r\n\r\nhello\r\n"
	for name, msg := range map[string]string{"with an attachment": mailWithAttachment(2), "without": plain} {
		err := sendTo(a.listen, "hanako@example.com", msg)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 451 {
			t.Errorf("a message %s, the database down: %v, want 451", name, err)
		}
	}
	if n := fromPostfix(a.hop); n != 1 {
		t.Errorf("the next hop got %d messages, want only the one from before the stop", n)
	}
	if code, body := get(t, http.DefaultClient, "http://"+a.web+"/healthz"); code != 503 || !strings.Contains(body, "store unavailable") {
		t.Errorf("/healthz with the database down: %d %q", code, body)
	}

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	// Postfix retries until it gets 250.
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = sendTo(a.listen, "hanako@example.com", mailWithAttachment(2)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the retry once the database is back: %v", err)
	}
	if enc := mails(t, a.hop, "encrypted"); len(enc) != 2 || fromPostfix(a.hop) != 2 {
		t.Errorf("after the retry: %d zipped of %d messages at the next hop, want 2 of 2", len(enc), fromPostfix(a.hop))
	}
}

// TestDatabaseFrozenIs451: the database does not refuse, it stops
// answering (its host hung, the network drops packets: connections stay
// open). Postfix must still get a 4xx in time, not a session that hangs
// until its own timeout; nothing reaches the next hop; once the database
// answers again, Postfix's retry goes through, zipped.
func TestDatabaseFrozenIs451(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real server on a PostgreSQL behind a proxy that freezes")
	}
	c := pgtest.Shared(t)
	proxy := c.Proxy(t)
	a := startNodesVia(t, c, proxy.Via, 1, "1h", `timeout = "1s"`+"\n")[0]
	if err := sendTo(a.listen, "hanako@example.com", mailWithAttachment(1)); err != nil {
		t.Fatalf("with the database answering: %v", err)
	}
	proxy.Freeze()
	plain := "From: taro@example.jp\r\nTo: hanako@example.com\r\nSubject: no files\r\n\r\nhello\r\n"
	for _, m := range []struct{ name, msg string }{{"with an attachment", mailWithAttachment(2)}, {"without", plain}} {
		done := make(chan error, 1)
		go func() { done <- sendTo(a.listen, "hanako@example.com", m.msg) }()
		select {
		case err := <-done:
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code/100 != 4 {
				t.Errorf("a message %s, the database frozen: %v, want a 4xx", m.name, err)
			} else {
				t.Logf("a message %s, the database frozen: %d %v %s", m.name, se.Code, se.EnhancedCode, se.Message)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("a message %s: no answer 2 minutes after the database froze (store.timeout 1s): Postfix would time out", m.name)
		}
	}
	if n := fromPostfix(a.hop); n != 1 {
		t.Errorf("the next hop got %d messages, want only the one from before the freeze", n)
	}
	if code, body := get(t, http.DefaultClient, "http://"+a.web+"/healthz"); code != 503 || !strings.Contains(body, "store unavailable") {
		t.Errorf("/healthz with the database frozen: %d %q", code, body)
	}

	proxy.Thaw()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = sendTo(a.listen, "hanako@example.com", mailWithAttachment(2)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the retry once the database answers again: %v", err)
	}
	if enc := mails(t, a.hop, "encrypted"); len(enc) != 2 || fromPostfix(a.hop) != 2 {
		t.Errorf("after the retry: %d zipped of %d messages at the next hop, want 2 of 2", len(enc), fromPostfix(a.hop))
	}
}
