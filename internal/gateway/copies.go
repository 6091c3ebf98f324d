package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/mimeparam"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/zipper"
)

// copy is one version of the message and the recipients it goes to: the
// original for the internal and pass groups, a zipped copy for the
// encrypt groups that share one set of zip settings, or a linked copy
// (link.go) for the link groups that share their settings.
type outgoing struct {
	action   policy.Action // Pass, Encrypt or Link
	settings policy.Settings
	groups   []policy.Group
	env      *relay.Envelope // the sender and this copy's recipients

	job     *store.Job // Encrypt, Link: the release job of its password
	link    *store.Link
	cleanup func() // when done with the copy
	reused  bool   // the job was left by an earlier try
	out     *spool.File
	entries []zipper.Entry

	takenBack string        // the canceled job: this copy is not sent
	accepted  bool          // the next hop said 250
	recordErr error         // recording that failed after the 250
	recorded  time.Duration // from the 250 to the record: the crash window
	err       error         // why it did not leave
	dkim      string
}

func (c *outgoing) addrs() []string { return c.env.Addrs() }

func (c *outgoing) close() {
	if c.out != nil {
		c.out.Close()
	}
	if c.cleanup != nil {
		c.cleanup()
	}
}

// original is the copy of the message as sent, for every recipient in
// groups.
func original(env *relay.Envelope, groups []policy.Group) *outgoing {
	c := &outgoing{action: policy.Pass, env: &relay.Envelope{From: env.From, MailOpts: env.MailOpts}}
	for _, g := range groups {
		c.add(env, g)
	}
	return c
}

// add puts a group's recipients, with their DSN parameters, in c, in
// the order the envelope has them.
func (c *outgoing) add(env *relay.Envelope, g policy.Group) {
	c.groups = append(c.groups, g)
	in := map[string]bool{}
	for _, r := range c.env.Rcpts {
		in[r.Addr] = true
	}
	for _, a := range g.Rcpts {
		in[a] = true
	}
	c.env.Rcpts = c.env.Rcpts[:0]
	for _, r := range env.Rcpts {
		if in[r.Addr] {
			c.env.Rcpts = append(c.env.Rcpts, r)
			delete(in, r.Addr) // a recipient given twice gets one copy
		}
	}
}

// prepare makes the copies of a message with attachments: the original
// for the pass groups (first), and one zipped copy per set of settings.
func (g *Gateway) prepare(m *store.Message, rec *record, env *relay.Envelope, dec policy.Decision,
	pl *rewrite.Plan, prior *store.Prior, now time.Time) ([]*outgoing, error) {
	var orig *outgoing
	var zipped []*outgoing
	bySettings := map[policy.Settings]*outgoing{}
	for _, gr := range dec.Groups {
		switch gr.Settings.Action {
		case policy.Pass:
			if orig == nil {
				orig = original(env, nil)
			}
			orig.add(env, gr)
		case policy.Encrypt, policy.Link:
			c := bySettings[gr.Settings]
			if c == nil {
				c = &outgoing{action: gr.Settings.Action, settings: gr.Settings, env: &relay.Envelope{From: env.From, MailOpts: env.MailOpts}}
				bySettings[gr.Settings] = c
				zipped = append(zipped, c)
			}
			c.add(env, gr)
		}
	}
	var copies []*outgoing
	if orig != nil {
		copies = append(copies, orig)
	}
	copies = append(copies, zipped...)
	for i, c := range zipped {
		if j := takenBack(prior, c); j != nil {
			// Canceled (or its link taken back) while Postfix still had
			// the message: it never leaves for these recipients.
			c.takenBack = j.ID
			continue
		}
		fill := g.zip
		if c.action == policy.Link {
			fill = g.link
		}
		if err := fill(c, m, pl, prior, i, now); err != nil {
			return copies, err
		}
		if rec.entries == nil {
			rec.entries = c.entries
		}
	}
	return copies, nil
}

// takenBack returns the job of an earlier try for c's recipients that
// was canceled before its copy left, or nil.
func takenBack(prior *store.Prior, c *outgoing) *store.Job {
	for _, j := range prior.TakenBack {
		if sameSet(j.Rcpts, c.addrs()) {
			return j
		}
	}
	return nil
}

// zip makes an encrypted copy: its password (the one an earlier try of
// these recipients used, if its job is still pending, so that one
// password mail opens whichever zip arrived), the zip, the notice in the
// body, and its release job.
func (g *Gateway) zip(c *outgoing, m *store.Message, pl *rewrite.Plan, prior *store.Prior, n int, now time.Time) error {
	for _, j := range prior.Pending {
		if sameSet(j.Rcpts, c.addrs()) && prior.Links[j.ID] == nil { // a link's job is not a zip's
			c.job, c.reused = j, true
			break
		}
	}
	id, pw := "", ""
	if c.reused {
		id, pw = c.job.ID, c.job.Password
	} else {
		var err error
		if pw, err = g.passwords.Generate(); err != nil {
			return reply.Internal(err)
		}
		id = jobID(m.ID, n, prior.Message != nil)
	}
	local := now.In(g.zone)
	zipName, err := g.renderZipName(local, id)
	if err != nil {
		return reply.Internal(err)
	}

	zipFile := spool.New(g.tempDir, g.threshold)
	defer zipFile.Close()
	opts := zipper.Options{Method: zipper.AES256, Names: zipper.UTF8, Password: pw, ModTime: local, TempDir: g.tempDir}
	if c.settings.ZipMethod == "zipcrypto" {
		opts.Method = zipper.ZipCrypto
	}
	if c.settings.FilenameEncoding == "cp932" {
		opts.Names = zipper.CP932
	}
	// Buffered: the writers below make many small writes.
	zbuf := bufio.NewWriterSize(zipFile, 64<<10)
	zw := zipper.NewWriter(zbuf, opts)
	for _, a := range pl.Attachments {
		e, err := zw.Add(a.Name, pl.Open(a))
		if err != nil {
			return reply.Internal(fmt.Errorf("zipping %q: %w", a.Name, err))
		}
		if a.Undecoded && n == 0 {
			g.log.Warn("attachment has an unknown transfer encoding; zipped as sent",
				"id", m.ID, "name", e.Name, "encoding", a.Part.Encoding)
		}
		c.entries = append(c.entries, e)
	}
	if err := zw.Close(); err != nil {
		return reply.Internal(fmt.Errorf("closing zip: %w", err))
	}
	if err := zbuf.Flush(); err != nil {
		return reply.Internal(fmt.Errorf("writing zip: %w", err))
	}

	files := make([]notice.File, len(c.entries))
	for i, e := range c.entries {
		files[i] = notice.File{Name: e.Name, Size: e.Size}
	}
	bd := notice.BodyData{ZipName: zipName, Files: files, PasswordTo: string(c.settings.PasswordTo)}
	bd.SetLanguage(c.settings.Language)
	text, err := g.templates.Body(bd)
	if err != nil {
		return reply.Internal(err)
	}
	if err := c.rewrite(g, pl, rewrite.Output{ID: id, ZipName: zipName, Zip: zipFile.Reader(), Notice: text}); err != nil {
		return err
	}
	if c.reused {
		return nil
	}
	c.job = c.newJob(m, pl, id, now)
	c.job.Subject, c.job.MessageID = mimeparam.DecodeHeader(pl.Root.Get("Subject")), pl.Root.Get("Message-ID")
	c.job.ZipName, c.job.Password = zipName, pw
	for _, e := range c.entries {
		c.job.Files = append(c.job.Files, store.File{Name: e.Name, Size: e.Size, SHA256: fmt.Sprintf("%x", e.SHA256)})
	}
	return nil
}

// rewrite writes the copy's message: pl with out (the zip or the link's
// notice) in place of the attachments, to a spool of its own.
func (c *outgoing) rewrite(g *Gateway, pl *rewrite.Plan, out rewrite.Output) error {
	out.TempDir, out.DropField = g.tempDir, g.brokenSignature
	c.out = spool.New(g.tempDir, g.threshold)
	obuf := bufio.NewWriterSize(c.out, 64<<10)
	if err := pl.Write(obuf, out); err != nil {
		return reply.Internal(fmt.Errorf("rewriting: %w", err))
	}
	if err := obuf.Flush(); err != nil {
		return reply.Internal(fmt.Errorf("rewriting: %w", err))
	}
	return nil
}

// newJob is the password job of the copy, as far as zips and links share it.
func (c *outgoing) newJob(m *store.Message, pl *rewrite.Plan, id string, now time.Time) *store.Job {
	hdr := pl.Root
	return &store.Job{
		ID: id, Sender: c.env.From, Rcpts: c.addrs(),
		HeaderFrom: hdr.Get("From"), HeaderTo: hdr.Get("To"), HeaderCc: hdr.Get("Cc"),
		CreatedAt: now, DueAt: c.due(now), Message: m.ID, Key: m.Key,
		PasswordTo: c.settings.PasswordTo, Language: c.settings.Language, Rule: c.groups[0].Rule,
	}
}

// due is when the password of a copy that leaves at now goes: after the
// delay, or never until Release now (manual), or never (a link opened by
// one-time codes).
func (c *outgoing) due(now time.Time) time.Time {
	if c.settings.PasswordTo == policy.Manual || c.settings.LinkAuth == policy.AuthOTP {
		return time.Time{}
	}
	return now.Add(c.settings.Delay)
}

// jobID names the release job of the n-th zipped copy (from 0): the
// message's own id for the first on the first try, so the id in the log
// is the one `zipgate jobs` and the sender page know.
func jobID(msgID string, n int, retry bool) string {
	if retry {
		var b [3]byte
		rand.Read(b[:])
		return msgID + "-" + hex.EncodeToString(b[:])
	}
	if n == 0 {
		return msgID
	}
	return fmt.Sprintf("%s-%d", msgID, n+1)
}

// send relays the copy and records it the moment the next hop says 250.
// A copy taken back is recorded as done without being relayed, so that
// Postfix stops trying it.
func (c *outgoing) send(ctx context.Context, g *Gateway, m *store.Message, msg *spool.File) {
	if c.takenBack != "" {
		c.accepted = true
		c.recordErr = g.store.Delivered(context.WithoutCancel(ctx), m, c.addrs(), "", time.Time{}, g.Now())
		return
	}
	open := func() io.Reader { return msg.Reader() }
	if c.out != nil {
		open = func() io.Reader { return c.out.Reader() }
	}
	rm := &relay.Message{Env: c.env, Open: open, Sign: c.action != policy.Pass,
		Accepted: func() {
			c.accepted = true
			now := g.Now()
			m.UpdatedAt = now
			job, due := "", time.Time{}
			if c.job != nil {
				job, due = c.job.ID, c.due(now)
				c.job.DueAt = due
			}
			t0 := time.Now()
			err := g.store.Delivered(context.WithoutCancel(ctx), m, c.addrs(), job, due, now)
			c.recorded = time.Since(t0)
			if errors.Is(err, store.ErrNotFound) {
				// Recorded as delivered, but its job is gone (deleted by
				// hand): nothing a retry could mend.
				g.log.Error("release job vanished while its copy was relayed; no password will go", "id", job)
				err = nil
			}
			c.recordErr = err
		}}
	_, err := g.relay.Send(ctx, rm)
	if !c.accepted {
		c.err = err
		if err == nil {
			c.err = errors.New("next hop did not take the copy")
		}
	}
	c.dkim = rm.DKIM
}

// storeGroups is what the record keeps of each copy's groups.
func storeGroups(copies []*outgoing) []store.Group {
	var out []store.Group
	for _, c := range copies {
		for _, gr := range c.groups {
			// What they got: a pass copy for an encrypt rule is a message
			// with nothing to zip.
			sg := store.Group{Rule: gr.Rule, Reason: gr.Reason, Action: string(c.action), Rcpts: gr.Rcpts}
			if c.job != nil {
				sg.Job = c.job.ID
			}
			out = append(out, sg)
		}
	}
	return out
}

// brokenSignature drops, from a message zipgate rewrites, a DKIM signature
// made for a domain zipgate signs for: the rewrite breaks it, and zipgate's
// own signature takes its place. Other domains' signatures stay (they
// fail, but say who sent it to us).
func (g *Gateway) brokenSignature(name, value string) bool {
	if !strings.EqualFold(name, "DKIM-Signature") {
		return false
	}
	for _, tag := range strings.Split(value, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(tag), "=")
		if ok && strings.TrimSpace(k) == "d" {
			return g.relay.DKIM.SignsFor(strings.Join(strings.Fields(v), ""))
		}
	}
	return false
}

func (g *Gateway) renderZipName(now time.Time, id string) (string, error) {
	var b strings.Builder
	err := g.zipName.Execute(&b, map[string]string{
		"Date": now.Format("20060102"), "Time": now.Format("150405"), "ID": id,
	})
	name := zipper.SafeName(b.String())
	if !strings.HasSuffix(strings.ToLower(name), ".zip") {
		name += ".zip"
	}
	return name, err
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
