package gateway

import (
	"io"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/zipper"
)

// Preview is what Handle would do with a message, worked out offline:
// the same decision, zips and notices, but nothing stored and nothing
// sent. It answers an admin's "why was this zipped or passed?"
type Preview struct {
	Action, Reason string // encrypt, pass or reject, and why it passes
	// Refusal is the answer Postfix would get when the message is refused.
	Refusal  *reply.Error
	Decision policy.Decision
	Copies   []PreviewCopy

	close func()
}

// PreviewCopy is one copy the message would leave as.
type PreviewCopy struct {
	Action   policy.Action // Pass: the original; Encrypt: a zipped copy; Link: a linked copy
	Groups   []policy.Group
	Rcpts    []string
	Settings policy.Settings // of a zipped copy
	Password string
	ZipName  string
	Files    []zipper.Entry
	// Message is the copy as it would leave, before DKIM signing.
	Message func() io.Reader
}

// Close frees the spooled copies.
func (p *Preview) Close() {
	if p.close != nil {
		p.close()
	}
}

// Preview runs the message through the decision with rules, and makes
// its copies. A refusal is not an error: it is in Refusal.
func (g *Gateway) Preview(env *relay.Envelope, msg *spool.File, rules []policy.Policy) (*Preview, error) {
	g = g.previewing()
	rec := &record{env: env}
	m := &store.Message{ID: newID(), Sender: env.From, Rcpts: env.Addrs(), Size: msg.Size()}
	hdr, _ := rewrite.TopHeader(msg, msg.Size(), g.limits)
	dec := policy.Decide(policy.Input{Sender: env.From, Rcpts: env.Addrs(), Visible: visible(hdr)},
		policy.NewRules(rules), g.policy)
	rec.dec = dec
	copies, err := g.copies(m, rec, env, dec, msg, &store.Prior{}, time.Now())
	p := &Preview{Action: rec.action, Reason: rec.reason, Decision: rec.dec, close: func() {
		for _, c := range copies {
			c.close()
		}
	}}
	if err != nil {
		re := reply.From(err)
		if re.Temporary() {
			p.Close()
			return nil, err
		}
		p.Refusal = re
		return p, nil
	}
	for _, c := range copies {
		pc := PreviewCopy{Action: c.action, Groups: c.groups, Rcpts: c.addrs(), Settings: c.settings, Files: c.entries,
			Message: func() io.Reader { return msg.Reader() }}
		if c.job != nil {
			pc.Password, pc.ZipName = c.job.Password, c.job.ZipName
			out := c.out
			pc.Message = func() io.Reader { return out.Reader() }
		}
		p.Copies = append(p.Copies, pc)
	}
	return p, nil
}
