package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// jobs lets an admin look at and act on release jobs, in the same store
// as the running server; the server sees changes on its next poll.
func jobs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("jobs "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the server's configuration `file`, to find its store")
	data := fs.String("data", "", "the server's state `directory` (data_dir); overrides the file's")
	state := fs.String("state", "", "only jobs (or held messages) in this state (list)")
	limit := fs.Int("limit", 50, "at most this many jobs (list)")
	by := fs.String("by", "", "the approver in whose name to approve (approve)")
	reason := fs.String("reason", "", "why, for the sender (reject)")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return 2
	}
	_, st, ok := openAdmin(*path, *data, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()

	switch verb {
	case "list":
		list, err := st.List(ctx, store.State(*state), *limit)
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tDUE\tSENDER\tRECIPIENTS\tZIP\tFILES")
		for _, j := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", j.ID, j.State, j.CreatedAt.Format(time.DateTime),
				due(j, time.DateTime), j.Sender, strings.Join(j.Rcpts, ","), j.ZipName, len(j.Files))
		}
		tw.Flush()
		held, err := st.ListHeld(ctx, store.HeldState(*state), *limit)
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		if len(held) > 0 {
			fmt.Fprintln(stdout, "\nHeld messages (kept back before they leave; their jobs come when they do):")
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tWAITS FOR\tSENDER\tRECIPIENTS\tSUBJECT")
			for _, h := range held {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.State, h.CreatedAt.Format(time.DateTime),
					waitsFor(h, now), h.Sender, strings.Join(h.Rcpts, ","), h.Subject)
			}
			tw.Flush()
		}
		if err := listLinks(ctx, st, stdout, *limit); err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		return 0
	case "revoke":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, "zipgate jobs revoke: give one job ID (of a download link)")
			return 2
		}
		return revokeCmd(ctx, st, stdout, stderr, pos[0], now)
	case "show", "cancel", "release", "approve", "reject":
	default:
		fmt.Fprintf(stderr, "zipgate: unknown jobs command %q\n\n%s", verb, usage)
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "zipgate jobs %s: give one job ID\n", verb)
		return 2
	}
	id := pos[0]
	// A held message first: its id is also the id of its first job once
	// it left, but while it waits, it is what the admin means.
	if h, err := st.GetHeld(ctx, id); err == nil && (h.State == store.HeldWaiting || verb == "approve" || verb == "reject") {
		return heldCmd(ctx, st, stdout, stderr, verb, h, *by, *reason, now)
	} else if err == nil && verb == "show" {
		showHeld(ctx, st, stdout, h)
		if _, err := st.Get(ctx, id); err != nil {
			return 0 // it never had a password job (it passed, or never left)
		}
		fmt.Fprintln(stdout)
	}
	if verb == "approve" || verb == "reject" {
		fmt.Fprintf(stderr, "zipgate: %s: no held message with that id\n", id)
		return 1
	}
	if h, err := st.GetHeld(ctx, id); err == nil && verb != "show" {
		if _, err := st.Get(ctx, id); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "zipgate: held message %s is %s already; nothing to %s\n", id, h.State, verb)
			return 1
		}
	}
	if l, lerr := st.GetLink(ctx, id); lerr == nil {
		switch {
		case verb == "cancel":
			// Canceling a link's job is taking its files back.
			return revokeCmd(ctx, st, stdout, stderr, id, now)
		case verb == "release" && l.Auth == policy.AuthOTP:
			fmt.Fprintf(stderr, "zipgate: job %s: its download link opens with one-time codes; it has no password to send\n", id)
			return 1
		}
	}
	switch verb {
	case "cancel":
		err = st.Cancel(ctx, id, now)
	case "release":
		err = st.ReleaseNow(ctx, id, now)
	}
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: job %s: %v\n", id, err)
		return 1
	}
	j, err := st.Get(ctx, id)
	if err == nil {
		cliEvent(ctx, st, stderr, store.Event{Message: orID(j.Message, j.ID), At: now,
			Event: map[string]string{"cancel": "password_canceled", "release": "password_release_now"}[verb], Detail: "job " + id})
	}
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: job %s: %v\n", id, err)
		return 1
	}
	switch verb {
	case "cancel":
		fmt.Fprintf(stdout, "job %s canceled: its password will not be sent\n", id)
	case "release":
		fmt.Fprintf(stdout, "job %s released: the running server sends its password within seconds\n", id)
	}
	showJob(stdout, j)
	showLink(ctx, st, stdout, id)
	return 0
}

// showJob prints a job for an admin; never the password.
func showJob(w io.Writer, j *store.Job) {
	fmt.Fprintf(w, "ID:         %s\nState:      %s\nSender:     %s\nRecipients: %s\nSubject:    %s\nMessage-ID: %s\nZip:        %s\n",
		j.ID, j.State, j.Sender, strings.Join(j.Rcpts, ", "), j.Subject, j.MessageID, j.ZipName)
	for _, f := range j.Files {
		fmt.Fprintf(w, "  file:     %s  %d bytes  sha256 %s\n", f.Name, f.Size, f.SHA256)
	}
	if j.PasswordTo != "" {
		fmt.Fprintf(w, "Password:   to %s (rule %s, language %s)\n", j.PasswordTo, dash(j.Rule), dash(j.Language))
	}
	fmt.Fprintf(w, "Created:    %s\nDue:        %s\n", j.CreatedAt.Format(time.RFC3339), due(j, time.RFC3339))
	if !j.FinishedAt.IsZero() {
		fmt.Fprintf(w, "Finished:   %s\n", j.FinishedAt.Format(time.RFC3339))
	}
	if j.Attempts > 0 || j.LastError != "" {
		fmt.Fprintf(w, "Attempts:   %d  last error: %s\n", j.Attempts, j.LastError)
	}
}

// due shows when the password goes; a job without a due time waits for
// the sender's Release now.
func due(j *store.Job, layout string) string {
	if j.DueAt.IsZero() {
		return "on release"
	}
	return j.DueAt.Format(layout)
}

// heldCmd acts on a held message for an admin: show, release (send now),
// cancel, approve (in an approver's name), reject.
func heldCmd(ctx context.Context, st store.Store, stdout, stderr io.Writer, verb string, h *store.HeldMessage,
	by, reason string, now time.Time) int {
	var err error
	var done string
	switch verb {
	case "show":
		showHeld(ctx, st, stdout, h)
		return 0
	case "release":
		err, done = st.SendHeldNow(ctx, h.ID, "admin", "cli", now), "released: it leaves within seconds, once nothing else holds it"
	case "cancel":
		err, done = st.CancelHeld(ctx, h.ID, "admin", "cli", now), "canceled: it will not be sent, and its copy is deleted"
	case "approve", "reject":
		if by == "" {
			fmt.Fprintf(stderr, "zipgate jobs %s: give -by APPROVER, one of the approvers of %s\n", verb, h.ID)
			return 2
		}
		if verb == "approve" {
			err, done = st.ApproveHeld(ctx, h.ID, by, "cli", now), "approved in the name of "+by
		} else {
			err, done = st.RejectHeld(ctx, h.ID, by, "cli", reason, now), "rejected in the name of "+by+": it will not be sent"
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: held message %s: %v\n", h.ID, err)
		return 1
	}
	fmt.Fprintf(stdout, "held message %s %s\n", h.ID, done)
	if h, err = st.GetHeld(ctx, h.ID); err == nil {
		showHeld(ctx, st, stdout, h)
	}
	return 0
}

// waitsFor says in a few words what a held message waits for.
func waitsFor(h *store.HeldMessage, now time.Time) string {
	if h.State != store.HeldWaiting {
		return "-"
	}
	var w []string
	if h.HoldUntil.After(now) {
		w = append(w, "until "+h.HoldUntil.Format(time.DateTime))
	}
	for _, set := range h.Approvals {
		w = append(w, "approval by "+strings.Join(set, "|"))
	}
	if !h.SenderOK {
		w = append(w, fmt.Sprintf("sender (%d outside addresses in To/Cc)", h.Visible))
	}
	if len(w) == 0 {
		return "nothing: leaving"
	}
	return strings.Join(w, ", ")
}

// showHeld prints a held message and its history for an admin.
func showHeld(ctx context.Context, st store.Store, w io.Writer, h *store.HeldMessage) {
	fmt.Fprintf(w, "Held:       %s\nState:      %s\nWaits for:  %s\nSender:     %s\nRecipients: %s\nSubject:    %s\nMessage-ID: %s\n",
		h.ID, h.State, waitsFor(h, time.Now()), h.Sender, strings.Join(h.Rcpts, ", "), h.Subject, h.MessageID)
	for _, f := range h.Files {
		fmt.Fprintf(w, "  file:     %s  about %d bytes\n", f.Name, f.Size)
	}
	fmt.Fprintf(w, "Why:        %s\nCreated:    %s\n", strings.Join(h.Reasons, ", "), h.CreatedAt.Format(time.RFC3339))
	if !h.Expires.IsZero() {
		fmt.Fprintf(w, "Expires:    %s\n", h.Expires.Format(time.RFC3339))
	}
	for _, a := range h.Approved {
		fmt.Fprintf(w, "Approved:   by %s (%s) at %s\n", a.By, a.Via, a.At.Format(time.RFC3339))
	}
	if h.DecidedBy != "" {
		fmt.Fprintf(w, "Decided by: %s %s\n", h.DecidedBy, h.Reason)
	}
	if h.LastError != "" {
		fmt.Fprintf(w, "Last error: %s (attempts %d)\n", h.LastError, h.Attempts)
	}
	if ev, err := st.Events(ctx, h.ID); err == nil && len(ev) > 0 {
		fmt.Fprintln(w, "History:")
		for _, e := range ev {
			fmt.Fprintf(w, "  %s  %-9s %s %s %s\n", e.At.Format(time.DateTime), e.Event, e.Actor, dash(e.Via), e.Detail)
		}
	}
}

func orID(message, id string) string {
	if message == "" {
		return id
	}
	return message
}

// cliEvent adds an admin's action from the shell to the audit trail; the
// action is done, so a store that cannot write it costs a warning.
func cliEvent(ctx context.Context, st store.Store, stderr io.Writer, e store.Event) {
	e.Actor, e.Via = cliActor(), "cli"
	if err := st.AddEvent(ctx, e); err != nil {
		fmt.Fprintf(stderr, "zipgate: warning: the audit trail did not take it: %v\n", err)
	}
}
