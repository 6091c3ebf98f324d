package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/store"
)

// seedJob puts a scheduled job into the store under dataDir, as the
// running server would.
func seedJob(t *testing.T, dataDir, id string) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = dataDir
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"hanako@example.com"}, Subject: "見積書",
		ZipName: "attachments_20261127.zip", Files: []store.File{{Name: "見積書.pdf", Size: 10, SHA256: "abcd"}},
		Password: "SECRET-pw", CreatedAt: now, DueAt: now.Add(10 * time.Minute)}
	if err := st.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if err := st.Schedule(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestJobsCommands(t *testing.T) {
	data := t.TempDir()
	seedJob(t, data, "job1")
	seedJob(t, data, "job2")

	code, out, errOut := runCLI("jobs", "list", "-data", data)
	if code != 0 || !strings.Contains(out, "job1") || !strings.Contains(out, "job2") || !strings.Contains(out, "scheduled") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI("jobs", "show", "-data", data, "job1")
	if code != 0 || !strings.Contains(out, "見積書.pdf") || !strings.Contains(out, "hanako@example.com") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "SECRET-pw") {
		t.Fatal("show prints the password")
	}
	if code, out, _ = runCLI("jobs", "cancel", "-data", data, "job1"); code != 0 || !strings.Contains(out, "canceled") {
		t.Fatalf("cancel: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI("jobs", "list", "-data", data, "-state", "canceled")
	if code != 0 || !strings.Contains(out, "job1") || strings.Contains(out, "job2") {
		t.Fatalf("list canceled: exit %d\n%s", code, out)
	}
	// Release after cancel, and unknown jobs, are refused with a reason.
	if code, _, errOut = runCLI("jobs", "release", "-data", data, "job1"); code == 0 || !strings.Contains(errOut, "canceled") {
		t.Fatalf("release after cancel: exit %d, %q", code, errOut)
	}
	if code, _, errOut = runCLI("jobs", "cancel", "-data", data, "nope"); code == 0 || !strings.Contains(errOut, "no such job") {
		t.Fatalf("unknown job: exit %d, %q", code, errOut)
	}
	if code, out, _ = runCLI("jobs", "release", "-data", data, "job2"); code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("release: exit %d\n%s", code, out)
	}
}

// Flags may follow the job ID, as admins type them.
func TestJobsFlagsAfterTheID(t *testing.T) {
	data := t.TempDir()
	seedJob(t, data, "job1")
	if code, out, errOut := runCLI("jobs", "cancel", "job1", "-data", data); code != 0 || !strings.Contains(out, "canceled") {
		t.Fatalf("cancel ID -data DIR: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI("jobs", "show", "job1", "job2", "-data", data); code != 2 || !strings.Contains(errOut, "give one job ID") {
		t.Fatalf("two IDs: exit %d, %q", code, errOut)
	}
}

// The admin commands never make a store: pointed at the wrong place they
// say so, and leave nothing behind.
func TestJobsRefuseAMissingStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing-here")
	code, out, errOut := runCLI("jobs", "list", "-data", missing)
	if code != 1 || out != "" || !strings.Contains(errOut, "no zipgate store in "+missing+"; give -data or -config") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the command made %s: %v", missing, err)
	}

	// In another directory without flags: the default ./zipgate-data,
	// named in full.
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	code, _, errOut = runCLI("jobs", "cancel", "job1")
	if code != 1 || !strings.Contains(errOut, "no zipgate store in "+filepath.Join(wd, "zipgate-data")+"; give -data or -config") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat("zipgate-data"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("jobs cancel made ./zipgate-data: %v", err)
	}
}

func TestJobsRefuseAStoreWithoutItsKey(t *testing.T) {
	data := t.TempDir()
	seedJob(t, data, "job1")
	cfg := config.Defaults()
	cfg.DataDir = data
	os.Rename(cfg.KeyFile(), cfg.KeyFile()+".elsewhere")
	code, _, errOut := runCLI("jobs", "list", "-data", data)
	if code != 1 || !strings.Contains(errOut, "has no key file "+cfg.KeyFile()) {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(cfg.KeyFile()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a new key was made: %v", err)
	}
}

// seedHeld puts a held message (waiting for boss) into the store.
func seedHeld(t *testing.T, dataDir, id string) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = dataDir
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	m := &store.Message{ID: id, Key: []byte(id), CreatedAt: now, UpdatedAt: now, Sender: "taro@example.jp",
		Rcpts: []string{"x@bank.example"}}
	h := &store.HeldMessage{ID: id, Key: []byte(id), Envelope: []byte("{}"), Sender: "taro@example.jp",
		Rcpts: []string{"x@bank.example"}, Subject: "送金依頼", Reasons: []string{store.ReasonApproval}, SenderOK: true,
		Approvals: [][]string{{"boss@example.jp"}}, Expires: now.Add(24 * time.Hour), CreatedAt: now}
	if err := st.HoldMessage(context.Background(), m, h); err != nil {
		t.Fatal(err)
	}
}

func TestJobsOnHeldMessages(t *testing.T) {
	data := t.TempDir()
	seedJob(t, data, "job1")
	seedHeld(t, data, "held1")
	seedHeld(t, data, "held2")
	code, out, _ := runCLI("jobs", "list", "-data", data)
	if code != 0 || !strings.Contains(out, "Held messages") || !strings.Contains(out, "approval by boss@example.jp") ||
		!strings.Contains(out, "held1") || !strings.Contains(out, "job1") {
		t.Fatalf("list:\n%s", out)
	}
	if code, _, errOut := runCLI("jobs", "approve", "held1", "-data", data); code != 2 || !strings.Contains(errOut, "-by") {
		t.Errorf("approve without -by: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI("jobs", "approve", "held1", "-by", "mallory@example.jp", "-data", data); code != 1 ||
		!strings.Contains(errOut, "not an approver") {
		t.Errorf("approve by a stranger: %d %q", code, errOut)
	}
	code, out, errOut := runCLI("jobs", "approve", "held1", "-by", "boss@example.jp", "-data", data)
	if code != 0 || !strings.Contains(out, "approved in the name of boss@example.jp") || !strings.Contains(out, "approved  boss@example.jp cli") {
		t.Fatalf("approve: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI("jobs", "reject", "held2", "-by", "boss@example.jp", "-reason", "not this customer", "-data", data)
	if code != 0 || !strings.Contains(out, "rejected") || !strings.Contains(out, "not this customer") {
		t.Fatalf("reject: %d\n%s", code, out)
	}
	if code, _, errOut := runCLI("jobs", "cancel", "held2", "-data", data); code != 1 || !strings.Contains(errOut, "held message held2 is rejected already") {
		t.Errorf("cancel of a rejected message: %d %q", code, errOut)
	}
	seedHeld(t, data, "held3")
	if code, out, _ := runCLI("jobs", "cancel", "held3", "-data", data); code != 0 || !strings.Contains(out, "canceled: it will not be sent") {
		t.Errorf("cancel: %d %s", code, out)
	}
	seedHeld(t, data, "held4")
	if code, out, _ := runCLI("jobs", "release", "held4", "-data", data); code != 0 || !strings.Contains(out, "send_now  admin cli") {
		t.Errorf("release: %d %s", code, out)
	}
}
