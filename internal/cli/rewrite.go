package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/spool"
)

const rewriteUsage = `Usage:
  zipgate rewrite [-config FILE] [-data DIR] [-from SENDER] [-to RECIPIENT ...] [-copy N] < message.eml > out.eml

Runs one message through the same path as serve, offline: the decision per
recipient and the rule behind it, the zip, the notice. Nothing is stored or
sent. The copy goes to stdout (the first zipped one, or -copy N); what was
decided, the files and the password go to stderr. Without -from and -to the
envelope is taken from the From, To and Cc fields. The rules are those in
the store of -data (or the configuration's data_dir), when there is one.
`

func rewriteCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rewrite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rewriteUsage) }
	path := fs.String("config", "", "configuration file (TOML)")
	data := fs.String("data", "", "state directory (data_dir) whose policies apply")
	from := fs.String("from", "", "envelope sender (default: the From field)")
	var to stringList
	fs.Var(&to, "to", "envelope recipient, repeat for more (default: the To and Cc fields)")
	which := fs.Int("copy", 0, "which copy to write to stdout, from 1 (default: the first zipped copy)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "zipgate rewrite: the message comes on stdin, not as %q\n", pos[0])
		return 2
	}
	cfg, ok := adminConfig(*path, *data, stderr)
	if !ok {
		return 1
	}
	tmp, err := os.MkdirTemp("", "zipgate-rewrite-")
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	msg := spool.New(tmp, cfg.SMTP.SpoolMemoryBytes)
	defer msg.Close()
	// As it arrives over SMTP: lines end in CRLF.
	if err := toCRLF(msg, stdin); err != nil {
		fmt.Fprintf(stderr, "zipgate rewrite: reading the message: %v\n", err)
		return 1
	}

	env, err := envelope(msg, *from, to, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "zipgate rewrite: %v\n", err)
		return 2
	}
	var rules []policy.Policy
	if st, err := openExistingStore(cfg); err == nil {
		rules, err = st.ListPolicies(context.Background())
		st.Close()
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
	} else {
		fmt.Fprintf(stderr, "note: %v; deciding by the configuration alone\n", err)
	}
	tmpl, err := notice.Load(notice.Options{BodyText: cfg.Notice.Text, Dir: cfg.Notice.TemplateDir,
		Charset: cfg.Notice.Charset, Language: cfg.Notice.Language})
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: %v\n", err)
		return 1
	}
	gw, err := gateway.New(cfg, tmp, nil, tmpl, &relay.Client{}, nil, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: %v\n", err)
		return 1
	}
	p, err := gw.Preview(env, msg, rules)
	if err != nil {
		fmt.Fprintf(stderr, "zipgate rewrite: %v\n", err)
		return 1
	}
	defer p.Close()
	describePreview(stderr, env, p)
	if p.Refusal != nil {
		return 1
	}
	n := *which
	if n == 0 {
		n = 1
		for i, c := range p.Copies {
			if c.Action != policy.Pass {
				n = i + 1
				break
			}
		}
	}
	if n < 1 || n > len(p.Copies) {
		fmt.Fprintf(stderr, "zipgate rewrite: -copy %d: there are %d copies\n", n, len(p.Copies))
		return 2
	}
	if _, err := io.Copy(stdout, p.Copies[n-1].Message()); err != nil {
		fmt.Fprintf(stderr, "zipgate rewrite: %v\n", err)
		return 1
	}
	return 0
}

// envelope is -from and -to, or what the message's fields say.
func envelope(msg *spool.File, from string, to []string, cfg config.Config) (*relay.Envelope, error) {
	if from == "" || len(to) == 0 {
		hdr, err := rewrite.TopHeader(msg, msg.Size(), rewrite.Limits{MaxHeaderBytes: cfg.SMTP.MaxHeaderBytes})
		if err != nil {
			return nil, fmt.Errorf("reading the header: %w", err)
		}
		if from == "" {
			if a, err := mail.ParseAddress(hdr.Get("From")); err == nil {
				from = a.Address
			}
		}
		if len(to) == 0 {
			for _, f := range []string{"To", "Cc"} {
				if v := hdr.Get(f); v != "" {
					list, err := mail.ParseAddressList(v)
					if err != nil {
						return nil, fmt.Errorf("the %s field does not parse (%v); give -to", f, err)
					}
					for _, a := range list {
						to = append(to, a.Address)
					}
				}
			}
		}
	}
	if len(to) == 0 {
		return nil, errors.New("no recipients: give -to, or a message with To or Cc")
	}
	env := &relay.Envelope{From: from}
	for _, r := range to {
		env.Rcpts = append(env.Rcpts, relay.Rcpt{Addr: strings.TrimSpace(r)})
	}
	return env, nil
}

func describePreview(w io.Writer, env *relay.Envelope, p *gateway.Preview) {
	fmt.Fprintf(w, "envelope: %s -> %s\n", orNull(env.From), strings.Join(env.Addrs(), ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, g := range p.Decision.Groups {
		why := g.Reason
		if why == "" {
			why = "rule " + g.Rule
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", strings.Join(g.Rcpts, ", "), g.Settings.Action, why)
	}
	tw.Flush()
	if d := p.Decision; d.Waits() {
		var why []string
		if d.Hold > 0 {
			why = append(why, "a hold of "+shortDuration(d.Hold))
		}
		for _, set := range d.Approvals {
			why = append(why, "approval by one of "+strings.Join(set, ", "))
		}
		if d.Guard == policy.GuardHold {
			why = append(why, fmt.Sprintf("the sender's Send now (%d outside addresses in To/Cc)", d.Visible))
		}
		fmt.Fprintf(w, "held first, until: %s; then:\n", strings.Join(why, "; "))
	}
	switch {
	case p.Refusal != nil:
		fmt.Fprintf(w, "refused: %d %d.%d.%d %s\n", p.Refusal.Code, p.Refusal.Enhanced[0], p.Refusal.Enhanced[1],
			p.Refusal.Enhanced[2], p.Refusal.Text)
		return
	case p.Action == "pass":
		fmt.Fprintf(w, "passes as sent: %s\n", p.Reason)
	}
	for i, c := range p.Copies {
		s := c.Settings
		switch c.Action {
		case policy.Encrypt:
			fmt.Fprintf(w, "copy %d: zipped for %s: %s (%s, names %s, notice %s)\n", i+1, strings.Join(c.Rcpts, ", "),
				c.ZipName, s.ZipMethod, s.FilenameEncoding, s.Language)
		case policy.Link:
			fmt.Fprintf(w, "copy %d: a download link for %s (%s; notice %s; files not kept by this preview)\n", i+1,
				strings.Join(c.Rcpts, ", "), linkText(s.LinkExpiry, s.MaxDownloads, s.LinkAuth), s.Language)
		default:
			fmt.Fprintf(w, "copy %d: the original, to %s\n", i+1, strings.Join(c.Rcpts, ", "))
			continue
		}
		for _, f := range c.Files {
			fmt.Fprintf(w, "  %s  %d bytes\n", f.Name, f.Size)
		}
		if s.LinkAuth == policy.AuthOTP {
			fmt.Fprintln(w, "  no password mail: the page mails a one-time code to the recipient who asks")
			continue
		}
		to := "the recipients"
		switch s.PasswordTo {
		case policy.ToSender:
			to = "the sender"
		case policy.Manual:
			to = "the recipients when the sender releases it"
		}
		fmt.Fprintf(w, "  password %s, mailed to %s after %s\n", c.Password, to, shortDuration(s.Delay))
	}
}

func orNull(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

// toCRLF copies a message, ending every line in CRLF, as SMTP delivers it.
func toCRLF(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
				if len(line) > 0 && line[len(line)-1] == '\r' {
					line = line[:len(line)-1]
				}
				bw.Write(line)
				bw.WriteString("\r\n")
			} else {
				bw.Write(line)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return bw.Flush()
		case err != nil:
			return err
		}
	}
}
