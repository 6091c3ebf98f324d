package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
)

func heldMsg(id string) (*Message, *HeldMessage) {
	m := message(id, "key-"+id, "bob@partner.example")
	h := &HeldMessage{ID: id, Key: []byte("key-" + id), Envelope: []byte(`{"From":"taro@example.co.jp"}`),
		Sender: "taro@example.co.jp", Rcpts: []string{"bob@partner.example"}, Size: 1000, Subject: "見積",
		Files: []File{{Name: "見積書.pdf", Size: 100}}, Reasons: []string{ReasonHold}, SenderOK: true,
		HoldUntil: t0.Add(5 * time.Minute), CreatedAt: t0}
	return m, h
}

func holdIt(t *testing.T, s Store, m *Message, h *HeldMessage) {
	t.Helper()
	must(t, "HoldMessage", s.HoldMessage(context.Background(), m, h))
}

func heldIDs(list []*HeldMessage) []string {
	out := []string{}
	for _, h := range list {
		out = append(out, h.ID)
	}
	return out
}

func TestHoldThenLeave(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, path := be.newStore(t)
		m, h := heldMsg("h1")
		holdIt(t, s, m, h)

		other := be.reopen(t, path)
		got, err := other.GetHeld(ctx, "h1")
		must(t, "GetHeld", err)
		if got.State != HeldWaiting || got.Subject != "見積" || len(got.Files) != 1 || !got.HoldUntil.Equal(h.HoldUntil) ||
			string(got.Envelope) != `{"From":"taro@example.co.jp"}` || got.Waiting() {
			t.Fatalf("read back %+v", got)
		}
		if n, _ := s.HeldBytes(ctx); n != 1000 {
			t.Errorf("HeldBytes %d", n)
		}
		// Not before the hold is over.
		if err := s.ClaimHeld(ctx, "h1", t0.Add(time.Minute)); !errors.Is(err, ErrFinished) {
			t.Fatalf("claim during the hold: %v", err)
		}
		if work, _ := s.HeldWork(ctx, t0.Add(time.Minute), 10); len(work) != 1 { // only the notice owed
			t.Fatalf("work during the hold: %v", heldIDs(work))
		}
		must(t, "MarkHeldNoticeSent", s.MarkHeldNoticeSent(ctx, "h1"))
		must(t, "MarkHeldRequestsSent", s.MarkHeldRequestsSent(ctx, "h1"))
		if work, _ := s.HeldWork(ctx, t0.Add(time.Minute), 10); len(work) != 0 {
			t.Fatalf("work during the hold after the notice: %v", heldIDs(work))
		}
		if next, _ := s.NextHeldWake(ctx); !next.Equal(h.HoldUntil) {
			t.Errorf("NextHeldWake %v, want the end of the hold %v", next, h.HoldUntil)
		}
		end := t0.Add(5 * time.Minute)
		if work, _ := s.HeldWork(ctx, end, 10); !slices.Equal(heldIDs(work), []string{"h1"}) {
			t.Fatalf("work at the end of the hold: %v", heldIDs(work))
		}
		must(t, "ClaimHeld", s.ClaimHeld(ctx, "h1", end))
		if err := s.CancelHeld(ctx, "h1", "taro@example.co.jp", "page", end); !errors.Is(err, ErrSending) {
			t.Fatalf("cancel while sending: %v", err)
		}
		must(t, "MarkHeldRetry", s.MarkHeldRetry(ctx, "h1", end.Add(30*time.Second), "451 try later"))
		if err := s.ClaimHeld(ctx, "h1", end.Add(10*time.Second)); err == nil {
			t.Fatal("claimed before the retry time")
		}
		must(t, "ClaimHeld", s.ClaimHeld(ctx, "h1", end.Add(30*time.Second)))
		must(t, "MarkHeldSent", s.MarkHeldSent(ctx, "h1", end.Add(31*time.Second)))
		if err := s.CancelHeld(ctx, "h1", "taro@example.co.jp", "page", end); !errors.Is(err, ErrAlreadySent) {
			t.Fatalf("cancel after sending: %v", err)
		}
		if n, _ := s.HeldBytes(ctx); n != 0 {
			t.Errorf("HeldBytes after sending %d", n)
		}
		ev, err := s.Events(ctx, "h1")
		must(t, "Events", err)
		var names []string
		for _, e := range ev {
			names = append(names, e.Event)
		}
		if !slices.Equal(names, []string{"held", "sent"}) {
			t.Errorf("history %v", names)
		}
	})
}

func TestSendNowCancelAndTheGuard(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		m, h := heldMsg("g1")
		h.Reasons, h.SenderOK, h.HoldUntil, h.Expires, h.Visible = []string{ReasonGuard}, false, time.Time{}, t0.Add(24*time.Hour), 12
		holdIt(t, s, m, h)
		if got, _ := s.GetHeld(ctx, "g1"); !got.Waiting() || got.Visible != 12 {
			t.Fatalf("guard-held message %+v", got)
		}
		if err := s.ClaimHeld(ctx, "g1", t0.Add(time.Hour)); err == nil {
			t.Fatal("a guard-held message left without the sender's word")
		}
		must(t, "SendHeldNow", s.SendHeldNow(ctx, "g1", "taro@example.co.jp", "page", t0.Add(time.Minute)))
		must(t, "ClaimHeld", s.ClaimHeld(ctx, "g1", t0.Add(time.Minute)))

		m2, h2 := heldMsg("c1")
		holdIt(t, s, m2, h2)
		must(t, "CancelHeld", s.CancelHeld(ctx, "c1", "taro@example.co.jp", "page", t0.Add(time.Minute)))
		if err := s.SendHeldNow(ctx, "c1", "taro@example.co.jp", "page", t0.Add(time.Minute)); !errors.Is(err, ErrAlreadyCanceled) {
			t.Fatalf("send now after cancel: %v", err)
		}
		got, _ := s.GetHeld(ctx, "c1")
		if got.State != HeldCanceled || got.DecidedBy != "taro@example.co.jp" || got.FinishedAt.IsZero() {
			t.Errorf("canceled %+v", got)
		}
		if err := s.CancelHeld(ctx, "nope", "x", "cli", t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancel unknown: %v", err)
		}
	})
}

func TestApprovals(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		m, h := heldMsg("a1")
		h.Reasons, h.HoldUntil, h.Expires = []string{ReasonApproval}, time.Time{}, t0.Add(24*time.Hour)
		h.Approvals = [][]string{{"boss@example.co.jp", "lead@example.co.jp"}, {"legal@example.co.jp"}}
		holdIt(t, s, m, h)
		tok := []byte("approver-token-boss")
		must(t, "AddApproverToken", s.AddApproverToken(ctx, "a1", "Boss@example.co.jp", tok))
		got, who, err := s.HeldByApprover(ctx, tok)
		if err != nil || got.ID != "a1" || who != "boss@example.co.jp" {
			t.Fatalf("HeldByApprover: %v %q %v", got, who, err)
		}
		if err := s.ApproveHeld(ctx, "a1", "mallory@example.co.jp", "page", t0); !errors.Is(err, ErrNotApprover) {
			t.Fatalf("a stranger approved: %v", err)
		}
		must(t, "ApproveHeld", s.ApproveHeld(ctx, "a1", "BOSS@example.co.jp", "page", t0.Add(time.Minute)))
		if err := s.ClaimHeld(ctx, "a1", t0.Add(time.Minute)); err == nil {
			t.Fatal("left with one of two approvals")
		}
		// Lead was in the same set: nothing left for lead to approve.
		if err := s.ApproveHeld(ctx, "a1", "lead@example.co.jp", "cli", t0); !errors.Is(err, ErrNotApprover) {
			t.Fatalf("second approval of a closed set: %v", err)
		}
		must(t, "ApproveHeld", s.ApproveHeld(ctx, "a1", "legal@example.co.jp", "cli", t0.Add(2*time.Minute)))
		got, _ = s.GetHeld(ctx, "a1")
		if len(got.Approvals) != 0 || len(got.Approved) != 2 || got.Approved[1].Via != "cli" {
			t.Fatalf("after both: %+v", got)
		}
		must(t, "ClaimHeld", s.ClaimHeld(ctx, "a1", t0.Add(2*time.Minute)))

		// Rejected: with the reason, by whom.
		m2, h2 := heldMsg("a2")
		h2.Reasons, h2.HoldUntil, h2.Approvals = []string{ReasonApproval}, time.Time{}, [][]string{{"boss@example.co.jp"}}
		holdIt(t, s, m2, h2)
		if err := s.RejectHeld(ctx, "a2", "mallory@example.co.jp", "page", "no", t0); !errors.Is(err, ErrNotApprover) {
			t.Fatalf("a stranger rejected: %v", err)
		}
		must(t, "RejectHeld", s.RejectHeld(ctx, "a2", "boss@example.co.jp", "page", "wrong customer", t0))
		got, _ = s.GetHeld(ctx, "a2")
		if got.State != HeldRejected || got.DecidedBy != "boss@example.co.jp" || got.Reason != "wrong customer" {
			t.Fatalf("rejected %+v", got)
		}

		// Nobody decides: expired at its time, not before.
		m3, h3 := heldMsg("a3")
		h3.Reasons, h3.HoldUntil, h3.Approvals, h3.Expires = []string{ReasonApproval}, time.Time{}, [][]string{{"boss@example.co.jp"}}, t0.Add(24*time.Hour)
		holdIt(t, s, m3, h3)
		if err := s.ExpireHeld(ctx, "a3", t0.Add(23*time.Hour)); err == nil {
			t.Fatal("expired early")
		}
		if work, _ := s.HeldWork(ctx, t0.Add(24*time.Hour), 10); !slices.Contains(heldIDs(work), "a3") {
			t.Fatalf("work at expiry: %v", heldIDs(work))
		}
		must(t, "ExpireHeld", s.ExpireHeld(ctx, "a3", t0.Add(24*time.Hour)))
		ev, _ := s.Events(ctx, "a1")
		if len(ev) != 3 || ev[1].Event != "approved" || ev[1].Actor != "boss@example.co.jp" || ev[2].Via != "cli" {
			t.Errorf("history of a1: %+v", ev)
		}
	})
}

func TestRecoverHeldAndPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		m, h := heldMsg("r1")
		h.HoldUntil = t0
		holdIt(t, s, m, h)
		must(t, "ClaimHeld", s.ClaimHeld(ctx, "r1", t0))
		be.restart(s) // with several nodes: once the stopped node's leases ran out
		n, err := s.RecoverHeld(ctx)
		if err != nil || n != 1 {
			t.Fatalf("RecoverHeld = %d, %v", n, err)
		}
		must(t, "ClaimHeld again", s.ClaimHeld(ctx, "r1", t0))
		must(t, "MarkHeldSent", s.MarkHeldSent(ctx, "r1", t0))
		if _, err := s.Purge(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetHeld(ctx, "r1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("finished held message kept: %v", err)
		}
		// The history is the audit trail: kept for audit.retention.
		if ev, _ := s.Events(ctx, "r1"); len(ev) == 0 {
			t.Errorf("events purged with the held message")
		}
		if _, err := s.PurgeAudit(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ev, _ := s.Events(ctx, "r1"); len(ev) != 0 {
			t.Errorf("events kept: %v", ev)
		}
	})
}

func TestPolicyHoldApproversGuardRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		d := 5 * time.Minute
		must(t, "PutPolicy", s.PutPolicy(ctx, &policy.Policy{Domain: "bank.example", Hold: &d,
			Approvers: []string{"boss@example.co.jp"}, Guard: policy.GuardReject, UpdatedAt: t0}))
		must(t, "PutPolicy", s.PutPolicy(ctx, &policy.Policy{Domain: "press.example", Approvers: []string{}, UpdatedAt: t0}))
		got, err := s.GetPolicy(ctx, "bank.example")
		must(t, "GetPolicy", err)
		if got.Hold == nil || *got.Hold != d || len(got.Approvers) != 1 || got.Guard != policy.GuardReject {
			t.Fatalf("read back %+v", got)
		}
		press, _ := s.GetPolicy(ctx, "press.example")
		if press.Approvers == nil || len(press.Approvers) != 0 || press.Hold != nil {
			t.Errorf("an explicit empty approver list must stay empty, not unset: %+v", press)
		}
	})
}

// After its deadline nobody decides on a held message any more, even
// before the scheduler expired it: approve, reject, send now all refused.
func TestNoDecisionAfterTheDeadline(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		m, h := heldMsg("late")
		h.Reasons, h.HoldUntil, h.SenderOK = []string{ReasonApproval, ReasonGuard}, time.Time{}, false
		h.Approvals, h.Expires = [][]string{{"boss@example.co.jp"}}, t0.Add(time.Hour)
		holdIt(t, s, m, h)
		after := t0.Add(time.Hour)
		if err := s.ApproveHeld(ctx, "late", "boss@example.co.jp", "cli", after); !errors.Is(err, ErrTooLate) {
			t.Errorf("approve after the deadline: %v", err)
		}
		if err := s.RejectHeld(ctx, "late", "boss@example.co.jp", "cli", "", after); !errors.Is(err, ErrTooLate) {
			t.Errorf("reject after the deadline: %v", err)
		}
		if err := s.SendHeldNow(ctx, "late", "taro@example.co.jp", "page", after); !errors.Is(err, ErrTooLate) {
			t.Errorf("send now after the deadline: %v", err)
		}
		// Cancel stays possible: it only stops what would not go anyway.
		must(t, "CancelHeld", s.CancelHeld(ctx, "late", "taro@example.co.jp", "page", after))
	})
}
