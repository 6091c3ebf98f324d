package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"

	"github.com/zipgate/zipgate/internal/mailtest"
)

// texts decodes the text parts of a mail.
func texts(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m.Walk(func(_ []int, e *message.Entity, err error) error {
		if mt, _, _ := e.Header.ContentType(); err == nil && (mt == "text/plain" || mt == "") {
			io.Copy(&out, e.Body)
		}
		return nil
	})
	return out.String()
}

// TestDownloadLinkSurvivesKillNine: a link that went out keeps working
// after zipgate is killed with SIGKILL and started again: the page opens
// with the password mailed before, and the file is the one sent.
func TestDownloadLinkSurvivesKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real program for several seconds")
	}
	hop := mailtest.StartNextHop(t)
	data := t.TempDir()
	listen, web := freeAddr(t), freeAddr(t)
	args := []string{"serve", "-listen", listen, "-next-hop", hop.Addr, "-data", data, "-delay", "0s", "-web-listen", web}
	first := startZipgate(t, args...)
	waitListening(t, listen)
	set := exec.Command(os.Args[0], "policy", "set", "*", "-action", "link", "-data", data)
	set.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("policy set: %v\n%s", err, out)
	}
	if err := sendTo(listen, "hanako@example.com", mailWithAttachment(3)); err != nil {
		t.Fatal(err)
	}
	linkRe := regexp.MustCompile(`http://` + regexp.QuoteMeta(web) + `/d/[A-Za-z0-9_-]{43}`)
	pwRe := regexp.MustCompile(`Password: (\S+)`)
	var link, pw string
	deadline := time.Now().Add(30 * time.Second)
	for link == "" || pw == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no linked copy and password mail: %d messages", len(hop.Messages()))
		}
		time.Sleep(50 * time.Millisecond)
		for _, m := range hop.Messages() {
			text := texts(t, m.Data)
			if l := linkRe.FindString(text); l != "" {
				link = l
			}
			if p := pwRe.FindStringSubmatch(text); p != nil {
				pw = p[1]
			}
		}
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	startZipgate(t, args...)
	waitListening(t, web)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || csrf == nil {
		t.Fatalf("page after the restart: %d\n%s", resp.StatusCode, page)
	}
	resp, err = c.PostForm(link+"/open", url.Values{"csrf": {string(csrf[1])}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(link + "/f/0")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "%PDF-1.4\n" {
		t.Fatalf("file after the restart: %d %q", resp.StatusCode, got)
	}
}
