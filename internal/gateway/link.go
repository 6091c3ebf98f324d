package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/mimeparam"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/zipper"
)

// Linking is what download links (policy action link) need: where their
// files go, and the address of the recipients' page. Without Files, a
// message that a link rule would take the files of is deferred (451),
// never sent with them.
type Linking struct {
	Files   *links.Files
	BaseURL string // web.base_url: links are BaseURL/d/TOKEN

	dry bool // Preview: nothing is stored
}

// previewing is g for Preview: link copies are made without storing
// their files.
func (g *Gateway) previewing() *Gateway {
	pg := *g
	pg.Linking.dry = true
	return &pg
}

// link makes a linked copy: the attachments go, encrypted with a fresh key
// of the message's, into the link's files; the body gets a notice with
// the link; the job sends the page's password as a zip's (none with a
// one-time code). A retry of a copy whose job is still pending carries the
// same link, password and files.
func (g *Gateway) link(c *outgoing, m *store.Message, pl *rewrite.Plan, prior *store.Prior, n int, now time.Time) error {
	if g.Linking.Files == nil && !g.Linking.dry {
		return reply.Internal(errors.New("a rule says link, but download links are not set up"))
	}
	var l *store.Link
	for _, j := range prior.Pending {
		if pend := prior.Links[j.ID]; pend != nil && pend.Token != "" && sameSet(j.Rcpts, c.addrs()) {
			c.job, c.reused, l = j, true, pend
			break
		}
	}
	local := now.In(g.zone)
	if l == nil {
		id := jobID(m.ID, n, prior.Message != nil)
		pw, err := g.passwords.Generate()
		if err != nil {
			return reply.Internal(err)
		}
		key, err := links.NewKey()
		if err != nil {
			return reply.Internal(err)
		}
		token, hash, err := release.NewToken()
		if err != nil {
			return reply.Internal(err)
		}
		zipName, err := g.renderZipName(local, id)
		if err != nil {
			return reply.Internal(err)
		}
		l = &store.Link{ID: id, Message: m.ID, Key: m.Key, Auth: c.settings.LinkAuth, Sender: c.env.From,
			Rcpts: c.addrs(), ZipName: zipName, Language: c.settings.Language, FileKey: key, Password: pw,
			Token: token, TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(c.settings.LinkExpiry),
			MaxDownloads: c.settings.MaxDownloads}
		if hdr := pl.Root; hdr != nil {
			l.HeaderFrom, l.MessageID = hdr.Get("From"), hdr.Get("Message-ID")
			l.Subject = mimeparam.DecodeHeader(hdr.Get("Subject"))
		}
		if !g.Linking.dry {
			// Files that no stored link holds (the copy was refused, or its
			// job discarded) go when the copy is done with.
			c.cleanup = func() {
				if _, err := g.store.GetLink(context.Background(), id); errors.Is(err, store.ErrNotFound) {
					if err := g.Linking.Files.Remove(id); err != nil {
						g.log.Warn("could not delete the files of a link that was not kept", "id", id, "error", err.Error())
					}
				}
			}
		}
		for i, a := range pl.Attachments {
			e := zipper.Entry{Name: zipper.SafeName(a.Name), Original: a.Name}
			var err error
			if g.Linking.dry {
				h := sha256.New()
				e.Size, err = io.Copy(h, pl.Open(a))
				h.Sum(e.SHA256[:0])
			} else {
				e.Size, e.SHA256, err = g.Linking.Files.Put(id, i, key, pl.Open(a))
			}
			if err != nil {
				return reply.Internal(fmt.Errorf("keeping %q for its link: %w", e.Name, err))
			}
			if a.Undecoded && n == 0 {
				g.log.Warn("attachment has an unknown transfer encoding; kept as sent", "id", m.ID, "name", e.Name,
					"encoding", a.Part.Encoding)
			}
			l.Files = append(l.Files, store.File{Name: e.Name, Size: e.Size, SHA256: fmt.Sprintf("%x", e.SHA256)})
			c.entries = append(c.entries, e)
		}
	} else {
		for _, f := range l.Files {
			e := zipper.Entry{Name: f.Name, Size: f.Size}
			fmt.Sscanf(f.SHA256, "%x", &e.SHA256)
			c.entries = append(c.entries, e)
		}
	}
	c.link = l

	files := make([]notice.File, len(l.Files))
	for i, f := range l.Files {
		files[i] = notice.File{Name: f.Name, Size: f.Size}
	}
	bd := notice.BodyData{Files: files, PasswordTo: string(c.settings.PasswordTo), ZipName: l.ZipName,
		Link: strings.TrimRight(g.Linking.BaseURL, "/") + "/d/" + l.Token, Expires: l.ExpiresAt.In(g.zone),
		MaxDownloads: l.MaxDownloads, Auth: l.Auth}
	bd.SetLanguage(c.settings.Language)
	text, err := g.templates.BodyLink(bd)
	if err != nil {
		return reply.Internal(err)
	}
	if err := c.rewrite(g, pl, rewrite.Output{ID: l.ID, Notice: text}); err != nil {
		return err
	}
	if c.reused {
		return nil
	}
	c.job = c.newJob(m, pl, l.ID, now)
	c.job.Subject, c.job.MessageID, c.job.ZipName, c.job.Files = l.Subject, l.MessageID, l.ZipName, l.Files
	c.job.Password, c.job.Link = l.Password, l
	return nil
}

// linkAttrs adds a linked copy's link to its group in the log line;
// never the token or the password.
func linkAttrs(c *outgoing, a map[string]any) {
	if c.link == nil {
		return
	}
	a["link_expires"] = c.link.ExpiresAt.Format(time.RFC3339)
	a["link_auth"] = c.link.Auth
	if c.link.MaxDownloads > 0 {
		a["max_downloads"] = c.link.MaxDownloads
	}
}
