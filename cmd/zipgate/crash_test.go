package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/cli"
	"github.com/zipgate/zipgate/internal/loopback"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/pgtest"
)

// The test binary is also zipgate: run with ZIPGATE_RUN_MAIN=1 it is the
// real program, so the crash test kills and restarts the real thing.
func TestMain(m *testing.M) {
	if os.Getenv("ZIPGATE_RUN_MAIN") == "1" {
		os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startZipgate runs the real program and waits until it takes mail.
func startZipgate(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("zipgate log:\n%s", log.String())
		}
	})
	return cmd
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("zipgate did not listen on %s", addr)
}

func mailWithAttachment(i int) string {
	return fmt.Sprintf("From: taro@example.jp\r\nTo: hanako@example.com\r\nSubject: crash %d\r\nMessage-ID: <crash-%d@example.jp>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"+
		"--b\r\nContent-Type: application/pdf; name=f%d.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n", i, i, i)
}

// sendTo submits msg for rcpt as Postfix's content filter client does.
func sendTo(addr, rcpt, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("postfix.test"); err != nil {
		return err
	}
	if err := c.Mail("taro@example.jp", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

var idRe = regexp.MustCompile(`X-Zipgate: (encrypted|password); id=([a-z0-9]+)`)

// TestKillNineLosesNoPassword: jobs pending when zipgate is killed with
// SIGKILL are all released after a restart, each exactly once.
func TestKillNineLosesNoPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real program for several seconds")
	}
	hop := mailtest.StartNextHop(t)
	data := t.TempDir()
	listen := freeAddr(t)
	args := []string{"serve", "-listen", listen, "-next-hop", hop.Addr, "-data", data,
		"-delay", "3s", "-web-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0"}
	first := startZipgate(t, args...)
	waitListening(t, listen)

	const n = 10
	for i := range n {
		if err := sendTo(listen, "hanako@example.com", mailWithAttachment(i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	sent := map[string]int{}
	count := func() (encrypted int, passwords map[string]int) {
		passwords = map[string]int{}
		for _, m := range hop.Messages() {
			if mm := idRe.FindSubmatch(m.Data); mm != nil {
				if string(mm[1]) == "encrypted" {
					encrypted++
					sent[string(mm[2])]++
				} else {
					passwords[string(mm[2])]++
				}
			}
		}
		return encrypted, passwords
	}
	if enc, pw := count(); enc != n || len(pw) != 0 {
		t.Fatalf("before the restart: %d messages, %d password mails; want %d and 0", enc, len(pw), n)
	}

	startZipgate(t, args...)
	waitListening(t, listen)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, pw := count()
		if len(pw) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d passwords went", len(pw), n)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every job is released in the store, so none can go again.
	list := exec.Command(os.Args[0], "jobs", "list", "-data", data, "-state", "released")
	list.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("jobs list: %v\n%s", err, out)
	}
	_, pw := count()
	for id := range sent {
		if pw[id] != 1 {
			t.Errorf("job %s: %d password mails, want exactly 1", id, pw[id])
		}
		if !bytes.Contains(out, []byte(id)) {
			t.Errorf("job %s is not released in the store:\n%s", id, out)
		}
	}
}

// TestOneServerPerDataDir: a second serve on the same data directory (a
// mistake) exits with a message naming the pid that serves it, before it
// touches the store; the admin commands work beside the server.
func TestOneServerPerDataDir(t *testing.T) {
	hop := mailtest.StartNextHop(t)
	data := t.TempDir()
	listen := freeAddr(t)
	first := startZipgate(t, "serve", "-listen", listen, "-next-hop", hop.Addr, "-data", data, "-web-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0")
	waitListening(t, listen)

	second := exec.Command(os.Args[0], "serve", "-listen", freeAddr(t), "-next-hop", hop.Addr, "-data", data,
		"-web-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0")
	second.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	out, err := second.CombinedOutput()
	if err == nil {
		t.Fatalf("a second server on %s started:\n%s", data, out)
	}
	want := fmt.Sprintf("another zipgate (pid %d) already serves %s", first.Process.Pid, data)
	if !bytes.Contains(out, []byte(want)) {
		t.Errorf("second serve said:\n%s\nwant %q", out, want)
	}
	if bytes.Contains(out, []byte("resumed release jobs")) {
		t.Error("the second server ran Recover")
	}
	// The first one still takes mail, and jobs works beside it.
	if err := sendTo(listen, "hanako@example.com", mailWithAttachment(1)); err != nil {
		t.Fatalf("the first server stopped taking mail: %v", err)
	}
	list := exec.Command(os.Args[0], "jobs", "list", "-data", data)
	list.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	if out, err := list.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("scheduled")) {
		t.Errorf("jobs list beside the server: %v\n%s", err, out)
	}
}

// TestHeldMessageSurvivesKillNine: a held message is on disk before its
// 250; after kill -9 and a restart it leaves once, when its hold is over.
func TestHeldMessageSurvivesKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real program for several seconds")
	}
	hop := mailtest.StartNextHop(t)
	data := t.TempDir()
	listen := freeAddr(t)
	args := []string{"serve", "-listen", listen, "-next-hop", hop.Addr, "-data", data, "-delay", "1s", "-web-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0"}
	first := startZipgate(t, args...)
	waitListening(t, listen)
	set := exec.Command(os.Args[0], "policy", "set", "*", "-hold", "3s", "-data", data)
	set.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("policy set: %v\n%s", err, out)
	}
	if err := sendTo(listen, "hanako@example.com", mailWithAttachment(7)); err != nil {
		t.Fatal(err)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	count := func(kind string) int {
		n := 0
		for _, m := range hop.Messages() {
			if mm := idRe.FindSubmatch(m.Data); mm != nil && string(mm[1]) == kind {
				n++
			}
		}
		return n
	}
	if n := count("encrypted"); n != 0 {
		t.Fatalf("%d copies left during the hold", n)
	}
	startZipgate(t, args...)
	waitListening(t, listen)
	deadline := time.Now().Add(30 * time.Second)
	for count("password") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %d copies, %d passwords", count("encrypted"), count("password"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything late would show by now
	if c, p := count("encrypted"), count("password"); c != 1 || p != 1 {
		t.Fatalf("%d copies and %d password mails, want 1 and 1", c, p)
	}
	if entries, _ := os.ReadDir(data + "/held"); len(entries) != 0 {
		t.Errorf("the held copy is still on disk: %v", entries)
	}
}
