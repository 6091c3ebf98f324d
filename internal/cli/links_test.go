package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// linkedJob stores a delivered linked copy, as the gateway leaves it.
func linkedJob(t *testing.T, data, id, auth string) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = data
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, now := context.Background(), time.Now()
	l := &store.Link{ID: id, Message: id, Key: []byte(id), Auth: auth, Sender: "taro@example.jp",
		Rcpts: []string{"hanako@partner.example"}, Subject: "見積書", Files: []store.File{{Name: "a.pdf", Size: 3}},
		FileKey: make([]byte, 32), Password: "Secret123abc", Token: "tok", TokenHash: []byte("hash-" + id),
		CreatedAt: now, ExpiresAt: now.Add(7 * 24 * time.Hour), MaxDownloads: 5}
	j := &store.Job{ID: id, Sender: l.Sender, Rcpts: l.Rcpts, ZipName: "a.zip", Files: l.Files, Password: l.Password,
		CreatedAt: now, DueAt: now.Add(time.Hour), Message: id, Key: l.Key, Link: l}
	m := &store.Message{ID: id, Key: l.Key, CreatedAt: now, UpdatedAt: now, Sender: l.Sender, Rcpts: l.Rcpts}
	if err := st.SaveMessage(ctx, m, j); err != nil {
		t.Fatal(err)
	}
	if err := st.Delivered(ctx, m, l.Rcpts, id, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
}

func TestJobsRevoke(t *testing.T) {
	data := storeDir(t)
	linkedJob(t, data, "l1", policy.AuthPassword)
	linkedJob(t, data, "l2", policy.AuthOTP)

	code, out, errOut := runCLI("jobs", "list", "-data", data)
	if code != 0 || !strings.Contains(out, "Download links") || !strings.Contains(squash(out), "l1 active") ||
		!strings.Contains(out, "0/5") {
		t.Fatalf("list: %d %s%s", code, out, errOut)
	}
	code, out, errOut = runCLI("jobs", "revoke", "l1", "-data", data)
	if code != 0 || !strings.Contains(out, "download link l1 revoked") || !strings.Contains(squash(out), "Link: revoked") ||
		!strings.Contains(out, "link_revoked") || strings.Contains(out, "Secret123abc") {
		t.Fatalf("revoke: %d\n%s%s", code, out, errOut)
	}
	// Its password mail does not go any more.
	if _, out, _ = runCLI("jobs", "show", "l1", "-data", data); !strings.Contains(squash(out), "State: canceled") {
		t.Errorf("job after the revoke:\n%s", out)
	}
	if code, _, errOut = runCLI("jobs", "revoke", "l1", "-data", data); code != 1 || !strings.Contains(errOut, "revoked already") {
		t.Errorf("second revoke: %d %q", code, errOut)
	}
	if code, _, errOut = runCLI("jobs", "revoke", "nope", "-data", data); code != 1 || !strings.Contains(errOut, "no download link") {
		t.Errorf("unknown id: %d %q", code, errOut)
	}
	// A link opened by codes has no password to release; cancel takes it back.
	if code, _, errOut = runCLI("jobs", "release", "l2", "-data", data); code != 1 || !strings.Contains(errOut, "one-time codes") {
		t.Errorf("release of an otp link: %d %q", code, errOut)
	}
	if code, out, _ = runCLI("jobs", "cancel", "l2", "-data", data); code != 0 || !strings.Contains(out, "download link l2 revoked") {
		t.Errorf("cancel of a link's job: %d %s", code, out)
	}
}
