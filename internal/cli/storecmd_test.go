package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/hold"
	"github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// A single gateway's store grows into a shared one: every table, the
// sealed secrets under the same key, the held messages and the files of
// download links, all readable by a node of the PostgreSQL store; a
// second copy into the same database, or a copy while the gateway still
// serves the directory, is refused.
func TestStoreMigrate(t *testing.T) {
	c := pgtest.Shared(t)
	data := storeDir(t)
	ctx, now := context.Background(), time.Now().Truncate(time.Millisecond)

	// What a gateway leaves: jobs pending, scheduled, released; a rule;
	// a held message and its file; a download link and its file; an
	// account, a session, an API token; the history.
	seedJob(t, data, "job1")
	seedJob(t, data, "job2")
	seedHeld(t, data, "held1")
	linkedJob(t, data, "link1", policy.AuthPassword)
	heldBytes := []byte("Subject: 送金依頼\r\n\r\nheld body\r\n")
	hd, err := hold.NewDir(filepath.Join(data, "held"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, hd.Save("held1", bytes.NewReader(heldBytes)))
	must(t, hd.Save("orphan", strings.NewReader("no row holds me")))
	ld, err := links.NewDir(filepath.Join(data, "links"))
	if err != nil {
		t.Fatal(err)
	}
	fileKey := make([]byte, 32) // linkedJob's
	plain := make([]byte, 300<<10)
	rand.Read(plain)
	if _, _, err := (&links.Files{Blobs: ld}).Put("link1", 0, fileKey, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.DataDir = data
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := 15 * time.Minute
	must(t, st.PutPolicy(ctx, &policy.Policy{Domain: "partner.example", Action: policy.Encrypt, Delay: &d, Note: "経理", UpdatedAt: now}))
	must(t, st.Cancel(ctx, "job2", now))
	_, err = st.PutAdmin(ctx, "alice", []byte("$2a$bcrypt-hash"), now)
	must(t, err)
	sid := sha256.Sum256([]byte("session"))
	must(t, st.CreateSession(ctx, &store.Session{IDHash: sid[:], Admin: "alice", CSRF: "csrf", CreatedAt: now, SeenAt: now, Expires: now.Add(time.Hour)}))
	tok := sha256.Sum256([]byte("token"))
	must(t, st.CreateToken(ctx, "ci", tok[:], now))
	must(t, st.AddEvent(ctx, store.Event{Message: "job1", At: now, Event: "received", Actor: "zipgate", Via: "smtp"}))
	before := snapshot(t, st)
	st.Close()

	db := c.NewDatabase(t)
	pw := filepath.Join(t.TempDir(), "pgpass")
	os.WriteFile(pw, []byte(c.Password+"\n"), 0o600)

	// A key kept outside data_dir must be named: the error says how.
	noKey := t.TempDir()
	if err := os.Link(filepath.Join(data, "zipgate.db"), filepath.Join(noKey, "zipgate.db")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("store", "migrate", "-from", "sqlite:"+noKey, "-to", c.BareURL(db), "-password-file", pw)
	if code != 1 || !strings.Contains(errOut, "no key file") || !strings.Contains(errOut, "-key FILE") {
		t.Fatalf("migrate of a store whose key is elsewhere: exit %d, %q; want the -key flag named", code, errOut)
	}

	// Not while the gateway serves the directory.
	unlock, err := lockDataDir(data)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("store", "migrate", "-from", "sqlite:"+data, "-to", c.BareURL(db), "-password-file", pw)
	unlock()
	if code != 1 || !strings.Contains(errOut, "already serves") {
		t.Fatalf("migrate beside a running gateway: exit %d, %q", code, errOut)
	}

	code, out, errOut := runCLI("store", "migrate", "-from", "sqlite:"+data, "-to", c.BareURL(db), "-password-file", pw)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"jobs             3 rows", "held             1 row\n", "files            2", "store.url"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, c.Password) {
		t.Error("migrate printed the database password")
	}

	// A node of the shared store, with a copy of the key, sees it all.
	shared := config.Defaults()
	shared.DataDir = t.TempDir()
	shared.Release.KeyFile = filepath.Join(data, "zipgate.key")
	shared.Store.URL, shared.Store.PasswordFile = c.BareURL(db), pw
	pg, _, err := openShared(shared, true, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	after := snapshot(t, pg)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the shared store differs from the one copied:\nbefore %+v\nafter  %+v", before, after)
	}
	if j, err := pg.Get(ctx, "job1"); err != nil || j.Password != "SECRET-pw" {
		t.Errorf("a sealed password copied: %v, %v", j, err)
	}
	if s, err := pg.SessionByHash(ctx, sid[:], now); err != nil || s.Admin != "alice" {
		t.Errorf("the session copied: %v, %v", s, err)
	}
	if tk, err := pg.TokenByHash(ctx, tok[:], now); err != nil || tk.Name != "ci" {
		t.Errorf("the API token copied: %v, %v", tk, err)
	}
	sd := hold.NewSharedDir(pg.Blobs(store.BlobHeld), t.TempDir())
	f, err := sd.Open(ctx, "held1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f.Reader())
	f.Close()
	if !bytes.Equal(got, heldBytes) || sd.Has("orphan") {
		t.Errorf("held messages copied: %q; the orphan file too: %v", got, sd.Has("orphan"))
	}
	rcs, err := (&links.Files{Blobs: links.Shared{B: pg.Blobs(store.BlobLinks)}}).Open(ctx, "link1", []int{0}, fileKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rcs[0])
	rcs[0].Close()
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("the link's file copied: %d bytes, %v", len(got), err)
	}
	// New events number on after the copied ones.
	must(t, pg.AddEvent(ctx, store.Event{Message: "job1", At: now, Event: "later", Actor: "zipgate"}))
	if evs, _ := pg.Events(ctx, "job1"); len(evs) < 2 || evs[len(evs)-1].Event != "later" {
		t.Errorf("events after the copy: %+v", evs)
	}

	// Once is enough: the database holds data now.
	code, _, errOut = runCLI("store", "migrate", "-from", "sqlite:"+data, "-to", c.BareURL(db), "-password-file", pw)
	if code != 1 || !strings.Contains(errOut, "already holds data") {
		t.Errorf("a second migrate: exit %d, %q", code, errOut)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is what the admin sees of a store: every job (with its
// password), rule, held message, link, message record, history, account.
func snapshot(t *testing.T, st store.Store) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	var err error
	put := func(name string, v any, e error) {
		out[name] = v
		if e != nil && err == nil {
			err = e
		}
	}
	jobs, e := st.List(ctx, "", 100)
	put("jobs", jobs, e)
	pols, e := st.ListPolicies(ctx)
	put("policies", pols, e)
	held, e := st.ListHeld(ctx, "", 100)
	put("held", held, e)
	ls, e := st.ListLinks(ctx, 100)
	put("links", ls, e)
	msgs, e := st.FindMessages(ctx, store.MessageQuery{})
	put("messages", msgs, e)
	admins, e := st.ListAdmins(ctx)
	put("admins", admins, e)
	tokens, e := st.ListTokens(ctx)
	put("tokens", tokens, e)
	var events []store.AuditRow
	e = st.SearchEvents(ctx, store.AuditQuery{}, func(r store.AuditRow) error { events = append(events, r); return nil })
	put("events", events, e)
	counts, e := st.Counts(ctx)
	put("counts", counts, e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
