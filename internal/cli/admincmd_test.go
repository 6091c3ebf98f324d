package cli

import (
	"context"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/store"
)

// withStdin runs the CLI with stdin reading s (not a terminal: one line).
func withStdin(t *testing.T, s string, args ...string) (int, string, string) {
	t.Helper()
	old := Stdin
	Stdin = strings.NewReader(s)
	defer func() { Stdin = old }()
	return runCLI(args...)
}

func openData(t *testing.T, data string) store.Store {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = data
	st, err := openExistingStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestAdminUserAndTokenCommands(t *testing.T) {
	data := t.TempDir()
	// Never a new store: pointed at an empty directory it says so.
	if code, _, errOut := withStdin(t, "a long enough password\n", "admin", "user", "add", "alice", "-data", data); code != 1 ||
		!strings.Contains(errOut, "no zipgate store in") {
		t.Fatalf("user add without a store: %d %s", code, errOut)
	}
	seedJob(t, data, "job1") // the server made the store

	if code, _, errOut := withStdin(t, "short\n", "admin", "user", "add", "alice", "-data", data); code != 1 ||
		!strings.Contains(errOut, "at least 12 characters") {
		t.Fatalf("short password: %d %s", code, errOut)
	}
	if code, _, errOut := withStdin(t, "", "admin", "user", "add", "alice", "-data", data); code != 1 || !strings.Contains(errOut, "no password") {
		t.Fatalf("no password: %d %s", code, errOut)
	}
	code, out, errOut := withStdin(t, "パスワードは十二文字以上です\n", "admin", "user", "add", "-data", data, "alice")
	if code != 0 || !strings.Contains(out, "admin alice added") {
		t.Fatalf("user add: %d %s %s", code, out, errOut)
	}
	st := openData(t, data)
	ctx := context.Background()
	a, err := st.GetAdmin(ctx, "alice")
	if err != nil || bcrypt.CompareHashAndPassword(a.PasswordHash, []byte("パスワードは十二文字以上です")) != nil {
		t.Fatalf("stored account %+v, %v", a, err)
	}
	if strings.Contains(string(a.PasswordHash), "十二") {
		t.Fatal("the password is stored in clear")
	}
	if code, out, _ := withStdin(t, "another long password\n", "admin", "user", "add", "alice", "-data", data); code != 0 ||
		!strings.Contains(out, "new password for admin alice") {
		t.Fatalf("second add: %d %s", code, out)
	}
	if code, out, _ := runCLI("admin", "user", "list", "-data", data); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("user list: %d %s", code, out)
	}
	if code, _, errOut := runCLI("admin", "user", "add", "bad name", "-data", data); code != 2 || !strings.Contains(errOut, "a name is") {
		t.Fatalf("bad name: %d %s", code, errOut)
	}

	code, tok, errOut := runCLI("admin", "token", "create", "ci", "-data", data)
	tok = strings.TrimSpace(tok)
	if code != 0 || !strings.HasPrefix(tok, "zgt_") || !strings.Contains(errOut, "shown this once") {
		t.Fatalf("token create: %d %q %s", code, tok, errOut)
	}
	h := sha256.Sum256([]byte(tok))
	if got, err := st.TokenByHash(ctx, h[:], a.CreatedAt); err != nil || got.Name != "ci" {
		t.Fatalf("the token's hash is not stored: %v", err)
	}
	if code, _, errOut := runCLI("admin", "token", "create", "ci", "-data", data); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("second token ci: %d %s", code, errOut)
	}
	if code, out, _ := runCLI("admin", "token", "list", "-data", data); code != 0 || !strings.Contains(out, "ci") || strings.Contains(out, tok) {
		t.Fatalf("token list: %d %s", code, out)
	}
	if code, _, _ := runCLI("admin", "token", "revoke", "ci", "-data", data); code != 0 {
		t.Fatal("revoke")
	}
	if code, _, errOut := runCLI("admin", "token", "revoke", "ci", "-data", data); code != 1 || !strings.Contains(errOut, "no token ci") {
		t.Fatalf("second revoke: %d %s", code, errOut)
	}
	if code, _, _ := runCLI("admin", "user", "delete", "alice", "-data", data); code != 0 {
		t.Fatal("user delete")
	}
	// Each change is in the audit trail, with the CLI as the actor; no
	// password, no token.
	var got []string
	st.SearchEvents(ctx, store.AuditQuery{}, func(r store.AuditRow) error {
		if r.Via != "cli" || !strings.HasPrefix(r.Actor, "cli ") {
			t.Errorf("event %+v", r)
		}
		if strings.Contains(r.Detail, tok) || strings.Contains(r.Detail, "password") {
			t.Errorf("a secret in %+v", r)
		}
		got = append([]string{r.Event.Event + " " + r.Target}, got...)
		return nil
	})
	want := []string{"admin_added admin alice", "admin_password_set admin alice", "token_created token ci",
		"token_revoked token ci", "admin_deleted admin alice"}
	if !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
}

// jobs cancel and policy set from the shell are in the audit too.
func TestCLIChangesAreAudited(t *testing.T) {
	data := t.TempDir()
	seedJob(t, data, "job1")
	if code, _, errOut := runCLI("jobs", "cancel", "-data", data, "job1"); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI("policy", "set", "partner.example", "-action", "pass", "-data", data); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI("policy", "set", "partner.example", "-delay", "15m", "-data", data); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI("policy", "delete", "partner.example", "-data", data); code != 0 {
		t.Fatal(errOut)
	}
	st := openData(t, data)
	var got []string
	st.SearchEvents(context.Background(), store.AuditQuery{}, func(r store.AuditRow) error {
		got = append([]string{r.Event.Event + " " + r.Message + r.Target + ": " + r.Detail}, got...)
		return nil
	})
	want := []string{"password_canceled job1: job job1", "policy_added policy partner.example: action: (unset) → pass",
		"policy_set policy partner.example: delay: (unset) → 15m", "policy_deleted policy partner.example: action: pass → (unset); delay: 15m → (unset)"}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
