package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestAdminAccountsSessionsTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, path := be.newStore(t)
		created, err := s.PutAdmin(ctx, "alice", []byte("hash-1"), t0)
		if err != nil || !created {
			t.Fatalf("PutAdmin = %v, %v", created, err)
		}
		sess := &Session{IDHash: []byte("sid-1"), Admin: "alice", CSRF: "c1", CreatedAt: t0, SeenAt: t0, Expires: t0.Add(time.Hour)}
		must(t, "CreateSession", s.CreateSession(ctx, sess))
		// Another process (the CLI) sees the account.
		other := be.reopen(t, path)
		if a, err := other.GetAdmin(ctx, "alice"); err != nil || string(a.PasswordHash) != "hash-1" {
			t.Fatalf("GetAdmin from another process: %+v, %v", a, err)
		}
		got, err := s.SessionByHash(ctx, []byte("sid-1"), t0.Add(time.Minute))
		if err != nil || got.Admin != "alice" || got.CSRF != "c1" {
			t.Fatalf("SessionByHash = %+v, %v", got, err)
		}
		if _, err := s.SessionByHash(ctx, []byte("sid-1"), t0.Add(time.Hour)); !errors.Is(err, ErrNoSession) {
			t.Errorf("an expired session was found: %v", err)
		}
		must(t, "TouchSession", s.TouchSession(ctx, []byte("sid-1"), t0.Add(50*time.Minute), t0.Add(2*time.Hour)))
		if _, err := s.SessionByHash(ctx, []byte("sid-1"), t0.Add(90*time.Minute)); err != nil {
			t.Errorf("a touched session ended: %v", err)
		}
		// A new password ends the sessions of the old one.
		if created, err := s.PutAdmin(ctx, "alice", []byte("hash-2"), t0); err != nil || created {
			t.Fatalf("PutAdmin again = %v, %v", created, err)
		}
		if _, err := s.SessionByHash(ctx, []byte("sid-1"), t0.Add(time.Minute)); !errors.Is(err, ErrNoSession) {
			t.Errorf("session survived a password change: %v", err)
		}
		if _, err := s.PutAdmin(ctx, "bob", []byte("hash-b"), t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		admins, err := s.ListAdmins(ctx)
		if err != nil || len(admins) != 2 || admins[0].Name != "alice" || admins[1].Name != "bob" ||
			!admins[1].CreatedAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("ListAdmins = %+v, %v; want alice, bob by name", admins, err)
		}
		must(t, "CreateSession", s.CreateSession(ctx, sess))
		must(t, "DeleteAdmin", s.DeleteAdmin(ctx, "alice"))
		if _, err := s.SessionByHash(ctx, []byte("sid-1"), t0.Add(time.Minute)); !errors.Is(err, ErrNoSession) {
			t.Errorf("session survived its account: %v", err)
		}
		if err := s.DeleteAdmin(ctx, "alice"); !errors.Is(err, ErrNoAdmin) {
			t.Errorf("second DeleteAdmin: %v", err)
		}

		must(t, "CreateToken", s.CreateToken(ctx, "ci", []byte("th-1"), t0))
		if err := s.CreateToken(ctx, "ci", []byte("th-2"), t0); !errors.Is(err, ErrExists) {
			t.Errorf("a second token named ci: %v", err)
		}
		tok, err := s.TokenByHash(ctx, []byte("th-1"), t0.Add(time.Hour))
		if err != nil || tok.Name != "ci" {
			t.Fatalf("TokenByHash = %+v, %v", tok, err)
		}
		list, err := s.ListTokens(ctx)
		if err != nil || len(list) != 1 || !list[0].LastUsed.Equal(t0.Add(time.Hour)) || list[0].Hash != nil {
			t.Fatalf("ListTokens = %+v, %v", list, err)
		}
		must(t, "RevokeToken", s.RevokeToken(ctx, "ci"))
		if _, err := s.TokenByHash(ctx, []byte("th-1"), t0); !errors.Is(err, ErrNoToken) {
			t.Errorf("a revoked token still works: %v", err)
		}
	})
}

func TestAuditSearch(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		a := message("m-a", "k-a", "bob@partner.example", "jiro@example.co.jp")
		a.Subject = "見積の件"
		must(t, "SaveMessage", s.SaveMessage(ctx, a))
		must(t, "RecordMessage", s.RecordMessage(ctx, a, []File{{Name: "見積書_R&D.pdf", Size: 10}}, []Event{
			{Message: "m-a", At: t0, Event: "received", Actor: "zipgate", Via: "smtp"},
			{Message: "m-a", At: t0, Event: "decision", Actor: "zipgate", Via: "smtp", Detail: "rule partner.example: encrypt"},
		}))
		b := message("m-b", "k-b", "carol@other.example")
		b.Sender, b.Subject, b.CreatedAt, b.UpdatedAt = "hanako@example.co.jp", "議事録", t0.Add(time.Hour), t0.Add(time.Hour)
		must(t, "SaveMessage", s.SaveMessage(ctx, b))
		must(t, "RecordMessage", s.RecordMessage(ctx, b, []File{{Name: "minutes_100%.txt"}}, []Event{
			{Message: "m-b", At: t0.Add(time.Hour), Event: "received", Actor: "zipgate", Via: "smtp"},
		}))
		must(t, "AddEvent", s.AddEvent(ctx, Event{At: t0.Add(2 * time.Hour), Event: "policy_set", Actor: "admin alice",
			Via: "page", Target: "policy partner.example", Detail: "action: encrypt → pass"}))

		search := func(q AuditQuery) []string {
			t.Helper()
			var out []string
			if err := s.SearchEvents(ctx, q, func(r AuditRow) error {
				out = append(out, r.Message+"/"+r.Event.Event)
				return nil
			}); err != nil {
				t.Fatalf("SearchEvents(%+v): %v", q, err)
			}
			return out
		}
		for _, c := range []struct {
			q    AuditQuery
			want []string
		}{
			{AuditQuery{}, []string{"/policy_set", "m-b/received", "m-a/decision", "m-a/received"}},
			{AuditQuery{Q: "見積書"}, []string{"m-a/decision", "m-a/received"}},         // a file name
			{AuditQuery{Q: "R&D"}, []string{"m-a/decision", "m-a/received"}},         // as written, not \u0026
			{AuditQuery{Q: "議事"}, []string{"m-b/received"}},                          // the subject
			{AuditQuery{Q: "BOB@partner"}, []string{"m-a/decision", "m-a/received"}}, // a recipient, any case
			{AuditQuery{Q: "100%"}, []string{"m-b/received"}},                        // % is literal
			{AuditQuery{Q: "R_D"}, nil},                                              // so is _: R&D does not match
			{AuditQuery{Q: "alice"}, []string{"/policy_set"}},                        // the actor
			{AuditQuery{Sender: "hanako"}, []string{"m-b/received"}},                 //
			{AuditQuery{Rcpt: "jiro@"}, []string{"m-a/decision", "m-a/received"}},    //
			{AuditQuery{Domain: "partner.example"}, []string{"/policy_set", "m-a/decision", "m-a/received"}},
			{AuditQuery{Domain: "example"}, nil},                    // a domain, not a substring
			{AuditQuery{File: "minutes"}, []string{"m-b/received"}}, //
			{AuditQuery{Since: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour)}, []string{"m-b/received"}},
			{AuditQuery{Limit: 1}, []string{"/policy_set"}},
		} {
			if got := search(c.q); !slices.Equal(got, c.want) {
				t.Errorf("%+v: %v, want %v", c.q, got, c.want)
			}
		}
		// Rows carry their message.
		var row AuditRow
		s.SearchEvents(ctx, AuditQuery{Q: "見積書", Limit: 1}, func(r AuditRow) error { row = r; return nil })
		if row.Sender != "taro@example.co.jp" || row.Subject != "見積の件" || len(row.Files) != 1 || len(row.Rcpts) != 2 {
			t.Errorf("row %+v", row)
		}
	})
}

func TestFindMessagesByState(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		// m1: zipped, its password scheduled; m2: refused; m3: held.
		m1 := message("m1", "k1", "bob@partner.example")
		j := job("m1")
		j.Message = "m1"
		must(t, "SaveMessage", s.SaveMessage(ctx, m1, j))
		must(t, "Schedule", s.Schedule(ctx, "m1"))
		must(t, "RecordMessage", s.RecordMessage(ctx, m1, []File{{Name: "a.pdf"}}, nil))
		m2 := message("m2", "k2", "eve@rival.example")
		m2.Result, m2.CreatedAt = "554 5.7.1 no", t0.Add(time.Minute)
		must(t, "SaveMessage", s.SaveMessage(ctx, m2))
		m3, h := heldMsg("m3")
		m3.CreatedAt = t0.Add(2 * time.Minute)
		holdIt(t, s, m3, h)

		ids := func(q MessageQuery) []string {
			t.Helper()
			list, err := s.FindMessages(ctx, q)
			if err != nil {
				t.Fatalf("FindMessages(%+v): %v", q, err)
			}
			var out []string
			for _, m := range list {
				out = append(out, m.ID)
			}
			return out
		}
		for _, c := range []struct {
			q    MessageQuery
			want []string
		}{
			{MessageQuery{}, []string{"m3", "m2", "m1"}},
			{MessageQuery{State: "scheduled"}, []string{"m1"}},
			{MessageQuery{State: "refused"}, []string{"m2"}},
			{MessageQuery{State: "held"}, []string{"m3"}},
			{MessageQuery{State: "released"}, nil},
			{MessageQuery{Domain: "rival.example"}, []string{"m2"}},
			{MessageQuery{File: "a.pdf"}, []string{"m1"}},
			{MessageQuery{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}, []string{"m2"}},
			{MessageQuery{Limit: 1}, []string{"m3"}},
		} {
			if got := ids(c.q); !slices.Equal(got, c.want) {
				t.Errorf("%+v: %v, want %v", c.q, got, c.want)
			}
		}
		if _, err := s.FindMessages(ctx, MessageQuery{State: "bogus"}); err == nil {
			t.Error("an unknown state was taken")
		}
		one, err := s.FindMessage(ctx, "m1")
		if err != nil || !slices.Equal(one.Jobs, []State{Scheduled}) || one.Held != "" || one.Files[0].Name != "a.pdf" {
			t.Fatalf("FindMessage m1 = %+v, %v", one, err)
		}
		if one, _ := s.FindMessage(ctx, "m3"); one.Held != HeldWaiting {
			t.Errorf("m3 held state %q", one.Held)
		}
		if _, err := s.FindMessage(ctx, "nope"); !errors.Is(err, ErrNoMessage) {
			t.Errorf("FindMessage nope: %v", err)
		}
		jobs, err := s.JobsOf(ctx, "m1")
		if err != nil || len(jobs) != 1 || jobs[0].Password != "" {
			t.Fatalf("JobsOf = %+v, %v", jobs, err)
		}
		c, err := s.Counts(ctx)
		if err != nil || c.Jobs[Scheduled] != 1 || c.Held[HeldWaiting] != 1 {
			t.Fatalf("Counts = %+v, %v", c, err)
		}

		// The audit purge keeps a record a job still needs.
		must(t, "AddEvent", s.AddEvent(ctx, Event{Message: "m2", At: t0, Event: "received"}))
		n, err := s.PurgeAudit(ctx, t0.Add(24*time.Hour))
		if err != nil || n < 1 {
			t.Fatalf("PurgeAudit = %d, %v", n, err)
		}
		if got := ids(MessageQuery{}); !slices.Equal(got, []string{"m3", "m1"}) {
			t.Errorf("after PurgeAudit: %v", got)
		}
	})
}
