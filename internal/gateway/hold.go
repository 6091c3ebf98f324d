package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/hold"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
)

// Holding is what keeping messages back needs; without it (HoldDir nil)
// a message that must be held is deferred, never sent.
type Holding struct {
	Dir             *hold.Dir
	Wake            func() // the hold scheduler: a new message waits
	MaxBytes        int64  // policy.hold_max_bytes
	ApprovalTimeout time.Duration
}

// hold keeps the message back: its bytes synced in Dir, its record in
// the store, before Postfix hears 250. It leaves later by DeliverHeld.
// Refusals that need no waiting (files to a reject domain, a message
// zipgate cannot take apart where it must) come now.
func (g *Gateway) hold(ctx context.Context, m *store.Message, rec *record, env *relay.Envelope, dec policy.Decision,
	msg *spool.File, now time.Time) error {
	rec.action = "hold"
	h := &store.HeldMessage{ID: m.ID, Key: m.Key, Sender: env.From, Rcpts: env.Addrs(), Size: msg.Size(),
		Subject: m.Subject, MessageID: m.MessageID, Visible: dec.Visible, CreatedAt: now,
		HoldUntil: now.Add(dec.Hold), SenderOK: dec.Guard != policy.GuardHold, Approvals: dec.Approvals}
	if rec.hdr != nil {
		h.HeaderFrom, h.HeaderTo, h.HeaderCc = rec.hdr.Get("From"), rec.hdr.Get("To"), rec.hdr.Get("Cc")
	}
	if dec.Hold > 0 {
		h.Reasons = append(h.Reasons, store.ReasonHold)
	}
	if len(dec.Approvals) > 0 {
		h.Reasons = append(h.Reasons, store.ReasonApproval)
	}
	if dec.Guard == policy.GuardHold {
		h.Reasons = append(h.Reasons, store.ReasonGuard)
	}
	if len(dec.Approvals) > 0 || dec.Guard == policy.GuardHold {
		h.Expires = now.Add(g.Holding.ApprovalTimeout)
	}
	rec.held = h

	// The file names for the pages; and what would be refused anyway.
	pl, err := rewrite.Analyze(msg, msg.Size(), g.limits, g.tempDir)
	switch {
	case err != nil && (dec.TakesFiles() || dec.Has(policy.Reject)):
		return refuseUnparsable(err)
	case err == nil && pl.Files > 0 && dec.Has(policy.Reject):
		return rejection(dec)
	case err == nil:
		for _, a := range pl.Attachments {
			h.Files = append(h.Files, store.File{Name: a.Name, Size: a.Part.DecodedSizeHint()})
		}
	}

	if g.Holding.Dir == nil {
		return reply.Internal(fmt.Errorf("a message must be held, but holding is not set up"))
	}
	used, err := g.store.HeldBytes(ctx)
	if err != nil {
		return reply.Internal(fmt.Errorf("reading the held bytes: %w", err))
	}
	if used+msg.Size() > g.Holding.MaxBytes {
		return &reply.Error{Code: 452, Enhanced: reply.CodeHoldFull,
			Text: "Too much mail is held for senders and approvers right now, please try again later",
			Err:  fmt.Errorf("held messages take %d bytes, the budget is %d", used, g.Holding.MaxBytes)}
	}
	if h.Envelope, err = json.Marshal(env); err != nil {
		return reply.Internal(err)
	}
	if err := g.Holding.Dir.Save(m.ID, msg.Reader()); err != nil {
		return reply.Internal(fmt.Errorf("saving the held message: %w", err))
	}
	m.Result = "held"
	for _, gr := range dec.Groups {
		m.Groups = append(m.Groups, store.Group{Rule: gr.Rule, Reason: gr.Reason, Action: string(gr.Settings.Action), Rcpts: gr.Rcpts})
	}
	if err := g.store.HoldMessage(context.WithoutCancel(ctx), m, h); err != nil {
		g.Holding.Dir.Remove(m.ID)
		return reply.Internal(fmt.Errorf("storing the held message: %w", err))
	}
	if g.Holding.Wake != nil {
		g.Holding.Wake()
	}
	return nil
}

// guardRefusal answers a message the To/Cc guard refuses outright.
func guardRefusal(dec policy.Decision) error {
	return reply.Perm(reply.CodePolicy, fmt.Sprintf(
		"Message not sent: its To and Cc show %d addresses outside your organization; put them in Bcc", dec.Visible), nil)
}

// addrSpec finds addresses in a field mail.ParseAddressList refuses: the
// guard must count what a mail client shows, however it is written.
var addrSpec = regexp.MustCompile(`[^\s<>,;:"()\[\]]+@[^\s<>,;:"()\[\]]+`)

// visible returns the addresses the message shows in To and Cc.
func visible(hdr *rewrite.Part) []string {
	if hdr == nil {
		return nil
	}
	var out []string
	for _, name := range []string{"To", "Cc"} {
		for _, v := range hdr.All(name) {
			if list, err := mail.ParseAddressList(v); err == nil {
				for _, a := range list {
					out = append(out, a.Address)
				}
				continue
			}
			for _, a := range addrSpec.FindAllString(v, -1) {
				out = append(out, strings.Trim(a, "."))
			}
		}
	}
	return out
}
