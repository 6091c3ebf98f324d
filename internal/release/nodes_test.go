package release

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/store"
)

// slowHop is the real relay client, with a hook that runs before a
// given password mail goes (what happens on the wall clock meanwhile).
type slowHop struct {
	c      *relay.Client
	before map[string]func()
}

func (h *slowHop) Send(ctx context.Context, msgs ...*relay.Message) (int, error) {
	for _, m := range msgs {
		b, _ := io.ReadAll(m.Open())
		for id, f := range h.before {
			if bytes.Contains(b, []byte("X-Zipgate: password; id="+id+"\r\n")) {
				delete(h.before, id)
				f()
			}
		}
	}
	return h.c.Send(ctx, msgs...)
}

// Two nodes on one PostgreSQL: node a's pass over its batch takes longer
// than the lease (a slow next hop). The jobs it claims late in the pass
// keep the lease its renewal kept alive, so node b, running a pass
// meanwhile, does not take them over: every password goes once.
func TestSlowPassSendsEachPasswordOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Start(t).NewSchema(t)
	open := func(name string) *store.Postgres {
		s, err := store.OpenPostgresKey(ctx, store.PostgresOptions{URL: url, Node: name, Lease: 30 * time.Second}, bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hop := mailtest.StartNextHop(t)
	rc := &relay.Client{Addr: hop.Addr, HeloName: "zipgate.test", Timeout: 5 * time.Second}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	for _, id := range []string{"j1", "j2"} {
		j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"hanako@example.com"}, HeaderFrom: "taro@example.jp",
			HeaderTo: "hanako@example.com", Subject: "s", MessageID: "<" + id + "@example.jp>", ZipName: "a.zip",
			Files: []store.File{{Name: "a.pdf", Size: 1}}, Password: "pw-" + id, CreatedAt: t0.Add(-time.Hour), DueAt: t0}
		if err := a.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := a.Schedule(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := a.MarkNoticeSent(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	sb := New(b, rc, tmpl, log)
	sb.Hostname, sb.BaseURL = "zipgate.test", "https://gw.example.jp"
	hookA := &slowHop{c: rc}
	sa := New(a, hookA, tmpl, log)
	sa.Hostname, sa.BaseURL = "zipgate.test", "https://gw.example.jp"
	sa.Now = func() time.Time { return t0 } // node a's pass starts at t0
	hookA.before = map[string]func(){
		// j1's next hop takes 40 s; a's renewer runs every 10 s meanwhile,
		// as StartRenewing does with the wall clock.
		"j1": func() {
			for s := 10; s <= 40; s += 10 {
				if err := a.RenewLeases(ctx, t0.Add(time.Duration(s)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
		},
		// While a hands j2 over (at t0+41 s), a renews, then node b's
		// scheduler runs a pass.
		"j2": func() {
			if err := a.RenewLeases(ctx, t0.Add(41*time.Second)); err != nil {
				t.Fatal(err)
			}
			sb.Now = func() time.Time { return t0.Add(41 * time.Second) }
			if _, err := sb.RunOnce(ctx); err != nil {
				t.Errorf("b's pass: %v", err)
			}
		},
	}
	if _, err := sa.RunOnce(ctx); err != nil {
		t.Errorf("a's pass: %v", err)
	}
	for _, id := range []string{"j1", "j2"} {
		n := 0
		for _, m := range hop.Messages() {
			if bytes.Contains(m.Data, []byte("X-Zipgate: password; id="+id+"\r\n")) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the password of %s went %d times to the recipients, want once", id, n)
		}
	}
}
