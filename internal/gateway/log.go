package gateway

import (
	"fmt"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/zipper"
)

// record is what the one log line of a message says.
type record struct {
	id, queueID    string
	action, reason string // encrypt, pass, reject, none (all delivered before)
	env            *relay.Envelope
	hdr            *rewrite.Part
	dec            policy.Decision
	copies         []*outgoing
	entries        []zipper.Entry
	already        []string // recipients an earlier try delivered to
	released       bool     // a held message on its way at last
	held           *store.HeldMessage
	msg            *store.Message // the record (audit.go writes it with the history)
	zipping        time.Duration  // taking it apart, zipping and writing its copies
}

// groups says, per recipient group, which rule decided, what it got and
// what became of its copy.
func (rec *record) groups() []any {
	var out []any
	seen := map[string]bool{}
	for _, c := range rec.copies {
		for _, g := range c.groups {
			out = append(out, groupAttrs(g, c))
			for _, r := range g.Rcpts {
				seen[r] = true
			}
		}
	}
	// Groups without a copy (a refused message).
	for _, g := range rec.dec.Groups {
		if len(g.Rcpts) > 0 && !seen[g.Rcpts[0]] {
			out = append(out, groupAttrs(g, nil))
		}
	}
	return out
}

func groupAttrs(g policy.Group, c *outgoing) map[string]any {
	a := map[string]any{"action": string(g.Settings.Action), "rcpts": g.Rcpts}
	if c != nil && c.action != g.Settings.Action {
		// The rule said encrypt, but the message had nothing to zip.
		a["action"], a["rule_action"] = string(c.action), string(g.Settings.Action)
	}
	if g.Rule != "" {
		a["rule"] = g.Rule
	}
	if g.Reason != "" {
		a["reason"] = g.Reason
	}
	if c == nil {
		return a
	}
	a["delivered"] = c.accepted && c.recordErr == nil && c.takenBack == ""
	if c.takenBack != "" {
		a["taken_back"] = c.takenBack // canceled before it left: not sent
	}
	if c.accepted {
		a["record_ms"] = float64(c.recorded.Microseconds()) / 1000
	}
	linkAttrs(c, a)
	if c.action == policy.Encrypt || c.action == policy.Link {
		a["zip_method"], a["filename_encoding"] = c.settings.ZipMethod, c.settings.FilenameEncoding
		a["password_to"], a["language"] = string(c.settings.PasswordTo), c.settings.Language
		if c.job != nil {
			a["job"] = c.job.ID
			if c.reused {
				a["job_reused"] = true
			}
			if c.accepted && !c.job.DueAt.IsZero() {
				a["password_due"] = c.job.DueAt.Format(time.RFC3339)
			}
		}
	}
	if c.dkim != "" {
		a["dkim"] = c.dkim
	}
	return a
}

func (g *Gateway) logResult(rec *record, start time.Time, err error) {
	atts := make([]any, 0, len(rec.entries))
	for _, e := range rec.entries {
		atts = append(atts, map[string]any{
			"name": e.Name, "size": e.Size, "sha256": fmt.Sprintf("%x", e.SHA256),
		})
	}
	attrs := []any{
		"id", rec.id, "queue_id", rec.queueID, "from", rec.env.From, "rcpts", rec.env.Addrs(),
		"action", rec.action, "groups", rec.groups(), "attachments", atts,
		"duration_ms", g.Now().Sub(start).Milliseconds(),
	}
	if rec.reason != "" {
		attrs = append(attrs, "reason", rec.reason)
	}
	if len(rec.already) > 0 {
		attrs = append(attrs, "already_delivered", rec.already)
	}
	if rec.released {
		attrs = append(attrs, "released_from_hold", true)
	}
	if h := rec.held; h != nil {
		held := map[string]any{"reasons": h.Reasons}
		var files []any
		for _, f := range h.Files {
			files = append(files, map[string]any{"name": f.Name, "size_about": f.Size})
		}
		if files != nil {
			held["files"] = files
		}
		if !h.HoldUntil.IsZero() {
			held["until"] = h.HoldUntil.Format(time.RFC3339)
		}
		if len(h.Approvals) > 0 {
			held["approvers"] = h.Approvals
		}
		if h.Visible > 0 {
			held["visible_outside"] = h.Visible
		}
		if !h.Expires.IsZero() {
			held["expires"] = h.Expires.Format(time.RFC3339)
		}
		attrs = append(attrs, "held", held)
	}
	if err != nil {
		re := reply.From(err)
		attrs = append(attrs, "result", fmt.Sprintf("%d %d.%d.%d", re.Code, re.Enhanced[0], re.Enhanced[1], re.Enhanced[2]), "error", re.Error())
		g.log.Warn("message", attrs...)
		return
	}
	attrs = append(attrs, "result", "250")
	g.log.Info("message", attrs...)
}
