package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/web"
)

// setupLinks makes what download links need: their files in
// data_dir/links (or in the shared store), the scheduler that ends them and mails the sender, and
// the recipients' pages.
func setupLinks(cfg config.Config, st store.Store, next *relay.Client, tmpl *notice.Templates, log *slog.Logger) (*links.Scheduler, *web.LinkPages, error) {
	dir, err := links.NewDir(filepath.Join(cfg.DataDir, "links"))
	if err != nil {
		return nil, nil, err
	}
	files := &links.Files{Blobs: dir}
	if pg, ok := st.(*store.Postgres); ok {
		// Every node serves the links any node made.
		files.Blobs = links.Shared{B: pg.Blobs(store.BlobLinks)}
	}
	sched := links.NewScheduler(st, files, next, tmpl, log)
	sched.Hostname, sched.NoticeFrom = cfg.SMTP.Hostname, cfg.Release.NoticeFrom
	sched.Retention, sched.NotifyFirst = cfg.Release.Retention.D(), cfg.Links.NotifyFirstDownload
	pages := &web.LinkPages{Files: files, Codes: sched, Wake: sched.Wake}
	for _, n := range cfg.Links.TrustedProxies {
		p, _ := config.ParseNetwork(n) // validated
		pages.TrustedProxies = append(pages.TrustedProxies, p)
	}
	if u, err := url.Parse(cfg.Web.BaseURL); err == nil && u.Scheme == "https" {
		pages.SecureCookie = true
	}
	return sched, pages, nil
}

// revokeCmd takes a download link back for an admin: it stops working at
// once, whatever was already sent.
func revokeCmd(ctx context.Context, st store.Store, stdout, stderr io.Writer, id string, now time.Time) int {
	l, err := st.GetLink(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(stderr, "zipgate: %s: no download link with that id (zipgate jobs list shows them)\n", id)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: %v\n", err)
		return 1
	}
	err = st.EndLink(ctx, id, store.LinkRevoked, "admin", store.Event{Message: l.Message, At: now,
		Event: links.EventRevoked, Actor: "admin", Via: "cli", Detail: id})
	if errors.Is(err, store.ErrLinkEnded) {
		fmt.Fprintf(stderr, "zipgate: download link %s is %s already; nothing to revoke\n", id, l.State)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: download link %s: %v\n", id, err)
		return 1
	}
	fmt.Fprintf(stdout, "download link %s revoked: it no longer opens, and the running server deletes its files within seconds\n", id)
	showLink(ctx, st, stdout, id)
	return 0
}

// listLinks prints the download links under the jobs.
func listLinks(ctx context.Context, st store.Store, w io.Writer, limit int) error {
	list, err := st.ListLinks(ctx, limit)
	if err != nil || len(list) == 0 {
		return err
	}
	fmt.Fprintln(w, "\nDownload links (their jobs above send the password; revoke with zipgate jobs revoke ID):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tEXPIRES\tDOWNLOADS\tAUTH\tSENDER\tRECIPIENTS\tFILES")
	for _, l := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", l.ID, l.State, l.CreatedAt.Format(time.DateTime),
			l.ExpiresAt.Format(time.DateTime), downloads(l), l.Auth, l.Sender, strings.Join(l.Rcpts, ","), len(l.Files))
	}
	return tw.Flush()
}

func downloads(l *store.Link) string {
	if l.MaxDownloads == 0 {
		return fmt.Sprint(l.Downloads)
	}
	return fmt.Sprintf("%d/%d", l.Downloads, l.MaxDownloads)
}

// showLink prints the download link of job id, if it has one, with the
// message's history: views, tries, downloads, the end.
func showLink(ctx context.Context, st store.Store, w io.Writer, id string) {
	l, err := st.GetLink(ctx, id)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "Link:       %s (opens with %s)\nExpires:    %s\nDownloads:  %s\n", l.State, l.Auth,
		l.ExpiresAt.Format(time.RFC3339), downloads(l))
	if !l.FirstDownloadAt.IsZero() {
		fmt.Fprintf(w, "First:      %s\n", l.FirstDownloadAt.Format(time.RFC3339))
	}
	if l.Failures > 0 {
		fmt.Fprintf(w, "Wrong:      %d passwords or codes\n", l.Failures)
	}
	if !l.EndedAt.IsZero() {
		fmt.Fprintf(w, "Ended:      %s by %s (files deleted: %v)\n", l.EndedAt.Format(time.RFC3339), l.EndedBy, l.FilesGone)
	}
	if ev, err := st.Events(ctx, l.Message); err == nil && len(ev) > 0 {
		fmt.Fprintln(w, "History:")
		for _, e := range ev {
			fmt.Fprintf(w, "  %s  %-20s %s %s %s\n", e.At.Format(time.DateTime), e.Event, e.Actor, dash(e.Via), e.Detail)
		}
	}
}
