package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
)

// A job whose password waits for the sender (password_to manual) has no
// due time: it is never due, never woken for, until Release now.
func TestManualJobWaitsForReleaseNow(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		j := job("m")
		j.DueAt, j.PasswordTo = time.Time{}, policy.Manual
		bring(t, s, j, Scheduled)
		must(t, "MarkNoticeSent", s.MarkNoticeSent(ctx, "m"))

		far := t0.Add(365 * 24 * time.Hour)
		if work, err := s.Work(ctx, far, 10); err != nil || len(work) != 0 {
			t.Fatalf("Work a year later = %q, %v; want nothing", ids(work), err)
		}
		if next, err := s.NextWake(ctx); err != nil || !next.IsZero() {
			t.Fatalf("NextWake = %v, %v; want none", next, err)
		}
		if err := s.Claim(ctx, "m", far); !errors.Is(err, ErrFinished) {
			t.Fatalf("Claim of a job waiting for the sender = %v", err)
		}
		if got := get(t, s, "m"); got.PasswordTo != policy.Manual || !got.DueAt.IsZero() {
			t.Fatalf("read back: password_to %q, due %v", got.PasswordTo, got.DueAt)
		}

		must(t, "ReleaseNow", s.ReleaseNow(ctx, "m", t0))
		if got := get(t, s, "m"); !got.DueAt.Equal(t0) {
			t.Fatalf("after Release now: due %v, want %v", got.DueAt, t0)
		}
		if work, _ := s.Work(ctx, t0, 10); !slices.Equal(ids(work), []string{"m"}) {
			t.Fatalf("Work after Release now = %q", ids(work))
		}
		must(t, "Claim", s.Claim(ctx, "m", t0))
	})
}

// A save from an admin's form lands only over the rule the form showed.
func TestPutPolicyIf(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		p := func(a policy.Action, at time.Time) *policy.Policy {
			return &policy.Policy{Domain: "partner.example", Action: a, UpdatedAt: at}
		}
		must(t, "a new rule", s.PutPolicyIf(ctx, p(policy.Encrypt, t0), time.Time{}))
		if err := s.PutPolicyIf(ctx, p(policy.Pass, t0.Add(time.Second)), time.Time{}); !errors.Is(err, ErrPolicyChanged) {
			t.Errorf("a second new rule for the domain: %v, want ErrPolicyChanged", err)
		}
		must(t, "over the rule of t0", s.PutPolicyIf(ctx, p(policy.Reject, t0.Add(time.Minute)), t0))
		if err := s.PutPolicyIf(ctx, p(policy.Pass, t0.Add(time.Hour)), t0); !errors.Is(err, ErrPolicyChanged) {
			t.Errorf("a save over a rule changed meanwhile: %v, want ErrPolicyChanged", err)
		}
		must(t, "DeletePolicy", s.DeletePolicy(ctx, "partner.example"))
		if err := s.PutPolicyIf(ctx, p(policy.Pass, t0.Add(time.Hour)), t0.Add(time.Minute)); !errors.Is(err, ErrPolicyChanged) {
			t.Errorf("a save over a rule deleted meanwhile: %v, want ErrPolicyChanged", err)
		}
		if _, err := s.GetPolicy(ctx, "partner.example"); !errors.Is(err, ErrNoPolicy) {
			t.Errorf("a refused save brought the deleted rule back: %v", err)
		}
		if err := s.PutPolicyIf(ctx, &policy.Policy{Domain: "partner.example", Action: "zip"}, time.Time{}); err == nil || errors.Is(err, ErrPolicyChanged) {
			t.Errorf("a bad rule: %v, want its validation error", err)
		}
	})
}

func TestPolicies(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, path := be.newStore(t)
		d := 15 * time.Minute
		in := &policy.Policy{Domain: "Partner.Example.", Action: policy.Encrypt, PasswordTo: policy.ToSender, Delay: &d,
			ZipMethod: "zipcrypto", FilenameEncoding: "cp932", Language: "ja", Note: "経理部: Windows Explorer", UpdatedAt: t0}
		must(t, "PutPolicy", s.PutPolicy(ctx, in))
		must(t, "PutPolicy *", s.PutPolicy(ctx, &policy.Policy{Domain: "*", Action: policy.Pass, UpdatedAt: t0}))

		// Another process (the CLI beside the server) sees it.
		other := be.reopen(t, path)
		got, err := other.GetPolicy(ctx, "partner.example")
		must(t, "GetPolicy", err)
		if got.Domain != "partner.example" || got.Action != policy.Encrypt || got.PasswordTo != policy.ToSender ||
			got.Delay == nil || *got.Delay != d || got.ZipMethod != "zipcrypto" || got.FilenameEncoding != "cp932" ||
			got.Language != "ja" || got.Note != in.Note || !got.UpdatedAt.Equal(t0) {
			t.Fatalf("read back %+v", got)
		}
		star, err := s.GetPolicy(ctx, "*")
		must(t, "GetPolicy *", err)
		if star.Delay != nil || star.ZipMethod != "" {
			t.Errorf("unset fields came back set: %+v", star)
		}
		list, err := s.ListPolicies(ctx)
		must(t, "ListPolicies", err)
		if len(list) != 2 || list[0].Domain != "*" || list[1].Domain != "partner.example" {
			t.Errorf("ListPolicies = %+v", list)
		}

		// Replacing keeps one row; a bad policy changes nothing.
		in2 := &policy.Policy{Domain: "partner.example", Action: policy.Reject, UpdatedAt: t0.Add(time.Hour)}
		must(t, "PutPolicy again", s.PutPolicy(ctx, in2))
		if got, _ := s.GetPolicy(ctx, "PARTNER.example"); got.Action != policy.Reject || got.Delay != nil {
			t.Errorf("after replace: %+v", got)
		}
		if err := s.PutPolicy(ctx, &policy.Policy{Domain: "partner.example", Action: "zip"}); err == nil || !strings.Contains(err.Error(), "action") {
			t.Errorf("bad action: %v", err)
		}
		if got, _ := s.GetPolicy(ctx, "partner.example"); got.Action != policy.Reject {
			t.Errorf("a refused put changed the rule: %+v", got)
		}

		must(t, "DeletePolicy", s.DeletePolicy(ctx, "partner.example"))
		if _, err := s.GetPolicy(ctx, "partner.example"); !errors.Is(err, ErrNoPolicy) {
			t.Errorf("after delete: %v", err)
		}
		if err := s.DeletePolicy(ctx, "partner.example"); !errors.Is(err, ErrNoPolicy) {
			t.Errorf("second delete: %v", err)
		}
	})
}

func message(id string, key string, rcpts ...string) *Message {
	return &Message{ID: id, Key: []byte(key), CreatedAt: t0, UpdatedAt: t0, Sender: "taro@example.co.jp",
		Rcpts: rcpts, Subject: "見積", Size: 1234,
		Groups: []Group{{Rule: "*", Action: "encrypt", Rcpts: rcpts}}}
}

// What a retry of a message finds: the recipients already served, the
// record of the earlier try, and its pending job with the password.
func TestPriorDeliveredAndPendingJobs(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, path := be.newStore(t)
		key := "key-1"
		p, err := s.Prior(ctx, []byte(key), []string{"a@x.example"})
		must(t, "Prior", err)
		if p.Message != nil || len(p.Delivered) != 0 || len(p.Pending) != 0 {
			t.Fatalf("first try: %+v", p)
		}

		m := message("msg1", key, "colleague@example.co.jp", "bob@partner.example", "carol@pass.example")
		zipped := job("msg1")
		zipped.Message, zipped.Key, zipped.Rcpts = "msg1", []byte(key), []string{"bob@partner.example"}
		must(t, "SaveMessage", s.SaveMessage(ctx, m, zipped))
		if zipped.State != Pending {
			t.Errorf("job state %s", zipped.State)
		}
		// The original copy went; the zipped one got a 4xx.
		m.Result = "451 4.4.2 next hop deferred"
		must(t, "Delivered", s.Delivered(ctx, m, []string{"colleague@example.co.jp", "carol@pass.example"}, "", time.Time{}, t0))

		// Postfix retries: a fresh handle, as after a restart.
		s2 := be.reopen(t, path)
		p, err = s2.Prior(ctx, []byte(key), []string{"carol@pass.example", "bob@partner.example", "colleague@example.co.jp"})
		must(t, "Prior", err)
		if p.Message == nil || p.Message.ID != "msg1" || p.Message.Result != m.Result {
			t.Fatalf("earlier try's record: %+v", p.Message)
		}
		if len(p.Delivered) != 2 || !p.Delivered["colleague@example.co.jp"] || !p.Delivered["carol@pass.example"] {
			t.Errorf("delivered %v", p.Delivered)
		}
		if len(p.Pending) != 1 || p.Pending[0].ID != "msg1" || p.Pending[0].Password != "pw-msg1" ||
			!slices.Equal(p.Pending[0].Rcpts, []string{"bob@partner.example"}) {
			t.Fatalf("pending %+v", p.Pending)
		}
		// Another recipient list with the same bytes (Postfix split a long
		// list) is another record, but shares what was delivered.
		if p, _ := s2.Prior(ctx, []byte(key), []string{"dave@partner.example"}); p.Message != nil || len(p.Delivered) != 2 {
			t.Errorf("other recipients: %+v", p)
		}

		// The retry delivers the zipped copy: the job is scheduled with it.
		m.Result = "250"
		must(t, "Delivered", s2.Delivered(ctx, m, []string{"bob@partner.example"}, "msg1", t0.Add(11*time.Minute), t0.Add(time.Minute)))
		if j := get(t, s, "msg1"); j.State != Scheduled || j.Message != "msg1" || string(j.Key) != key || !j.DueAt.Equal(t0.Add(11*time.Minute)) {
			t.Errorf("job after delivery: %s, message %q, key %q, due %v", j.State, j.Message, j.Key, j.DueAt)
		}
		p, _ = s2.Prior(ctx, []byte(key), m.Rcpts)
		if len(p.Delivered) != 3 || len(p.Pending) != 0 {
			t.Errorf("after the retry: %+v", p)
		}
		got, err := s2.GetMessage(ctx, "msg1")
		must(t, "GetMessage", err)
		if got.Result != "250" || len(got.Groups) != 1 || got.Groups[0].Rule != "*" || got.Subject != "見積" || got.Size != 1234 {
			t.Errorf("record %+v", got)
		}
		// Recorded twice is still once.
		must(t, "Delivered again", s2.Delivered(ctx, m, []string{"bob@partner.example"}, "msg1", t0.Add(12*time.Minute), t0.Add(2*time.Minute)))
		if j := get(t, s, "msg1"); j.State != Scheduled || !j.DueAt.Equal(t0.Add(11*time.Minute)) {
			t.Errorf("job %s due %v: a second record must not move it", j.State, j.DueAt)
		}
		// A canceled job stays canceled when its copy is delivered.
		k := job("msg2")
		k.Key = []byte("key-2")
		m2 := message("msg2", "key-2", "x@y.example")
		must(t, "SaveMessage", s.SaveMessage(ctx, m2, k))
		must(t, "Cancel", s.Cancel(ctx, "msg2", t0))
		must(t, "Delivered", s.Delivered(ctx, m2, []string{"x@y.example"}, "msg2", t0, t0))
		if j := get(t, s, "msg2"); j.State != Canceled {
			t.Errorf("canceled job became %s", j.State)
		}
		if err := s.Delivered(ctx, m2, []string{"x@y.example"}, "gone", t0, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delivered with an unknown job = %v", err)
		}
		if _, err := s.GetMessage(ctx, "nope"); !errors.Is(err, ErrNoMessage) {
			t.Errorf("GetMessage(unknown) = %v", err)
		}
		list, err := s.ListMessages(ctx, 10)
		must(t, "ListMessages", err)
		if len(list) != 2 {
			t.Errorf("ListMessages = %d records", len(list))
		}
	})
}

func TestSaveMessageIsAllOrNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		create(t, s, job("taken"))
		m := message("m", "k", "a@x.example")
		a, b := job("fresh"), job("taken")
		if err := s.SaveMessage(ctx, m, a, b); err == nil {
			t.Fatal("a job id used twice was accepted")
		}
		if _, err := s.GetMessage(ctx, "m"); !errors.Is(err, ErrNoMessage) {
			t.Errorf("the record stayed: %v", err)
		}
		if _, err := s.Get(ctx, "fresh"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the first job stayed: %v", err)
		}
	})
}

func TestPurgeMessages(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		old := message("old", "k-old", "a@x.example")
		old.CreatedAt, old.UpdatedAt = t0.Add(-100*24*time.Hour), t0.Add(-100*24*time.Hour)
		must(t, "Delivered", s.Delivered(ctx, old, old.Rcpts, "", time.Time{}, old.UpdatedAt))
		recent := message("recent", "k-new", "a@x.example")
		must(t, "Delivered", s.Delivered(ctx, recent, recent.Rcpts, "", time.Time{}, t0))
		_, err := s.Purge(ctx, t0.Add(-90*24*time.Hour))
		must(t, "Purge", err)
		// The record is the audit's: it goes after audit.retention.
		if _, err := s.GetMessage(ctx, "old"); err != nil {
			t.Errorf("old record purged with the jobs: %v", err)
		}
		_, err = s.PurgeAudit(ctx, t0.Add(-90*24*time.Hour))
		must(t, "PurgeAudit", err)
		if _, err := s.GetMessage(ctx, "old"); !errors.Is(err, ErrNoMessage) {
			t.Errorf("old record kept: %v", err)
		}
		if p, _ := s.Prior(ctx, []byte("k-old"), nil); len(p.Delivered) != 0 {
			t.Errorf("old deliveries kept: %v", p.Delivered)
		}
		if p, _ := s.Prior(ctx, []byte("k-new"), recent.Rcpts); p.Message == nil || !p.Delivered["a@x.example"] {
			t.Errorf("recent record purged: %+v", p)
		}
	})
}

// Copies that reach the next hop at once are recorded together (one
// commit), each with its own answer: all delivered and scheduled, and a
// missing job reported to its caller only.
func TestDeliveredConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		const n = 30
		for i := range n {
			id := fmt.Sprintf("m%02d", i)
			j := job(id)
			j.Key = []byte("k" + id)
			must(t, "SaveMessage", s.SaveMessage(ctx, message(id, "k"+id, "a@x.example"), j))
		}
		var wg sync.WaitGroup
		errs := make([]error, n+1)
		for i := range n + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("m%02d", i)
				if i == n {
					id = "gone" // no such job
				}
				errs[i] = s.Delivered(ctx, message(id, "k"+id, "a@x.example"), []string{"a@x.example"}, id, t0.Add(time.Hour), t0)
			}()
		}
		wg.Wait()
		for i := range n {
			id := fmt.Sprintf("m%02d", i)
			if errs[i] != nil {
				t.Errorf("%s: %v", id, errs[i])
			}
			if j := get(t, s, id); j.State != Scheduled {
				t.Errorf("%s: %s", id, j.State)
			}
			if p, _ := s.Prior(ctx, []byte("k"+id), nil); !p.Delivered["a@x.example"] {
				t.Errorf("%s: delivery not recorded", id)
			}
		}
		if !errors.Is(errs[n], ErrNotFound) {
			t.Errorf("the call with a missing job got %v", errs[n])
		}
	})
}
