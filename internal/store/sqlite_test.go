package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// t0 is "now" in these tests; every time is given explicitly.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string, key []byte) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path, key)
	if err != nil {
		t.Fatalf("OpenSQLite(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore opens a fresh store in a temp dir and returns it with its path.
func newStore(t testing.TB) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zipgate.db")
	return openAt(t, path, testKey(1)), path
}

func sum(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

// job returns a job created two hours before t0 and due an hour before t0.
func job(id string) *Job {
	return &Job{
		ID:         id,
		Sender:     "taro@example.co.jp",
		Rcpts:      []string{"hanako@example.com"},
		HeaderFrom: "Taro <taro@example.co.jp>",
		HeaderTo:   "hanako@example.com",
		ZipName:    "attachments.zip",
		Files:      []File{{Name: "a.pdf", Size: 3, SHA256: sum("abc")}},
		Password:   "pw-" + id,
		CreatedAt:  t0.Add(-2 * time.Hour),
		DueAt:      t0.Add(-time.Hour),
	}
}

func create(t *testing.T, s Store, j *Job) {
	t.Helper()
	if err := s.Create(context.Background(), j); err != nil {
		t.Fatalf("Create(%s): %v", j.ID, err)
	}
}

func get(t *testing.T, s Store, id string) *Job {
	t.Helper()
	j, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

// must fails the test on err; what says which call it was.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// bring creates j (due before t0) and drives it, through the store's own
// calls, to state st at t0.
func bring(t *testing.T, s Store, j *Job, st State) {
	t.Helper()
	ctx := context.Background()
	create(t, s, j)
	id := j.ID
	switch st {
	case Pending:
	case Scheduled:
		must(t, "Schedule", s.Schedule(ctx, id))
	case Sending:
		must(t, "Schedule", s.Schedule(ctx, id))
		must(t, "Claim", s.Claim(ctx, id, t0))
	case Released:
		must(t, "Schedule", s.Schedule(ctx, id))
		must(t, "Claim", s.Claim(ctx, id, t0))
		must(t, "MarkReleased", s.MarkReleased(ctx, id, t0))
	case Canceled:
		must(t, "Schedule", s.Schedule(ctx, id))
		must(t, "Cancel", s.Cancel(ctx, id, t0))
	case Failed:
		must(t, "Schedule", s.Schedule(ctx, id))
		must(t, "Claim", s.Claim(ctx, id, t0))
		must(t, "MarkFailed", s.MarkFailed(ctx, id, t0, "550 5.1.1 no such user"))
	default:
		t.Fatalf("bring: unknown state %q", st)
	}
	if got := get(t, s, id).State; got != st {
		t.Fatalf("bring(%s): state %s, want %s", id, got, st)
	}
}

var allStates = []State{Pending, Scheduled, Sending, Released, Canceled, Failed}

func ids(jobs []*Job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func TestCreateGetRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		s, _ := be.newStore(t)
		in := &Job{
			ID:         "01JDXQ8Z6V1N2M3K4P5R6S7T8U",
			Sender:     "taro.yamada@example.co.jp",
			Rcpts:      []string{"hanako@example.com", "jiro@sub.example.org", "経理@例え.jp"},
			HeaderFrom: `"山田 太郎" <taro.yamada@example.co.jp>`,
			HeaderTo:   "Hanako <hanako@example.com>, jiro@sub.example.org",
			HeaderCc:   "=?ISO-2022-JP?B?GyRCN1BNfRsoQg==?= <経理@例え.jp>",
			Subject:    "【至急】御見積書の送付について（2026年11月分）",
			MessageID:  "<20261127100000.12345@mail.example.co.jp>",
			ZipName:    "添付ファイル_20261127.zip",
			Files: []File{
				{Name: "見積書.pdf", Size: 123456, SHA256: sum("pdf")},
				{Name: "内訳 (最終版).xlsx", Size: 0, SHA256: sum("")},
				{Name: "readme.txt", Size: 1 << 40, SHA256: sum("readme")},
			},
			Password:  "Zx9!パスワード-q\"'`;--",
			CreatedAt: time.Date(2026, 11, 27, 9, 59, 58, 123_000_000, time.UTC),
			DueAt:     time.Date(2026, 11, 27, 10, 29, 58, 987_000_000, time.UTC),
		}
		create(t, s, in)
		if in.State != Pending {
			t.Errorf("Create left State %q on the job, want %q", in.State, Pending)
		}

		got := get(t, s, in.ID)
		checks := []struct {
			field     string
			got, want any
		}{
			{"ID", got.ID, in.ID},
			{"State", got.State, Pending},
			{"Sender", got.Sender, in.Sender},
			{"Rcpts", got.Rcpts, in.Rcpts},
			{"HeaderFrom", got.HeaderFrom, in.HeaderFrom},
			{"HeaderTo", got.HeaderTo, in.HeaderTo},
			{"HeaderCc", got.HeaderCc, in.HeaderCc},
			{"Subject", got.Subject, in.Subject},
			{"MessageID", got.MessageID, in.MessageID},
			{"ZipName", got.ZipName, in.ZipName},
			{"Files", got.Files, in.Files},
			{"Password", got.Password, in.Password},
			{"TokenHash", got.TokenHash, []byte(nil)},
			{"FinishedAt.IsZero", got.FinishedAt.IsZero(), true},
			{"Attempts", got.Attempts, 0},
			{"NextAttempt.IsZero", got.NextAttempt.IsZero(), true},
			{"LastError", got.LastError, ""},
			{"NoticeSent", got.NoticeSent, false},
			{"ConfirmSent", got.ConfirmSent, false},
		}
		for _, c := range checks {
			if fmt.Sprintf("%#v", c.got) != fmt.Sprintf("%#v", c.want) {
				t.Errorf("%s = %#v, want %#v", c.field, c.got, c.want)
			}
		}
		if !got.CreatedAt.Equal(in.CreatedAt) {
			t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, in.CreatedAt)
		}
		if !got.DueAt.Equal(in.DueAt) {
			t.Errorf("DueAt = %v, want %v", got.DueAt, in.DueAt)
		}
	})
}

func TestTimesKeepMilliseconds(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		s, _ := be.newStore(t)
		j := job("ms")
		j.CreatedAt = t0.Add(123*time.Millisecond + 456*time.Microsecond + 789)
		j.DueAt = t0.Add(30*time.Minute + 999*time.Millisecond + 999*time.Microsecond)
		create(t, s, j)
		got := get(t, s, "ms")
		if want := j.CreatedAt.Truncate(time.Millisecond); !got.CreatedAt.Equal(want) {
			t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
		}
		if want := j.DueAt.Truncate(time.Millisecond); !got.DueAt.Equal(want) {
			t.Errorf("DueAt = %v, want %v", got.DueAt, want)
		}
	})
}

func TestCreateEmptyLists(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		s, _ := be.newStore(t)
		j := job("empty")
		j.Rcpts, j.Files, j.Password = nil, nil, ""
		create(t, s, j)
		got := get(t, s, "empty")
		if len(got.Rcpts) != 0 || len(got.Files) != 0 || got.Password != "" {
			t.Errorf("got Rcpts %q Files %v Password %q, want all empty", got.Rcpts, got.Files, got.Password)
		}
	})
}

func TestCreateDuplicateID(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		s, _ := be.newStore(t)
		create(t, s, job("dup"))
		j := job("dup")
		j.Password = "another"
		if err := s.Create(context.Background(), j); err == nil {
			t.Fatal("second Create with the same id succeeded")
		}
		if got := get(t, s, "dup").Password; got != "pw-dup" {
			t.Errorf("password after refused duplicate = %q, want the first one", got)
		}
	})
}

func TestGetUnknown(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		s, _ := be.newStore(t)
		if _, err := s.Get(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
	})
}

// dbFiles returns the bytes of the database file and of its -wal file
// (when there is one).
func dbFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	if len(out[path]) == 0 && len(out[path+"-wal"]) == 0 {
		t.Fatalf("no database content at %s", path)
	}
	return out
}

func TestPasswordEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "zipgate.db")
	key, err := LoadKey(filepath.Join(dir, "key"))
	must(t, "LoadKey", err)
	const password = "Hunter2-ひみつ-Xq7pLm3Z"

	s, err := OpenSQLite(ctx, path, key)
	must(t, "OpenSQLite", err)
	j := job("secret")
	j.Password = password
	create(t, s, j)
	// While open (as after a crash) the WAL holds the row.
	for p, b := range dbFiles(t, path) {
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s holds the password in clear while the store is open", p)
		}
	}
	must(t, "Close", s.Close())
	for p, b := range dbFiles(t, path) {
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s holds the password in clear", p)
		}
		if !bytes.Contains(b, []byte("taro@example.co.jp")) && p == path {
			t.Errorf("%s does not hold the sender either: is this the database?", p)
		}
	}

	s = openAt(t, path, key)
	if got := get(t, s, "secret").Password; got != password {
		t.Errorf("Get with the same key: password %q, want %q", got, password)
	}
	must(t, "Close", s.Close())

	other, err := LoadKey(filepath.Join(dir, "other-key"))
	must(t, "LoadKey", err)
	s = openAt(t, path, other)
	_, err = s.Get(ctx, "secret")
	if err == nil {
		t.Fatal("Get with another key file succeeded")
	}
	msg := err.Error()
	for what, secret := range map[string]string{
		"password":       password,
		"raw key":        string(key),
		"hex key":        hex.EncodeToString(key),
		"base64 key":     base64.StdEncoding.EncodeToString(key),
		"raw other key":  string(other),
		"hex other key":  hex.EncodeToString(other),
		"b64 other key":  base64.StdEncoding.EncodeToString(other),
		"hex key prefix": hex.EncodeToString(key[:8]),
	} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains the %s", msg, what)
		}
	}
	if !strings.Contains(msg, "secret") || !strings.Contains(msg, "key") {
		t.Errorf("error %q should name the job and the key file as the cause", msg)
	}
	// The other readers fail the same way, without the secret. (Schedule
	// does not decrypt, so it works; Work then has the job to read.)
	must(t, "Schedule", s.Schedule(ctx, "secret"))
	for name, call := range map[string]func() error{
		"List": func() error { _, err := s.List(ctx, "", 10); return err },
		"Work": func() error { _, err := s.Work(ctx, t0, 10); return err },
	} {
		err := call()
		if err == nil {
			t.Errorf("%s with another key file succeeded", name)
		} else if strings.Contains(err.Error(), password) {
			t.Errorf("%s error %q contains the password", name, err)
		}
	}
}

// A sealed password belongs to its job: copied into another row it does
// not open.
func TestSealedPasswordBoundToJob(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		s, _ := be.newStore(t)
		ctx := context.Background()
		create(t, s, job("a"))
		create(t, s, job("b"))
		err := rawExec(s, `UPDATE jobs SET password = (SELECT password FROM jobs WHERE id = 'a') WHERE id = 'b'`)
		must(t, "copy sealed password", err)
		if _, err := s.Get(ctx, "b"); err == nil || strings.Contains(err.Error(), "pw-a") {
			t.Errorf("Get(b) with a's sealed password = %v, want an error without the password", err)
		}
	})
}

func TestOpenSQLiteRejectsShortKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zipgate.db")
	for _, n := range []int{0, 16, 24, 31, 33} {
		s, err := OpenSQLite(context.Background(), path, bytes.Repeat([]byte{7}, n))
		if err == nil {
			s.Close()
			t.Errorf("OpenSQLite with a %d-byte key succeeded, want an error", n)
		}
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zipgate.key")

	k1, err := LoadKey(path)
	must(t, "LoadKey (create)", err)
	if len(k1) != 32 {
		t.Fatalf("new key has %d bytes, want 32", len(k1))
	}
	if bytes.Equal(k1, make([]byte, 32)) {
		t.Error("new key is all zero")
	}
	fi, err := os.Stat(path)
	must(t, "stat key file", err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	onDisk, err := os.ReadFile(path)
	must(t, "read key file", err)
	if !bytes.Equal(onDisk, k1) {
		t.Error("key file does not hold the returned key")
	}

	k2, err := LoadKey(path)
	must(t, "LoadKey (again)", err)
	if !bytes.Equal(k1, k2) {
		t.Error("second LoadKey returned another key")
	}

	k3, err := LoadKey(filepath.Join(dir, "another.key"))
	must(t, "LoadKey (another file)", err)
	if bytes.Equal(k1, k3) {
		t.Error("two new key files hold the same key")
	}

	for _, n := range []int{0, 16, 31, 33, 64} {
		p := filepath.Join(dir, fmt.Sprintf("bad-%d.key", n))
		content := bytes.Repeat([]byte{'k'}, n)
		must(t, "write bad key", os.WriteFile(p, content, 0o600))
		k, err := LoadKey(p)
		if err == nil {
			t.Errorf("LoadKey of a %d-byte file = %d bytes, nil error; want an error", n, len(k))
			continue
		}
		if n > 0 && strings.Contains(err.Error(), string(content)) {
			t.Errorf("LoadKey error %q shows the file content", err)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, content) {
			t.Errorf("LoadKey changed the %d-byte key file it refused", n)
		}
	}

	if _, err := LoadKey(filepath.Join(dir, "missing-dir", "zipgate.key")); err == nil {
		t.Error("LoadKey in a missing directory succeeded")
	}
}

// Servers and CLIs starting together on a new install all get the one key.
func TestLoadKeyConcurrentCreate(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("zipgate-%d.key", round))
		const n = 4
		keys := make([][]byte, n)
		errs := make([]error, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range n {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				keys[i], errs[i] = LoadKey(path)
			}()
		}
		start.Done()
		done.Wait()
		onDisk, err := os.ReadFile(path)
		must(t, "read key file", err)
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: LoadKey %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], onDisk) {
				t.Fatalf("round %d: LoadKey %d returned a key that is not the one in the file", round, i)
			}
		}
	}
}

func sealedIsNull(t *testing.T, s Store, id string) bool {
	t.Helper()
	var null bool
	err := rawQueryRow(s, `SELECT password IS NULL FROM jobs WHERE id = ?`, id).Scan(&null)
	must(t, "query sealed password", err)
	return null
}

func TestPasswordWipedWhenFinal(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		tests := []struct {
			name  string
			drive func(s Store, id string) error
			state State
			wiped bool
		}{
			{"pending", func(s Store, id string) error { return nil }, Pending, false},
			{"scheduled", func(s Store, id string) error { return s.Schedule(ctx, id) }, Scheduled, false},
			{"sending", func(s Store, id string) error {
				return errors.Join(s.Schedule(ctx, id), s.Claim(ctx, id, t0))
			}, Sending, false},
			{"retry keeps it", func(s Store, id string) error {
				return errors.Join(s.Schedule(ctx, id), s.Claim(ctx, id, t0), s.MarkRetry(ctx, id, t0.Add(time.Minute), "451 try later"))
			}, Scheduled, false},
			{"released", func(s Store, id string) error {
				return errors.Join(s.Schedule(ctx, id), s.Claim(ctx, id, t0), s.MarkReleased(ctx, id, t0))
			}, Released, true},
			{"canceled while pending", func(s Store, id string) error { return s.Cancel(ctx, id, t0) }, Canceled, true},
			{"canceled while scheduled", func(s Store, id string) error {
				return errors.Join(s.Schedule(ctx, id), s.Cancel(ctx, id, t0))
			}, Canceled, true},
			{"failed", func(s Store, id string) error {
				return errors.Join(s.Schedule(ctx, id), s.Claim(ctx, id, t0), s.MarkFailed(ctx, id, t0, "550 refused"))
			}, Failed, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := be.newStore(t)
				j := job("j1")
				create(t, s, j)
				must(t, "drive", tt.drive(s, "j1"))
				got := get(t, s, "j1")
				if got.State != tt.state {
					t.Fatalf("state %s, want %s", got.State, tt.state)
				}
				if tt.wiped {
					if got.Password != "" {
						t.Errorf("Password = %q after %s, want it wiped", got.Password, tt.state)
					}
					if !sealedIsNull(t, s, "j1") {
						t.Error("sealed password is not NULL in the database")
					}
				} else {
					if got.Password != j.Password {
						t.Errorf("Password = %q, want %q kept while open", got.Password, j.Password)
					}
					if sealedIsNull(t, s, "j1") {
						t.Error("sealed password is NULL while the job is open")
					}
				}
			})
		}
	})
}

// Once wiped, the sealed password is not left in the file's free space
// either, where the key file would still open it. A realistic refusal
// text makes the failed row longer than it was, so SQLite writes it
// elsewhere in the page; whether the old row is overwritten depends on how
// full the page is, hence several sizes.
func TestWipedPasswordNotLeftInFile(t *testing.T) {
	const reason = "550 5.1.1 <hanako@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
	ctx := context.Background()
	for _, n := range []int{2, 5, 8, 10, 14} {
		t.Run(fmt.Sprint(n, " jobs"), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "zipgate.db")
			s, err := OpenSQLite(ctx, path, testKey(1))
			must(t, "OpenSQLite", err)
			sealed := map[string][]byte{}
			for i := range n {
				id := fmt.Sprintf("job-%02d", i)
				bring(t, s, job(id), Sending)
				var b []byte
				must(t, "read sealed", s.db.QueryRowContext(ctx, `SELECT password FROM jobs WHERE id = ?`, id).Scan(&b))
				sealed[id] = b
			}
			// As after the WAL was checkpointed, by its size or by a
			// restart: the sealed passwords are in the database file now.
			_, err = s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
			must(t, "checkpoint", err)
			wipes := []func(id string) error{
				func(id string) error { return s.MarkFailed(ctx, id, t0, reason) },
				func(id string) error { return s.MarkReleased(ctx, id, t0) },
				func(id string) error { return s.MarkFailed(ctx, id, t0, reason+reason) },
			}
			wiped := map[string]bool{}
			for k, i := 0, 1; i < n; k, i = k+1, i+3 {
				id := fmt.Sprintf("job-%02d", i)
				must(t, "wipe "+id, wipes[k%len(wipes)](id))
				wiped[id] = true
			}
			must(t, "Close", s.Close())
			files := dbFiles(t, path)
			for id, b := range sealed {
				found := false
				for _, raw := range files {
					found = found || bytes.Contains(raw, b)
				}
				if wiped[id] && found {
					t.Errorf("database still holds the sealed password of %s, wiped when it was final", id)
				}
				if !wiped[id] && !found {
					t.Errorf("sealed password of open job %s not found: the test does not look at the right bytes", id)
				}
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		tests := []struct {
			from State
			want error
		}{
			{Pending, nil},
			{Scheduled, ErrFinished},
			{Sending, ErrSending},
			{Released, ErrAlreadyReleased},
			{Canceled, ErrAlreadyCanceled},
			{Failed, ErrFinished},
		}
		for _, tt := range tests {
			t.Run(string(tt.from), func(t *testing.T) {
				s, _ := be.newStore(t)
				bring(t, s, job("j"), tt.from)
				err := s.Schedule(ctx, "j")
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Errorf("Schedule from %s = %v, want %v", tt.from, err, tt.want)
				}
				want := tt.from
				if tt.from == Pending {
					want = Scheduled
				}
				if got := get(t, s, "j").State; got != want {
					t.Errorf("state %s, want %s", got, want)
				}
			})
		}
		s, _ := be.newStore(t)
		if err := s.Schedule(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Schedule(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestDiscard(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		for _, st := range allStates {
			t.Run(string(st), func(t *testing.T) {
				s, _ := be.newStore(t)
				bring(t, s, job("j"), st)
				must(t, "Discard", s.Discard(ctx, "j"))
				j, err := s.Get(ctx, "j")
				if st == Pending {
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("Get after Discard of a pending job = %v, %v; want ErrNotFound", j, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Discard deleted a %s job: %v", st, err)
				}
				if j.State != st {
					t.Errorf("state %s after Discard, want %s", j.State, st)
				}
			})
		}
		s, _ := be.newStore(t)
		create(t, s, job("keep"))
		must(t, "Discard(unknown)", s.Discard(ctx, "nope"))
		get(t, s, "keep")
	})
}

func TestCancel(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		now := t0.Add(5 * time.Minute)
		tests := []struct {
			from State
			want error
		}{
			{Pending, nil},
			{Scheduled, nil},
			{Sending, ErrSending},
			{Released, ErrAlreadyReleased},
			{Canceled, ErrAlreadyCanceled},
			{Failed, ErrFinished},
		}
		for _, tt := range tests {
			t.Run(string(tt.from), func(t *testing.T) {
				s, _ := be.newStore(t)
				j := job("j")
				bring(t, s, j, tt.from)
				before := get(t, s, "j")
				err := s.Cancel(ctx, "j", now)
				if tt.want == nil {
					if err != nil {
						t.Fatalf("Cancel from %s: %v", tt.from, err)
					}
					got := get(t, s, "j")
					if got.State != Canceled || !got.FinishedAt.Equal(now) || got.Password != "" {
						t.Errorf("after Cancel: state %s finished %v password %q; want canceled, %v, wiped",
							got.State, got.FinishedAt, got.Password, now)
					}
					return
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("Cancel from %s = %v, want %v", tt.from, err, tt.want)
				}
				got := get(t, s, "j")
				if got.State != before.State || !got.FinishedAt.Equal(before.FinishedAt) || got.Password != before.Password {
					t.Errorf("refused Cancel changed the job: state %s→%s finished %v→%v", before.State, got.State, before.FinishedAt, got.FinishedAt)
				}
			})
		}
		s, _ := be.newStore(t)
		if err := s.Cancel(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("Cancel(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestReleaseNow(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		now := t0
		tests := []struct {
			name    string
			from    State
			due     time.Time
			retry   bool // a failed try put next_attempt in the future
			wantErr error
			wantDue time.Time
		}{
			{"scheduled later", Scheduled, t0.Add(30 * time.Minute), false, nil, now},
			{"pending later", Pending, t0.Add(30 * time.Minute), false, nil, now},
			{"already due", Scheduled, t0.Add(-10 * time.Minute), false, nil, t0.Add(-10 * time.Minute)},
			{"after a failed try", Scheduled, t0.Add(-10 * time.Minute), true, nil, t0.Add(-10 * time.Minute)},
			{"sending", Sending, t0.Add(-time.Hour), false, ErrSending, t0.Add(-time.Hour)},
			{"released", Released, t0.Add(-time.Hour), false, ErrAlreadyReleased, t0.Add(-time.Hour)},
			{"canceled", Canceled, t0.Add(30 * time.Minute), false, ErrAlreadyCanceled, t0.Add(30 * time.Minute)},
			{"failed", Failed, t0.Add(-time.Hour), false, ErrFinished, t0.Add(-time.Hour)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := be.newStore(t)
				j := job("j")
				j.DueAt = tt.due
				create(t, s, j)
				switch tt.from {
				case Scheduled:
					must(t, "Schedule", s.Schedule(ctx, "j"))
					if tt.retry {
						must(t, "Claim", s.Claim(ctx, "j", t0.Add(-time.Minute)))
						must(t, "MarkRetry", s.MarkRetry(ctx, "j", t0.Add(20*time.Minute), "451"))
					}
				case Sending, Released, Failed:
					must(t, "Schedule", s.Schedule(ctx, "j"))
					must(t, "Claim", s.Claim(ctx, "j", t0))
					if tt.from == Released {
						must(t, "MarkReleased", s.MarkReleased(ctx, "j", t0))
					}
					if tt.from == Failed {
						must(t, "MarkFailed", s.MarkFailed(ctx, "j", t0, "550"))
					}
				case Canceled:
					must(t, "Cancel", s.Cancel(ctx, "j", t0))
				}
				err := s.ReleaseNow(ctx, "j", now)
				if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReleaseNow = %v, want %v", err, tt.wantErr)
				}
				got := get(t, s, "j")
				if !got.DueAt.Equal(tt.wantDue) {
					t.Errorf("DueAt = %v, want %v", got.DueAt, tt.wantDue)
				}
				if got.State != tt.from {
					t.Errorf("state %s, want %s", got.State, tt.from)
				}
				if tt.from == Scheduled {
					// What the user asked for: it goes at the next pass.
					if err := s.Claim(ctx, "j", now); err != nil {
						t.Errorf("Claim right after ReleaseNow: %v", err)
					}
				}
			})
		}
		s, _ := be.newStore(t)
		if err := s.ReleaseNow(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReleaseNow(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestClaim(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		// Every error Claim may give for a job it must not send; the
		// scheduler skips all of them.
		notNow := []error{ErrFinished, ErrSending, ErrAlreadyCanceled, ErrAlreadyReleased}
		tests := []struct {
			name  string
			due   time.Time
			setup func(t *testing.T, s Store) // the job "j" is created pending
			ok    bool
		}{
			{"due", t0.Add(-time.Minute), func(t *testing.T, s Store) { must(t, "Schedule", s.Schedule(ctx, "j")) }, true},
			{"due exactly now", t0, func(t *testing.T, s Store) { must(t, "Schedule", s.Schedule(ctx, "j")) }, true},
			{"not yet due", t0.Add(time.Millisecond), func(t *testing.T, s Store) { must(t, "Schedule", s.Schedule(ctx, "j")) }, false},
			{"pending", t0.Add(-time.Minute), func(t *testing.T, s Store) {}, false},
			{"retry not yet", t0.Add(-time.Hour), func(t *testing.T, s Store) {
				must(t, "Schedule", s.Schedule(ctx, "j"))
				must(t, "Claim", s.Claim(ctx, "j", t0.Add(-time.Hour)))
				must(t, "MarkRetry", s.MarkRetry(ctx, "j", t0.Add(time.Second), "451"))
			}, false},
			{"retry due", t0.Add(-time.Hour), func(t *testing.T, s Store) {
				must(t, "Schedule", s.Schedule(ctx, "j"))
				must(t, "Claim", s.Claim(ctx, "j", t0.Add(-time.Hour)))
				must(t, "MarkRetry", s.MarkRetry(ctx, "j", t0, "451"))
			}, true},
			{"canceled", t0.Add(-time.Minute), func(t *testing.T, s Store) { must(t, "Cancel", s.Cancel(ctx, "j", t0.Add(-time.Second))) }, false},
			{"released", t0.Add(-time.Minute), func(t *testing.T, s Store) {
				must(t, "Schedule", s.Schedule(ctx, "j"))
				must(t, "Claim", s.Claim(ctx, "j", t0.Add(-time.Second)))
				must(t, "MarkReleased", s.MarkReleased(ctx, "j", t0.Add(-time.Second)))
			}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := be.newStore(t)
				j := job("j")
				j.DueAt = tt.due
				create(t, s, j)
				tt.setup(t, s)
				before := get(t, s, "j").State
				err := s.Claim(ctx, "j", t0)
				if tt.ok {
					if err != nil {
						t.Fatalf("Claim: %v", err)
					}
					if got := get(t, s, "j").State; got != Sending {
						t.Errorf("state %s after Claim, want sending", got)
					}
					if err := s.Claim(ctx, "j", t0); !errors.Is(err, ErrSending) {
						t.Errorf("second Claim = %v, want ErrSending", err)
					}
					return
				}
				if err == nil || !slices.ContainsFunc(notNow, func(e error) bool { return errors.Is(err, e) }) {
					t.Errorf("Claim = %v, want one of %v", err, notNow)
				}
				if got := get(t, s, "j").State; got != before {
					t.Errorf("refused Claim moved the job from %s to %s", before, got)
				}
			})
		}
		s, _ := be.newStore(t)
		if err := s.Claim(ctx, "nope", t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Claim(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestMarkOnlyFromSending(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		marks := map[string]func(s Store) error{
			"MarkReleased": func(s Store) error { return s.MarkReleased(ctx, "j", t0) },
			"MarkRetry":    func(s Store) error { return s.MarkRetry(ctx, "j", t0.Add(time.Minute), "451") },
			"MarkFailed":   func(s Store) error { return s.MarkFailed(ctx, "j", t0, "550") },
		}
		for name, mark := range marks {
			for _, st := range allStates {
				if st == Sending {
					continue
				}
				t.Run(name+"/"+string(st), func(t *testing.T) {
					s, _ := be.newStore(t)
					bring(t, s, job("j"), st)
					before := get(t, s, "j")
					if err := mark(s); err == nil {
						t.Fatalf("%s from %s succeeded", name, st)
					}
					got := get(t, s, "j")
					if got.State != before.State || got.Attempts != before.Attempts || got.LastError != before.LastError ||
						!got.FinishedAt.Equal(before.FinishedAt) || got.Password != before.Password {
						t.Errorf("refused %s changed the job: %+v → %+v", name, before, got)
					}
				})
			}
			t.Run(name+"/unknown", func(t *testing.T) {
				s, _ := be.newStore(t)
				if err := mark(s); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s(unknown) = %v, want ErrNotFound", name, err)
				}
			})
		}
	})
}

func TestMarkRetryThenRelease(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		j := job("j")
		bring(t, s, j, Sending)

		next1 := t0.Add(30 * time.Second)
		must(t, "MarkRetry 1", s.MarkRetry(ctx, "j", next1, "451 4.3.0 try later"))
		got := get(t, s, "j")
		if got.State != Scheduled || got.Attempts != 1 || !got.NextAttempt.Equal(next1) || got.LastError != "451 4.3.0 try later" {
			t.Fatalf("after MarkRetry: state %s attempts %d next %v error %q", got.State, got.Attempts, got.NextAttempt, got.LastError)
		}
		if got.Password != j.Password || !got.FinishedAt.IsZero() {
			t.Errorf("after MarkRetry: password %q finished %v; want kept, zero", got.Password, got.FinishedAt)
		}
		if err := s.Claim(ctx, "j", next1.Add(-time.Millisecond)); err == nil {
			t.Fatal("Claim before NextAttempt succeeded")
		}
		must(t, "Claim at NextAttempt", s.Claim(ctx, "j", next1))

		next2 := next1.Add(time.Minute)
		must(t, "MarkRetry 2", s.MarkRetry(ctx, "j", next2, "421 busy"))
		got = get(t, s, "j")
		if got.Attempts != 2 || !got.NextAttempt.Equal(next2) || got.LastError != "421 busy" {
			t.Fatalf("after second MarkRetry: attempts %d next %v error %q", got.Attempts, got.NextAttempt, got.LastError)
		}
		must(t, "Claim", s.Claim(ctx, "j", next2))
		done := next2.Add(time.Second)
		must(t, "MarkReleased", s.MarkReleased(ctx, "j", done))
		got = get(t, s, "j")
		if got.State != Released || !got.FinishedAt.Equal(done) || got.LastError != "" || got.Attempts != 2 || got.Password != "" {
			t.Errorf("after MarkReleased: state %s finished %v error %q attempts %d password %q",
				got.State, got.FinishedAt, got.LastError, got.Attempts, got.Password)
		}
	})
}

func TestMarkFailed(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		bring(t, s, job("j"), Sending)
		now := t0.Add(time.Second)
		must(t, "MarkFailed", s.MarkFailed(ctx, "j", now, "550 5.1.1 user unknown"))
		got := get(t, s, "j")
		if got.State != Failed || !got.FinishedAt.Equal(now) || got.LastError != "550 5.1.1 user unknown" || got.Attempts != 1 || got.Password != "" {
			t.Errorf("after MarkFailed: state %s finished %v error %q attempts %d password %q",
				got.State, got.FinishedAt, got.LastError, got.Attempts, got.Password)
		}
		if err := s.Cancel(ctx, "j", now); err == nil {
			t.Error("Cancel after MarkFailed succeeded")
		}
	})
}

// Two processes (the server's scheduler and a CLI, or two schedulers)
// race to claim the same due jobs: each job goes to exactly one.
func TestClaimConcurrentOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		a, path := be.newStore(t)
		b := be.reopen(t, path)
		const n = 40
		for i := range n {
			id := fmt.Sprintf("job-%02d", i)
			create(t, a, job(id))
			must(t, "Schedule", a.Schedule(ctx, id))
		}
		handles := []Store{a, b, a, b}
		wins := make([][]string, len(handles))
		errs := make([][]error, len(handles))
		var start, done sync.WaitGroup
		start.Add(1)
		for h, s := range handles {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				for i := range n {
					id := fmt.Sprintf("job-%02d", i)
					err := s.Claim(ctx, id, t0)
					switch {
					case err == nil:
						wins[h] = append(wins[h], id)
					case errors.Is(err, ErrSending):
					default:
						errs[h] = append(errs[h], fmt.Errorf("%s: %w", id, err))
					}
				}
			}()
		}
		start.Done()
		done.Wait()
		claimed := map[string]int{}
		for h := range handles {
			for _, err := range errs[h] {
				t.Errorf("handle %d: Claim: %v", h, err)
			}
			for _, id := range wins[h] {
				claimed[id]++
			}
		}
		for i := range n {
			id := fmt.Sprintf("job-%02d", i)
			if claimed[id] != 1 {
				t.Errorf("%s claimed %d times, want exactly once", id, claimed[id])
			}
			if st := get(t, a, id).State; st != Sending {
				t.Errorf("%s is %s, want sending", id, st)
			}
		}
	})
}

// Two schedulers on two handles work the same jobs to the end: each
// password is released once, the release of the other is refused.
func TestTwoSchedulersReleaseOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		a, path := be.newStore(t)
		b := be.reopen(t, path)
		const n = 25
		for i := range n {
			id := fmt.Sprintf("job-%02d", i)
			j := job(id)
			j.DueAt = t0.Add(-time.Duration(i) * time.Second)
			create(t, a, j)
			must(t, "Schedule", a.Schedule(ctx, id))
			must(t, "MarkNoticeSent", a.MarkNoticeSent(ctx, id))
		}
		var mu sync.Mutex
		released := map[string]int{}
		var wg sync.WaitGroup
		for _, s := range []Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				jobs, err := s.Work(ctx, t0, 100)
				if err != nil {
					t.Errorf("Work: %v", err)
					return
				}
				for _, j := range jobs {
					if j.State != Scheduled {
						continue
					}
					if err := s.Claim(ctx, j.ID, t0); err != nil {
						continue
					}
					if j.Password != "pw-"+j.ID {
						t.Errorf("%s: password %q", j.ID, j.Password)
					}
					mu.Lock()
					released[j.ID]++
					mu.Unlock()
					if err := s.MarkReleased(ctx, j.ID, t0); err != nil {
						t.Errorf("MarkReleased(%s): %v", j.ID, err)
					}
				}
			}()
		}
		wg.Wait()
		if len(released) != n {
			t.Errorf("%d jobs released, want %d", len(released), n)
		}
		for id, c := range released {
			if c != 1 {
				t.Errorf("%s released %d times", id, c)
			}
		}
	})
}

func TestRecover(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		for _, st := range allStates {
			bring(t, s, job(string(st)), st)
		}
		be.restart(s) // with several nodes: once the stopped node's leases ran out
		n, err := s.Recover(ctx)
		must(t, "Recover", err)
		if n != 1 {
			t.Errorf("Recover = %d, want 1 (sending)", n)
		}
		// A pending job waits for Postfix's retry of its message, which
		// reuses it: promoting it would send a password for a zip that may
		// never have left.
		want := map[State]State{
			Pending: Pending, Sending: Scheduled, Scheduled: Scheduled,
			Released: Released, Canceled: Canceled, Failed: Failed,
		}
		for from, to := range want {
			j := get(t, s, string(from))
			if j.State != to {
				t.Errorf("job left %s is %s after Recover, want %s", from, j.State, to)
			}
			if to == Scheduled && j.Password != "pw-"+string(from) {
				t.Errorf("job left %s lost its password: %q", from, j.Password)
			}
		}
		n, err = s.Recover(ctx)
		must(t, "Recover again", err)
		if n != 0 {
			t.Errorf("second Recover = %d, want 0", n)
		}
	})
}

func TestWork(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		type spec struct {
			id          string
			due         time.Time
			state       State
			retryAt     time.Time // scheduled after a failed try until then
			noticeSent  bool
			confirmSent bool
		}
		specs := []spec{
			{id: "due", due: t0.Add(-10 * time.Minute), state: Scheduled, noticeSent: true},
			{id: "due-now", due: t0, state: Scheduled, noticeSent: true},
			{id: "future", due: t0.Add(time.Minute), state: Scheduled, noticeSent: true},
			{id: "retry-later", due: t0.Add(-20 * time.Minute), state: Scheduled, retryAt: t0.Add(time.Minute), noticeSent: true},
			{id: "retry-due", due: t0.Add(-30 * time.Minute), state: Scheduled, retryAt: t0, noticeSent: true},
			{id: "notice-owed", due: t0.Add(time.Hour), state: Scheduled},
			{id: "pending", due: t0.Add(-time.Hour), state: Pending},
			{id: "sending", due: t0.Add(-time.Hour), state: Sending},
			{id: "released-confirm-owed", due: t0.Add(-2 * time.Hour), state: Released, noticeSent: true},
			{id: "released-done", due: t0.Add(-2 * time.Hour), state: Released, noticeSent: true, confirmSent: true},
			{id: "canceled-before-notice", due: t0.Add(2 * time.Hour), state: Canceled, confirmSent: true},
			{id: "canceled-done", due: t0.Add(-3 * time.Hour), state: Canceled, noticeSent: true, confirmSent: true},
			{id: "failed-confirm-owed", due: t0.Add(-4 * time.Hour), state: Failed, noticeSent: true},
		}
		for _, sp := range specs {
			j := job(sp.id)
			j.DueAt = sp.due
			create(t, s, j)
			if sp.state != Pending {
				must(t, "Schedule", s.Schedule(ctx, sp.id))
			}
			switch sp.state {
			case Sending, Released, Failed:
				must(t, "Claim", s.Claim(ctx, sp.id, sp.due))
			case Canceled:
				must(t, "Cancel", s.Cancel(ctx, sp.id, t0.Add(-time.Hour)))
			}
			switch sp.state {
			case Released:
				must(t, "MarkReleased", s.MarkReleased(ctx, sp.id, sp.due))
			case Failed:
				must(t, "MarkFailed", s.MarkFailed(ctx, sp.id, sp.due, "550"))
			}
			if !sp.retryAt.IsZero() {
				must(t, "Claim", s.Claim(ctx, sp.id, sp.due))
				must(t, "MarkRetry", s.MarkRetry(ctx, sp.id, sp.retryAt, "451"))
			}
			if sp.noticeSent {
				must(t, "MarkNoticeSent", s.MarkNoticeSent(ctx, sp.id))
			}
			if sp.confirmSent {
				must(t, "MarkConfirmSent", s.MarkConfirmSent(ctx, sp.id))
			}
			if got := get(t, s, sp.id).State; got != sp.state {
				t.Fatalf("%s: state %s, want %s", sp.id, got, sp.state)
			}
		}

		work := func(limit int) []string {
			t.Helper()
			jobs, err := s.Work(ctx, t0, limit)
			must(t, "Work", err)
			return ids(jobs)
		}
		// Oldest (by due time) first.
		want := []string{"failed-confirm-owed", "released-confirm-owed", "retry-due", "due", "due-now", "notice-owed", "canceled-before-notice"}
		if got := work(100); !slices.Equal(got, want) {
			t.Fatalf("Work = %q,\nwant   %q", got, want)
		}
		if got := work(3); !slices.Equal(got, want[:3]) {
			t.Errorf("Work(limit 3) = %q, want %q", got, want[:3])
		}
		jobs, err := s.Work(ctx, t0, 100)
		must(t, "Work", err)
		for _, j := range jobs {
			if j.State == Scheduled && j.Password != "pw-"+j.ID {
				t.Errorf("Work gave %s without its password: %q", j.ID, j.Password)
			}
		}

		// Later, the future job is due too, and the retry.
		later, err := s.Work(ctx, t0.Add(time.Minute), 100)
		must(t, "Work later", err)
		for _, id := range []string{"future", "retry-later"} {
			if !slices.Contains(ids(later), id) {
				t.Errorf("Work a minute later = %q, misses %s", ids(later), id)
			}
		}

		must(t, "MarkNoticeSent", s.MarkNoticeSent(ctx, "notice-owed"))
		must(t, "MarkNoticeSent", s.MarkNoticeSent(ctx, "canceled-before-notice"))
		must(t, "MarkConfirmSent", s.MarkConfirmSent(ctx, "released-confirm-owed"))
		must(t, "MarkConfirmSent", s.MarkConfirmSent(ctx, "failed-confirm-owed"))
		if got, want := work(100), []string{"retry-due", "due", "due-now"}; !slices.Equal(got, want) {
			t.Errorf("Work after notices = %q, want %q", got, want)
		}
		for _, id := range []string{"retry-due", "due", "due-now"} {
			must(t, "Claim", s.Claim(ctx, id, t0))
		}
		if got := work(100); len(got) != 0 {
			t.Errorf("Work with everything claimed = %q, want none", got)
		}
		// Once released, the confirmation is owed.
		must(t, "MarkReleased", s.MarkReleased(ctx, "due", t0))
		if got, want := work(100), []string{"due"}; !slices.Equal(got, want) {
			t.Errorf("Work after a release = %q, want %q", got, want)
		}
	})
}

func TestNextWake(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		wake := func() time.Time {
			t.Helper()
			w, err := s.NextWake(ctx)
			must(t, "NextWake", err)
			return w
		}
		if w := wake(); !w.IsZero() {
			t.Errorf("NextWake of an empty store = %v, want zero", w)
		}

		// A pending job needs nothing until it is scheduled.
		j := job("pending")
		j.DueAt = t0.Add(-time.Hour)
		create(t, s, j)
		if w := wake(); !w.IsZero() {
			t.Errorf("NextWake with a pending job = %v, want zero", w)
		}

		for _, sp := range []struct {
			id  string
			due time.Time
		}{{"in-2h", t0.Add(2 * time.Hour)}, {"in-1h", t0.Add(time.Hour)}} {
			j := job(sp.id)
			j.DueAt = sp.due
			create(t, s, j)
			must(t, "Schedule", s.Schedule(ctx, sp.id))
		}
		// Notices owed for both scheduled jobs: work now.
		if w := wake(); w.IsZero() || w.After(t0) {
			t.Errorf("NextWake with notices owed = %v, want a time not after %v", w, t0)
		}
		must(t, "MarkNoticeSent", s.MarkNoticeSent(ctx, "in-2h"))
		must(t, "MarkNoticeSent", s.MarkNoticeSent(ctx, "in-1h"))
		if w := wake(); !w.Equal(t0.Add(time.Hour)) {
			t.Errorf("NextWake = %v, want %v", w, t0.Add(time.Hour))
		}

		// A failed try pushes the earlier job after the other one.
		must(t, "Claim", s.Claim(ctx, "in-1h", t0.Add(time.Hour)))
		must(t, "MarkRetry", s.MarkRetry(ctx, "in-1h", t0.Add(3*time.Hour), "451"))
		if w := wake(); !w.Equal(t0.Add(2 * time.Hour)) {
			t.Errorf("NextWake after a retry = %v, want %v (max of due and next attempt)", w, t0.Add(2*time.Hour))
		}
		// A final job owes its confirmation: work now.
		must(t, "Cancel", s.Cancel(ctx, "in-2h", t0))
		if w := wake(); w.IsZero() || w.After(t0) {
			t.Errorf("NextWake with a confirmation owed = %v, want a time not after %v", w, t0)
		}
		must(t, "MarkConfirmSent", s.MarkConfirmSent(ctx, "in-2h"))
		if w := wake(); !w.Equal(t0.Add(3 * time.Hour)) {
			t.Errorf("NextWake = %v, want %v", w, t0.Add(3*time.Hour))
		}
		// Claimed: being sent, nothing to wake for.
		must(t, "Claim", s.Claim(ctx, "in-1h", t0.Add(3*time.Hour)))
		if w := wake(); !w.IsZero() {
			t.Errorf("NextWake with the only job sending = %v, want zero", w)
		}
	})
}

func TestToken(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		create(t, s, job("a"))
		create(t, s, job("b"))
		ha := sha256.Sum256([]byte("token-a"))
		hb := sha256.Sum256([]byte("token-b"))
		must(t, "SetToken a", s.SetToken(ctx, "a", ha[:]))
		must(t, "SetToken b", s.SetToken(ctx, "b", hb[:]))

		for id, h := range map[string][]byte{"a": ha[:], "b": hb[:]} {
			j, err := s.ByToken(ctx, h)
			if err != nil {
				t.Fatalf("ByToken(%s): %v", id, err)
			}
			if j.ID != id || !bytes.Equal(j.TokenHash, h) || j.Password != "pw-"+id {
				t.Errorf("ByToken(%s) = job %s hash %x password %q", id, j.ID, j.TokenHash, j.Password)
			}
		}
		unknown := sha256.Sum256([]byte("token-x"))
		for name, h := range map[string][]byte{"unknown": unknown[:], "nil": nil, "empty": {}, "prefix": ha[:16]} {
			if j, err := s.ByToken(ctx, h); !errors.Is(err, ErrNotFound) {
				t.Errorf("ByToken(%s) = %v, %v; want ErrNotFound", name, j, err)
			}
		}

		// A new notice replaces the token: the old link stops working.
		ha2 := sha256.Sum256([]byte("token-a-2"))
		must(t, "SetToken a again", s.SetToken(ctx, "a", ha2[:]))
		if _, err := s.ByToken(ctx, ha[:]); !errors.Is(err, ErrNotFound) {
			t.Errorf("ByToken(old hash) = %v, want ErrNotFound", err)
		}
		if j, err := s.ByToken(ctx, ha2[:]); err != nil || j.ID != "a" {
			t.Errorf("ByToken(new hash) = %v, %v; want job a", j, err)
		}

		// The page still shows a finished job, without the password.
		must(t, "Cancel", s.Cancel(ctx, "a", t0))
		if j, err := s.ByToken(ctx, ha2[:]); err != nil || j.State != Canceled || j.Password != "" {
			t.Errorf("ByToken after cancel = %+v, %v", j, err)
		}

		if err := s.SetToken(ctx, "nope", unknown[:]); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetToken(unknown job) = %v, want ErrNotFound", err)
		}
		if _, err := s.ByToken(ctx, unknown[:]); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetToken on an unknown job made its hash known: %v", err)
		}
	})
}

func TestList(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		// Created a minute apart, "j0" the oldest.
		states := []State{Scheduled, Released, Scheduled, Canceled, Pending, Scheduled}
		for i, st := range states {
			j := job(fmt.Sprintf("j%d", i))
			j.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
			bring(t, s, j, st)
		}
		tests := []struct {
			state State
			limit int
			want  []string
		}{
			{"", 100, []string{"j5", "j4", "j3", "j2", "j1", "j0"}},
			{"", 2, []string{"j5", "j4"}},
			{Scheduled, 100, []string{"j5", "j2", "j0"}},
			{Scheduled, 1, []string{"j5"}},
			{Released, 100, []string{"j1"}},
			{Canceled, 100, []string{"j3"}},
			{Pending, 100, []string{"j4"}},
			{Failed, 100, []string{}},
			{Sending, 100, []string{}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%d", cmpOr(string(tt.state), "all"), tt.limit), func(t *testing.T) {
				jobs, err := s.List(ctx, tt.state, tt.limit)
				must(t, "List", err)
				if got := ids(jobs); !slices.Equal(got, tt.want) {
					t.Errorf("List(%q, %d) = %q, want %q", tt.state, tt.limit, got, tt.want)
				}
				for _, j := range jobs {
					if tt.state != "" && j.State != tt.state {
						t.Errorf("List(%q) gave %s in state %s", tt.state, j.ID, j.State)
					}
				}
			})
		}
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		cutoff := t0.Add(-30 * 24 * time.Hour)
		old := cutoff.Add(-time.Hour)
		recent := cutoff.Add(time.Hour)

		finish := func(id string, st State, at time.Time) {
			t.Helper()
			j := job(id)
			j.CreatedAt, j.DueAt = at.Add(-time.Hour), at.Add(-time.Minute)
			create(t, s, j)
			must(t, "Schedule", s.Schedule(ctx, id))
			switch st {
			case Released:
				must(t, "Claim", s.Claim(ctx, id, at))
				must(t, "MarkReleased", s.MarkReleased(ctx, id, at))
			case Failed:
				must(t, "Claim", s.Claim(ctx, id, at))
				must(t, "MarkFailed", s.MarkFailed(ctx, id, at, "550"))
			case Canceled:
				must(t, "Cancel", s.Cancel(ctx, id, at))
			}
		}
		finish("old-released", Released, old)
		finish("old-canceled", Canceled, old)
		finish("old-failed", Failed, old)
		finish("recent-released", Released, recent)
		finish("recent-canceled", Canceled, recent)
		// Scheduled and sending jobs stay however old they are.
		finish("old-scheduled", Scheduled, old)
		j := job("old-pending")
		j.CreatedAt, j.DueAt = old.Add(-time.Hour), old
		create(t, s, j)
		finish("old-sending", Scheduled, old)
		must(t, "Claim", s.Claim(ctx, "old-sending", old))
		// Retried long ago, still open.
		finish("old-retry", Scheduled, old)
		must(t, "Claim", s.Claim(ctx, "old-retry", old))
		must(t, "MarkRetry", s.MarkRetry(ctx, "old-retry", old.Add(time.Minute), "451"))

		n, err := s.Purge(ctx, cutoff)
		must(t, "Purge", err)
		if n != 4 {
			t.Errorf("Purge = %d, want 4", n)
		}
		all, err := s.List(ctx, "", 100)
		must(t, "List", err)
		got := ids(all)
		slices.Sort(got)
		// A job pending that long belongs to a message Postfix gave up on.
		want := []string{"old-retry", "old-scheduled", "old-sending", "recent-canceled", "recent-released"}
		if !slices.Equal(got, want) {
			t.Errorf("after Purge: %q, want %q", got, want)
		}
		n, err = s.Purge(ctx, cutoff)
		must(t, "Purge again", err)
		if n != 0 {
			t.Errorf("second Purge = %d, want 0", n)
		}
	})
}

func schemaVersions(t *testing.T, s *SQLite) []int {
	t.Helper()
	rows, err := s.db.Query(`SELECT version FROM schema_version ORDER BY version`)
	must(t, "query schema_version", err)
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		must(t, "scan", rows.Scan(&v))
		out = append(out, v)
	}
	must(t, "rows", rows.Err())
	return out
}

// allVersions is what a fully migrated database records: 1..n, once each.
func allVersions() []int {
	v := make([]int, len(migrations))
	for i := range v {
		v[i] = i + 1
	}
	return v
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zipgate.db")
	s, err := OpenSQLite(ctx, path, testKey(1))
	must(t, "first open", err)
	create(t, s, job("kept"))
	if v := schemaVersions(t, s); !slices.Equal(v, allVersions()) {
		t.Errorf("schema_version after first open = %v, want %v", v, allVersions())
	}
	must(t, "Close", s.Close())

	s, err = OpenSQLite(ctx, path, testKey(1))
	must(t, "second open", err)
	if v := schemaVersions(t, s); !slices.Equal(v, allVersions()) {
		t.Errorf("schema_version after second open = %v, want %v", v, allVersions())
	}
	if got := get(t, s, "kept").Password; got != "pw-kept" {
		t.Errorf("job after reopening: password %q", got)
	}
	var mode string
	must(t, "journal_mode", s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	var sync int
	must(t, "synchronous", s.db.QueryRow(`PRAGMA synchronous`).Scan(&sync))
	if sync != 2 {
		t.Errorf("synchronous %d, want 2 (FULL)", sync)
	}

	// A newer zipgate migrated this file; this one must not touch it.
	newer := len(migrations) + 1
	_, err = s.db.Exec(`INSERT INTO schema_version (version) VALUES (?)`, newer)
	must(t, "bump version", err)
	must(t, "Close", s.Close())
	s, err = OpenSQLite(ctx, path, testKey(1))
	if err == nil {
		s.Close()
		t.Fatal("open of a database with a newer schema succeeded")
	}
	for _, want := range []string{path, strconv.Itoa(newer), "newer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// The server and a CLI started together on a new install both migrate.
//
// The file is made a WAL database first: SQLite answers SQLITE_BUSY at
// once, without waiting, to a connection that wants to turn a database
// into WAL while another does the same, so two processes opening a file
// that does not exist yet can still fail that way; OpenSQLite does not
// retry that, and this test is about the migrations.
func TestConcurrentFirstOpen(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("zipgate-%d.db", round))
		db, err := sql.Open("sqlite", path)
		must(t, "sql.Open", err)
		var mode string
		must(t, "journal_mode", db.QueryRow(`PRAGMA journal_mode=WAL`).Scan(&mode))
		must(t, "Close", db.Close())
		const n = 4
		stores := make([]*SQLite, n)
		errs := make([]error, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range n {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				stores[i], errs[i] = OpenSQLite(context.Background(), path, testKey(1))
			}()
		}
		start.Done()
		done.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: open %d: %v", round, i, errs[i])
			}
			t.Cleanup(func() { stores[i].Close() })
		}
		if v := schemaVersions(t, stores[0]); !slices.Equal(v, allVersions()) {
			t.Fatalf("round %d: schema_version = %v, want %v", round, v, allVersions())
		}
	}
}

// The CLI opens its own handle on the server's file: each sees the
// other's changes at once.
func TestSecondHandleSeesChanges(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		server, path := be.newStore(t)
		cli := be.reopen(t, path)

		j := job("c")
		j.DueAt = t0.Add(time.Hour)
		create(t, server, j)
		must(t, "Schedule", server.Schedule(ctx, "c"))
		// Let the server's handle read the job first, so it has it cached if
		// it caches anything.
		if got := get(t, server, "c").State; got != Scheduled {
			t.Fatalf("state %s", got)
		}
		if got := get(t, cli, "c"); got.State != Scheduled || got.Password != "pw-c" {
			t.Fatalf("CLI sees state %s password %q", got.State, got.Password)
		}

		must(t, "CLI Cancel", cli.Cancel(ctx, "c", t0))
		if got := get(t, server, "c"); got.State != Canceled || got.Password != "" {
			t.Errorf("server sees state %s password %q after CLI cancel", got.State, got.Password)
		}
		must(t, "MarkNoticeSent", server.MarkNoticeSent(ctx, "c"))
		must(t, "MarkConfirmSent", server.MarkConfirmSent(ctx, "c"))

		// Release now from the CLI: the server's next pass finds it due.
		r := job("r")
		r.DueAt = t0.Add(time.Hour)
		create(t, server, r)
		must(t, "Schedule", server.Schedule(ctx, "r"))
		must(t, "MarkNoticeSent", server.MarkNoticeSent(ctx, "r"))
		w, err := server.NextWake(ctx)
		must(t, "NextWake", err)
		if !w.Equal(t0.Add(time.Hour)) {
			t.Errorf("NextWake = %v, want %v", w, t0.Add(time.Hour))
		}
		must(t, "CLI ReleaseNow", cli.ReleaseNow(ctx, "r", t0))
		jobs, err := server.Work(ctx, t0, 10)
		must(t, "Work", err)
		if !slices.Contains(ids(jobs), "r") {
			t.Errorf("server Work after CLI release now = %q, misses r", ids(jobs))
		}

		// The server claims; the CLI's cancel is refused while it sends.
		must(t, "server Claim", server.Claim(ctx, "r", t0))
		if err := cli.Cancel(ctx, "r", t0); !errors.Is(err, ErrSending) {
			t.Errorf("CLI Cancel while sending = %v, want ErrSending", err)
		}
		must(t, "server MarkReleased", server.MarkReleased(ctx, "r", t0))
		if err := cli.Cancel(ctx, "r", t0); !errors.Is(err, ErrAlreadyReleased) {
			t.Errorf("CLI Cancel after release = %v, want ErrAlreadyReleased", err)
		}
		list, err := cli.List(ctx, Released, 10)
		must(t, "CLI List", err)
		if got := ids(list); !slices.Equal(got, []string{"r"}) {
			t.Errorf("CLI List(released) = %q, want [r]", got)
		}
	})
}

// Paths are file names, not URIs: characters that mean something in a
// URI must not change which file is opened.
func TestOpenPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"zip gate.db", "zip#gate.db", "zip?gate.db", "zip%41gate.db", "zip%gate.db", "ジップ.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			s := openAt(t, path, testKey(1))
			create(t, s, job("j"))
			must(t, "Close", s.Close())
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database not at %q: %v", path, err)
			}
			s = openAt(t, path, testKey(1))
			get(t, s, "j")
		})
	}
}

// The database and the -wal and -shm files beside it hold subjects,
// recipients and file names: 0600 from the first start, whatever the
// umask (issue 11, finding 8).
func TestFilesAreForTheOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "zipgate.db")
	s := openAt(t, path, testKey(1))
	create(t, s, job("j")) // the WAL has something in it
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(f), fi.Mode().Perm())
		}
	}
}
