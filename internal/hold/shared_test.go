package hold

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// With a store several nodes share, a message one node held is read by
// another (which sends it after the first died), whole, through a spool
// that keeps memory bounded; and it goes when removed.
func TestSharedDirAcrossNodes(t *testing.T) {
	url := pgtest.Shared(t).NewSchema(t)
	open := func() *store.Postgres {
		s, err := store.OpenPostgresKey(context.Background(), store.PostgresOptions{URL: url}, bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	tmp := t.TempDir()
	one := NewSharedDir(open().Blobs(store.BlobHeld), tmp)
	two := NewSharedDir(open().Blobs(store.BlobHeld), tmp)

	msg := make([]byte, 3<<20) // larger than what Open keeps in memory
	rand.Read(msg)
	msg = append([]byte("Subject: held\r\n\r\n"), msg...)
	if err := one.Save("abc", bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if !two.Has("abc") || two.Has("abd") {
		t.Fatal("Has does not see what the other node held")
	}
	f, err := two.Open(context.Background(), "abc")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f.Reader())
	onDisk := f.OnDisk()
	f.Close()
	if !bytes.Equal(got, msg) {
		t.Fatalf("the other node read %d bytes, want the %d held", len(got), len(msg))
	}
	if !onDisk {
		t.Error("a 3 MiB message was read into memory, not spooled")
	}
	if err := two.Remove("abc"); err != nil || one.Has("abc") {
		t.Fatalf("remove: %v", err)
	}
	if err := one.Remove("abc"); err != nil {
		t.Errorf("a second remove: %v", err)
	}
	if _, err := one.Open(context.Background(), "abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a removed message: %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b"} {
		if err := one.Save(bad, strings.NewReader("x")); err == nil {
			t.Errorf("saved under %q", bad)
		}
	}
}

// A held message due to leave while its bytes cannot be read (the
// database stops answering the node that reads them) is not failed for
// good as if its bytes were lost: it waits with backoff and leaves at
// the next try, once the database answers again.
func TestSharedHeldReadWhileTheDatabaseIsOutOfReachIsRetried(t *testing.T) {
	ctx := context.Background()
	c := pgtest.Shared(t)
	url := c.NewSchema(t)
	st, err := store.OpenPostgresKey(ctx, store.PostgresOptions{URL: url}, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The bytes are read through a proxy that will freeze, with a short
	// timeout: the store gives the read up after a second.
	proxy := c.Proxy(t)
	far, err := store.OpenPostgresKey(ctx, store.PostgresOptions{URL: proxy.Via(url), Timeout: time.Second}, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { far.Close() })
	dir := NewSharedDir(far.Blobs(store.BlobHeld), t.TempDir())
	now := time.Now()
	msg := "Subject: held\r\n\r\nbody\r\n"
	m := &store.Message{ID: "m1", Key: []byte("k1"), CreatedAt: now, UpdatedAt: now, Sender: "taro@example.jp",
		Rcpts: []string{"bob@partner.example"}}
	h := &store.HeldMessage{ID: "m1", Key: m.Key, Envelope: []byte(`{"From":"taro@example.jp","To":["bob@partner.example"]}`),
		Sender: m.Sender, Rcpts: m.Rcpts, Size: int64(len(msg)), Reasons: []string{store.ReasonHold}, SenderOK: true,
		HoldUntil: now.Add(-time.Minute), CreatedAt: now}
	if err := dir.Save("m1", strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if err := st.HoldMessage(ctx, m, h); err != nil {
		t.Fatal(err)
	}
	var sent []string
	s := New(st, dir, func(_ context.Context, _ *relay.Envelope, f *spool.File) error {
		b, err := io.ReadAll(f.Reader())
		sent = append(sent, string(b))
		return err
	}, nil, nil, slog.New(slog.DiscardHandler))

	proxy.Freeze()
	err = s.send(ctx, h, now)
	proxy.Thaw()
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.GetHeld(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.HeldWaiting || got.Attempts != 1 || !got.NextAttempt.After(now) || len(sent) != 0 {
		t.Fatalf("read while the database did not answer: state %s, %d attempts, next %v, sent %d",
			got.State, got.Attempts, got.NextAttempt, len(sent))
	}
	s.Now = func() time.Time { return got.NextAttempt } // the time of the next try
	if err := s.send(ctx, got, got.NextAttempt); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetHeld(ctx, "m1"); got.State != store.HeldSent || len(sent) != 1 || sent[0] != msg {
		t.Fatalf("the next try: state %s, sent %q", got.State, sent)
	}
}
