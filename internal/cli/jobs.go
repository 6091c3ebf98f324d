package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

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
	state := fs.String("state", "", "only jobs in this state (list)")
	limit := fs.Int("limit", 50, "at most this many jobs (list)")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return 2
	}
	cfg, ok := adminConfig(*path, *data, stderr)
	if !ok {
		return 1
	}
	st, ok := adminStore(cfg, stderr)
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
		return 0
	case "show", "cancel", "release":
	default:
		fmt.Fprintf(stderr, "zipgate: unknown jobs command %q\n\n%s", verb, usage)
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "zipgate jobs %s: give one job ID\n", verb)
		return 2
	}
	id := pos[0]
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
