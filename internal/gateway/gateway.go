// Package gateway is the path of one message through zipgate: find what
// earlier tries of it delivered, decide per recipient (policy), make one
// copy per treatment (the original, or a zipped copy per set of zip
// settings), store the release jobs of their passwords, relay each copy,
// record for whom the next hop took it, log one line. The SMTP session
// calls Handle once per message.
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/metrics"
	"github.com/zipgate/zipgate/internal/mimeparam"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/password"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
)

// Gateway holds what every message needs.
type Gateway struct {
	log       *slog.Logger
	relay     *relay.Client
	passwords *password.Generator
	templates *notice.Templates
	zipName   *template.Template
	zone      *time.Location // of the DOS times and the zip name (zip.time_zone)
	limits    rewrite.Limits
	tempDir   string
	threshold int
	store     store.Store
	wake      func()
	policy    policy.Config

	// Holding keeps messages back before they leave (set by the caller).
	Holding Holding
	// Linking keeps the files of download links (set by the caller).
	Linking Linking
	// Metrics counts what the gateway does (nil: nothing).
	Metrics *metrics.Metrics

	// Now is the clock; tests replace it.
	Now func() time.Time
}

// New builds a gateway from a validated configuration. tempDir holds
// spool files; policies and release jobs are in st, and wake tells the
// scheduler.
func New(cfg config.Config, tempDir string, st store.Store, tmpl *notice.Templates, next *relay.Client, wake func(), log *slog.Logger) (*Gateway, error) {
	gen, err := password.New(password.Policy{
		Length: cfg.Password.Length, Digits: cfg.Password.Digits,
		Symbols: cfg.Password.Symbols, AllowAmbiguous: cfg.Password.AllowAmbiguous,
	}, nil)
	if err != nil {
		return nil, err
	}
	zipName, err := template.New("zipname").Parse(cfg.Zip.NameTemplate)
	if err != nil {
		return nil, fmt.Errorf("zip.name_template: %w", err)
	}
	return &Gateway{
		log:       log,
		relay:     next,
		passwords: gen,
		templates: tmpl,
		zipName:   zipName,
		zone:      cfg.Zip.Location(),
		limits: rewrite.Limits{
			MaxHeaderBytes: cfg.SMTP.MaxHeaderBytes, MaxDepth: cfg.SMTP.MaxMIMEDepth, MaxParts: cfg.SMTP.MaxMIMEParts,
			MaxTotalHeaderBytes: cfg.SMTP.MaxTotalHeaderBytes, MaxAttachments: cfg.SMTP.MaxAttachments,
		},
		tempDir:   tempDir,
		threshold: cfg.SMTP.SpoolMemoryBytes,
		store:     st,
		wake:      wake,
		policy:    cfg.PolicyConfig(),
		Now:       time.Now,
	}, nil
}

// Handle processes one message. It returns nil only when the next hop
// accepted every copy for every recipient (now or in an earlier try);
// errors are *reply.Error.
func (g *Gateway) Handle(ctx context.Context, env *relay.Envelope, msg *spool.File) error {
	return g.handle(ctx, env, msg, false)
}

// DeliverHeld sends a held message on its normal path once nothing holds
// it any more (hold.Scheduler calls it): decided again with the rules of
// now, zipped or passed, each copy once.
func (g *Gateway) DeliverHeld(ctx context.Context, env *relay.Envelope, msg *spool.File) error {
	return g.handle(ctx, env, msg, true)
}

func (g *Gateway) handle(ctx context.Context, env *relay.Envelope, msg *spool.File, releasing bool) (err error) {
	start := g.Now()
	rec := &record{env: env, released: releasing}
	defer func() { g.logResult(rec, start, err); g.audit(ctx, rec, err) }()

	key, err := messageKey(env.From, msg)
	if err != nil {
		return reply.Internal(fmt.Errorf("reading the message: %w", err))
	}
	if !releasing {
		// Postfix's retry of a message zipgate holds already: it stopped
		// after holding it and before its 250.
		h, err := g.store.HeldByKey(ctx, key)
		switch {
		case err == nil:
			rec.id, rec.action, rec.reason = h.ID, "hold", "held already, by an earlier try"
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return reply.Internal(fmt.Errorf("looking up held messages: %w", err))
		}
	}
	prior, err := g.store.Prior(ctx, key, env.Addrs())
	if err != nil {
		return reply.Internal(fmt.Errorf("looking up earlier tries: %w", err))
	}
	m := &store.Message{ID: newID(), Key: key, CreatedAt: start, UpdatedAt: start, Sender: env.From,
		Rcpts: env.Addrs(), Size: msg.Size()}
	if p := prior.Message; p != nil {
		m.ID, m.CreatedAt = p.ID, p.CreatedAt
		m.Groups = deliveredGroups(p.Groups, prior.Delivered)
	}
	rec.id, rec.msg = m.ID, m

	// Postfix retries a message as a whole; recipients an earlier try
	// delivered to are done.
	todo := &relay.Envelope{From: env.From, MailOpts: env.MailOpts}
	for _, r := range env.Rcpts {
		if prior.Delivered[r.Addr] {
			rec.already = append(rec.already, r.Addr)
		} else {
			todo.Rcpts = append(todo.Rcpts, r)
		}
	}
	if len(todo.Rcpts) == 0 {
		rec.action, rec.reason = "none", "already delivered by an earlier try"
		return nil
	}

	rules, err := g.store.ListPolicies(ctx)
	if err != nil {
		return reply.Internal(fmt.Errorf("reading the policies: %w", err))
	}
	hdr, _ := rewrite.TopHeader(msg, msg.Size(), g.limits)
	if hdr != nil {
		g.describe(m, rec, hdr)
	}
	dec := policy.Decide(policy.Input{Sender: env.From, Rcpts: todo.Addrs(), Visible: visible(hdr)},
		policy.NewRules(rules), g.policy)
	rec.dec = dec
	if !releasing && dec.Waits() && dec.Guard != policy.GuardReject {
		if err := g.hold(ctx, m, rec, todo, dec, msg, start); err != nil {
			g.recordRefusal(ctx, m, dec, err)
			return err
		}
		return nil
	}
	copies, err := g.copies(m, rec, todo, dec, msg, prior, start)
	defer func() {
		for _, c := range copies {
			c.close()
		}
	}()
	if err != nil {
		g.recordRefusal(ctx, m, rec.dec, err)
		return err
	}
	// The jobs are durable (Pending) before any copy leaves; each becomes
	// Scheduled in the same transaction that records its copy delivered.
	var fresh []*store.Job
	for _, c := range copies {
		if c.job != nil && !c.reused {
			fresh = append(fresh, c.job)
		}
	}
	if len(fresh) > 0 {
		withCopies := *m
		withCopies.Groups = append(append([]store.Group(nil), m.Groups...), storeGroups(copies)...)
		if err := g.store.SaveMessage(ctx, &withCopies, fresh...); err != nil {
			return reply.Internal(fmt.Errorf("storing the release jobs: %w", err))
		}
	}
	return g.deliver(ctx, m, rec, copies, msg)
}

// copies decides for the recipients of env and makes what each group
// gets: the original, zipped copies with their jobs (not yet stored), or
// a refusal. It reads nothing but the message: Handle and Preview share it.
func (g *Gateway) copies(m *store.Message, rec *record, env *relay.Envelope, dec policy.Decision, msg *spool.File,
	prior *store.Prior, now time.Time) ([]*outgoing, error) {
	if dec.Guard == policy.GuardReject {
		rec.action = "reject"
		return nil, guardRefusal(dec)
	}
	if !dec.TakesFiles() && !dec.Has(policy.Reject) {
		// Nothing to look into: the body is not parsed.
		rec.action, rec.reason = "pass", passReason(dec)
		return []*outgoing{original(env, dec.Groups)}, nil
	}
	pl, err := rewrite.Analyze(msg, msg.Size(), g.limits, g.tempDir)
	if err != nil {
		return nil, refuseUnparsable(err)
	}
	g.describe(m, rec, pl.Root)
	if pl.Pass != "" && (pl.Files == 0 || !dec.Has(policy.Reject)) {
		rec.action, rec.reason = "pass", pl.Pass
		return []*outgoing{original(env, dec.Groups)}, nil
	}
	if dec.Has(policy.Reject) {
		rec.action = "reject"
		return nil, rejection(dec)
	}
	rec.action = "encrypt"
	if !dec.Has(policy.Encrypt) {
		rec.action = "link"
	}
	defer func(t time.Time) { rec.zipping = g.Now().Sub(t) }(g.Now())
	return g.prepare(m, rec, env, dec, pl, prior, now)
}

// messageKey identifies a message across Postfix's retries: its bytes do
// not change between tries, and neither does its envelope sender.
func messageKey(from string, msg *spool.File) ([]byte, error) {
	body := sha256.New()
	if _, err := io.Copy(body, msg.Reader()); err != nil {
		return nil, err
	}
	k := sha256.New()
	fmt.Fprintf(k, "zipgate message key v1\x00%s\x00", from)
	k.Write(body.Sum(nil))
	return k.Sum(nil), nil
}

// describe takes what the record and the log show from the header.
func (g *Gateway) describe(m *store.Message, rec *record, hdr *rewrite.Part) {
	rec.queueID = postfixQueueID(hdr.Get("Received"))
	m.QueueID, m.MessageID = rec.queueID, hdr.Get("Message-ID")
	m.Subject = mimeparam.DecodeHeader(hdr.Get("Subject"))
	rec.hdr = hdr
}

func passReason(dec policy.Decision) string {
	reasons := map[string]bool{}
	var out []string
	for _, g := range dec.Groups {
		r := g.Reason
		if r == "" {
			r = "policy " + g.Rule + ": pass"
		}
		if !reasons[r] {
			reasons[r] = true
			out = append(out, r)
		}
	}
	return strings.Join(out, "; ")
}

// deliver relays every copy, each in its own transaction, and records
// each the moment the next hop says 250, before anything else happens on
// the connection, so a crash leaves as small a window as it can. A copy
// that fails does not stop the others: Postfix's retry sends only what
// is missing.
// m.Groups holds what earlier tries delivered; the copies' groups are
// added here.
func (g *Gateway) deliver(ctx context.Context, m *store.Message, rec *record, copies []*outgoing, msg *spool.File) error {
	rec.copies = copies
	m.Groups = append(m.Groups, storeGroups(copies)...)
	scheduled := false
	for _, c := range copies {
		c.send(ctx, g, m, msg)
		if c.accepted && c.job != nil && c.recordErr == nil {
			scheduled = true
		}
	}
	if scheduled {
		g.wake()
	}
	// The records went to disk without waiting for it (a crash of the
	// process cannot lose them); before Postfix hears 250 they must
	// survive a power cut too.
	for _, c := range copies {
		if c.accepted && c.recordErr == nil {
			if err := g.store.Sync(context.WithoutCancel(ctx)); err != nil {
				return reply.Internal(fmt.Errorf("syncing the store: %w", err))
			}
			break
		}
	}

	var temp, perm *reply.Error
	var delivered, refused []string
	for _, c := range copies {
		switch {
		case c.accepted && c.recordErr != nil:
			// It left, but a retry would not know: Postfix's retry sends it
			// again (with the same password, the job is still pending)
			// rather than a 250 leaving a password that never goes.
			g.log.Error("the next hop took a copy but it could not be recorded; answering 451 so that Postfix's retry records it",
				"id", m.ID, "rcpts", c.addrs(), "error", c.recordErr.Error())
			if temp == nil {
				temp = reply.Internal(c.recordErr)
			}
		case c.accepted:
			delivered = append(delivered, c.addrs()...)
		default:
			re := reply.From(c.err)
			if c.job != nil && !c.reused && !errors.Is(c.err, relay.ErrUncertain) {
				// Certainly not delivered: no password for it. A job that
				// an earlier try left stays: its copy may have arrived.
				if err := g.store.Discard(context.WithoutCancel(ctx), c.job.ID); err != nil {
					g.log.Error("could not discard the release job of a copy that did not leave",
						"id", c.job.ID, "error", err.Error())
				}
			}
			if re.Temporary() {
				if temp == nil {
					temp = re
				}
			} else {
				if perm == nil {
					perm = re
				}
				refused = append(refused, c.addrs()...)
			}
		}
	}
	switch {
	case temp != nil:
		return temp
	case perm != nil && len(delivered)+len(rec.already) == 0:
		return perm
	case perm != nil:
		// One answer covers every recipient: say which it is about, so
		// the bounce Postfix writes does not mislead the sender.
		return &reply.Error{Code: perm.Code, Enhanced: perm.Enhanced, Err: perm.Err,
			Text: fmt.Sprintf("%s (refused for %s; delivered to %s)", perm.Text, strings.Join(refused, ", "),
				strings.Join(append(append([]string(nil), rec.already...), delivered...), ", "))}
	}
	return nil
}

// recordRefusal keeps a refused message in the record, for the audit;
// the log line has it when the store cannot.
func (g *Gateway) recordRefusal(ctx context.Context, m *store.Message, dec policy.Decision, refusal error) {
	re := reply.From(refusal)
	if re.Temporary() {
		return
	}
	m.Result = fmt.Sprintf("%d %d.%d.%d %s", re.Code, re.Enhanced[0], re.Enhanced[1], re.Enhanced[2], re.Text)
	for _, gr := range dec.Groups {
		m.Groups = append(m.Groups, store.Group{Rule: gr.Rule, Reason: gr.Reason, Action: string(gr.Settings.Action), Rcpts: gr.Rcpts})
	}
	if err := g.store.SaveMessage(context.WithoutCancel(ctx), m); err != nil {
		g.log.Warn("could not record a refused message", "id", m.ID, "error", err.Error())
	}
}

// rejection is the answer when a recipient's policy refuses mail with
// attachments: the sender reads it in the bounce.
func rejection(dec policy.Decision) error {
	var domains []string
	seen := map[string]bool{}
	for _, gr := range dec.Groups {
		if gr.Settings.Action != policy.Reject {
			continue
		}
		for _, r := range gr.Rcpts {
			if d := policy.Domain(r); !seen[d] {
				seen[d] = true
				domains = append(domains, d)
			}
		}
	}
	return reply.Perm(reply.CodePolicy, fmt.Sprintf(
		"Message not sent: mail with attachments to %s is not allowed; send it without attachments or ask your administrator",
		strings.Join(domains, ", ")), nil)
}

// deliveredGroups keeps, of an earlier try's groups, the recipients that
// try delivered to.
func deliveredGroups(groups []store.Group, delivered map[string]bool) []store.Group {
	var out []store.Group
	for _, gr := range groups {
		var rcpts []string
		for _, r := range gr.Rcpts {
			if delivered[r] {
				rcpts = append(rcpts, r)
			}
		}
		if len(rcpts) > 0 {
			gr.Rcpts = rcpts
			out = append(out, gr)
		}
	}
	return out
}

// refuseUnparsable answers a message that cannot be taken apart safely.
// Since policy says encrypt, it must not pass in the clear: it is refused
// with a reason the sender can act on.
func refuseUnparsable(err error) error {
	var text string
	switch {
	case errors.Is(err, rewrite.ErrTooDeep):
		text = "Message not sent: its MIME parts are nested too deeply to check the attachments safely"
	case errors.Is(err, rewrite.ErrTooManyParts):
		text = "Message not sent: it has too many MIME parts to check the attachments safely"
	case errors.Is(err, rewrite.ErrHeaderTooLarge):
		text = "Message not sent: a header block is too large"
	case errors.Is(err, rewrite.ErrHeadersTooLarge):
		text = "Message not sent: its MIME parts have too many header lines in total to check the attachments safely"
	case errors.Is(err, rewrite.ErrTooManyFiles):
		text = "Message not sent: it has too many attachments to put into one zip"
	default:
		return reply.Internal(err)
	}
	return reply.Perm(reply.CodeMediaError, text, err)
}

// Matches "(Postfix) with ESMTP id X" and, for mail from sendmail(1),
// "(Postfix, from userid 1000) id X".
var queueIDRe = regexp.MustCompile(`\(Postfix[^)]*\)(?:\s+with\s+\S+)?\s+id\s+([0-9A-Za-z]+)`)

// postfixQueueID finds the queue id in the Received field Postfix added.
func postfixQueueID(received string) string {
	if m := queueIDRe.FindStringSubmatch(received); m != nil {
		return m[1]
	}
	return ""
}

func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
