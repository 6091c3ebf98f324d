package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/store"
)

// audit turns what the log line of a message says into its history in
// the store (received, the decision of each recipient group with its
// rule, each copy the next hop took or did not, the answer to Postfix)
// and into the metrics. It runs once per message, after the log line; a
// store that cannot write it costs the audit, never the message.
func (g *Gateway) audit(ctx context.Context, rec *record, err error) {
	var files int
	var bytes int64
	for _, e := range rec.entries {
		files++
		bytes += e.Size
	}
	g.Metrics.Message(rec.action, err, files, bytes, rec.zipping)
	for _, c := range rec.copies {
		if !c.accepted {
			g.Metrics.RelayError(c.err)
		}
	}
	if rec.id == "" || rec.msg == nil {
		return // refused before it had an id, or a retry of a message held already
	}
	evs := auditEvents(rec, err, g.Now())
	m := rec.msg
	switch {
	case err != nil:
		re := reply.From(err)
		m.Result = fmt.Sprintf("%d %d.%d.%d %s", re.Code, re.Enhanced[0], re.Enhanced[1], re.Enhanced[2], re.Text)
	case m.Result == "":
		m.Result = "250"
	}
	var fs []store.File
	for _, e := range rec.entries {
		fs = append(fs, store.File{Name: e.Name, Size: e.Size, SHA256: fmt.Sprintf("%x", e.SHA256)})
	}
	if rec.held != nil && fs == nil {
		fs = rec.held.Files
	}
	if werr := g.store.RecordMessage(context.WithoutCancel(ctx), m, fs, evs); werr != nil {
		g.log.Warn("could not write the message's history", "id", rec.id, "error", werr.Error())
	}
}

// auditEvents are the lines of a message's history its handling adds.
func auditEvents(rec *record, err error, now time.Time) []store.Event {
	ev := func(event, detail string) store.Event {
		return store.Event{Message: rec.id, At: now, Event: event, Actor: "zipgate", Via: "smtp", Detail: detail}
	}
	var out []store.Event
	if rec.released {
		out = append(out, ev("released_from_hold", ""))
	} else {
		d := fmt.Sprintf("from %s to %s", orNull(rec.env.From), strings.Join(rec.env.Addrs(), ", "))
		if rec.queueID != "" {
			d += ", Postfix queue id " + rec.queueID
		}
		out = append(out, ev("received", d))
	}
	if len(rec.already) > 0 {
		out = append(out, ev("already_delivered", strings.Join(rec.already, ", ")))
	}
	if rec.reason != "" && rec.action == "pass" {
		out = append(out, ev("pass", rec.reason))
	}
	for _, gr := range rec.dec.Groups {
		why := "rule " + gr.Rule
		if gr.Reason != "" {
			why = gr.Reason
		}
		out = append(out, ev("decision", fmt.Sprintf("%s: %s → %s", why, gr.Settings.Action, strings.Join(gr.Rcpts, ", "))))
	}
	for _, c := range rec.copies {
		d := fmt.Sprintf("%s copy to %s", c.action, strings.Join(c.addrs(), ", "))
		if c.job != nil {
			d += "; password job " + c.job.ID
			if c.accepted && !c.job.DueAt.IsZero() {
				d += ", due " + c.job.DueAt.Format(time.RFC3339)
			}
		}
		switch {
		case c.takenBack != "":
			out = append(out, ev("not_sent", fmt.Sprintf("%s copy to %s: job %s was canceled before it left",
				c.action, strings.Join(c.addrs(), ", "), c.takenBack)))
		case c.accepted && c.recordErr != nil:
			out = append(out, ev("delivered", d+"; not recorded, Postfix retries it"))
		case c.accepted:
			out = append(out, ev("delivered", d))
		default:
			re := reply.From(c.err)
			kind := "refused"
			if re.Temporary() {
				kind = "deferred"
			}
			out = append(out, ev(kind, fmt.Sprintf("%s: %d %s", d, re.Code, re.Text)))
		}
	}
	if err != nil {
		re := reply.From(err)
		kind := "refused"
		if re.Temporary() {
			kind = "deferred"
		}
		out = append(out, ev("answer", fmt.Sprintf("%s: %d %d.%d.%d %s", kind, re.Code, re.Enhanced[0], re.Enhanced[1],
			re.Enhanced[2], re.Text)))
	} else if len(rec.copies) > 0 || rec.action == "none" {
		out = append(out, ev("answer", "250"))
	}
	return out
}

func orNull(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}
