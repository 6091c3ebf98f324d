package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

const policyUsage = `Usage:
  zipgate policy list
  zipgate policy show DOMAIN
  zipgate policy set DOMAIN [-action encrypt|pass|reject|link] [-password-to recipient|sender|manual]
                            [-delay 15m] [-zip-method aes256|zipcrypto] [-filename-encoding utf-8|cp932]
                            [-language ja|en|ja+en] [-hold 5m] [-approvers A,B|none] [-guard hold|reject]
                            [-link-expiry 7d] [-max-downloads N] [-link-auth password|otp] [-note TEXT]
  zipgate policy delete DOMAIN
  zipgate policy test -from SENDER -to RECIPIENT [-to RECIPIENT ...]
Each also takes -config FILE and -data DIR, before or after the domain.

DOMAIN is partner.example, *.partner.example (its subdomains) or * (every
domain); the most specific rule wins. A field given as "default" is unset:
it comes from the next less specific rule, then from the configuration
(release.delay, [zip], notice.language, [links]). A running server applies a change
to the next message.
`

// policyCmd lets an admin read and change the per-domain rules, in the
// same store as the running server.
func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("policy "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, policyUsage) }
	path := fs.String("config", "", "configuration file (TOML)")
	data := fs.String("data", "", "state directory (data_dir)")
	var f policyFlags
	var from string
	var to stringList
	switch verb {
	case "set":
		f.define(fs)
	case "test":
		fs.StringVar(&from, "from", "", "envelope sender")
		fs.Var(&to, "to", "envelope recipient (repeat for more)")
	case "list", "show", "delete":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, policyUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "zipgate: unknown policy command %q\n\n%s", verb, policyUsage)
		return 2
	}
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return 2
	}
	wantArgs := map[string]int{"list": 0, "show": 1, "set": 1, "delete": 1, "test": 0}[verb]
	if len(pos) != wantArgs {
		if wantArgs == 0 {
			fmt.Fprintf(stderr, "zipgate policy %s: unexpected %q\n", verb, strings.Join(pos, " "))
		} else {
			fmt.Fprintf(stderr, "zipgate policy %s: give one domain (partner.example, *.partner.example or *)\n", verb)
		}
		return 2
	}
	if verb == "test" && (from == "" && len(to) == 0) {
		fmt.Fprintln(stderr, "zipgate policy test: give -from SENDER and -to RECIPIENT")
		return 2
	}
	domain := ""
	if wantArgs == 1 {
		if domain, err = policy.NormalizePattern(pos[0]); err != nil {
			fmt.Fprintf(stderr, "zipgate policy %s: %v\n", verb, err)
			return 2
		}
	}
	cfg, st, ok := openAdmin(*path, *data, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	ctx := context.Background()
	pc := cfg.PolicyConfig()

	switch verb {
	case "list":
		err = listPolicies(ctx, stdout, st, pc)
	case "show":
		err = showPolicy(ctx, stdout, st, pc, domain)
	case "set":
		err = setPolicy(ctx, stdout, st, pc, domain, fs, &f)
	case "delete":
		old, _ := st.GetPolicy(ctx, domain)
		if err = st.DeletePolicy(ctx, domain); err == nil {
			cliEvent(ctx, st, stderr, store.Event{At: time.Now(), Event: "policy_deleted", Target: "policy " + domain,
				Detail: policy.Diff(old, nil)})
			fmt.Fprintf(stdout, "policy for %s deleted; mail to it follows the next less specific rule\n", domain)
		}
	case "test":
		err = testPolicy(ctx, stdout, st, pc, from, to)
	}
	if errors.Is(err, store.ErrNoPolicy) {
		fmt.Fprintf(stderr, "zipgate: no policy for %s (zipgate policy list shows them)\n", domain)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "zipgate policy %s: %v\n", verb, err)
		return 1
	}
	return 0
}

// parseArgs lets flags come before and after the positional arguments
// (zipgate policy set partner.example -action pass -data DIR).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, strings.Split(v, ",")...); return nil }

// policyFlags are the fields of `policy set`; only the flags given change.
type policyFlags struct {
	action, passwordTo, delay, zipMethod, names, language, note, hold, approvers, guard string
	linkExpiry, maxDownloads, linkAuth                                                  string
}

func (f *policyFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.action, "action", "", "encrypt, pass, reject (mail with attachments refused) or link (files stay here, the mail carries a download link)")
	fs.StringVar(&f.passwordTo, "password-to", "", "recipient, sender (who passes it on) or manual (when the sender presses Release now)")
	fs.StringVar(&f.delay, "delay", "", "time between the message and its password mail, e.g. 15m (overrides release.delay)")
	fs.StringVar(&f.zipMethod, "zip-method", "", "aes256 or zipcrypto (for recipients who open zips in Windows Explorer)")
	fs.StringVar(&f.names, "filename-encoding", "", "utf-8 or cp932 (file names for old Japanese Windows tools)")
	fs.StringVar(&f.language, "language", "", "ja, en or ja+en: the notices the recipients read")
	fs.StringVar(&f.note, "note", "", "a note for admins")
	fs.StringVar(&f.hold, "hold", "", "keep the whole message back this long before it leaves, e.g. 5m (overrides policy.hold)")
	fs.StringVar(&f.approvers, "approvers", "", "addresses, comma separated, one of whom must approve mail to this domain; none for nobody")
	fs.StringVar(&f.guard, "guard", "", "hold or reject: what a message gets that shows too many outside addresses in To/Cc")
	fs.StringVar(&f.linkExpiry, "link-expiry", "", "how long a download link works, e.g. 7d or 36h (overrides links.expiry)")
	fs.StringVar(&f.maxDownloads, "max-downloads", "", "downloads a link allows, each file or the whole zip counting one; 0 for no limit (overrides links.max_downloads)")
	fs.StringVar(&f.linkAuth, "link-auth", "", "password (mailed like a zip's) or otp (a code mailed to the recipient on request): what opens a link")
}

func setPolicy(ctx context.Context, w io.Writer, st store.Store, pc policy.Config, domain string, fs *flag.FlagSet, f *policyFlags) error {
	p, err := st.GetPolicy(ctx, domain)
	if errors.Is(err, store.ErrNoPolicy) {
		p, err = &policy.Policy{Domain: domain}, nil
	}
	if err != nil {
		return err
	}
	var before *policy.Policy
	if !p.UpdatedAt.IsZero() {
		b := *p // fields are replaced below, never changed in place
		before = &b
	}
	var bad []string
	set := 0
	// "default" (or nothing) unsets a field: it is then inherited.
	val := func(v string) string {
		if v = strings.TrimSpace(v); v == "default" {
			return ""
		}
		return v
	}
	fs.Visit(func(fl *flag.Flag) {
		v := val(fl.Value.String())
		set++
		switch fl.Name {
		case "action":
			p.Action = policy.Action(v)
		case "password-to":
			p.PasswordTo = policy.PasswordTo(v)
		case "delay":
			p.Delay = nil
			if v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					bad = append(bad, fmt.Sprintf("delay: %q is not a duration like 15m or 1h30m", v))
					return
				}
				p.Delay = &d
			}
		case "zip-method":
			p.ZipMethod = v
		case "filename-encoding":
			p.FilenameEncoding = v
		case "language":
			p.Language = v
		case "note":
			p.Note = fl.Value.String()
		case "hold":
			p.Hold = nil
			if v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					bad = append(bad, fmt.Sprintf("hold: %q is not a duration like 5m", v))
					return
				}
				p.Hold = &d
			}
		case "approvers":
			switch v {
			case "":
				p.Approvers = nil // inherited again
			case "none":
				p.Approvers = []string{}
			default:
				p.Approvers = nil
				for _, a := range strings.Split(v, ",") {
					if a = strings.TrimSpace(a); a != "" {
						p.Approvers = append(p.Approvers, a)
					}
				}
			}
		case "guard":
			p.Guard = v
		case "link-expiry":
			p.LinkExpiry = nil
			if v != "" {
				d, err := policy.ParseDuration(v)
				if err != nil {
					bad = append(bad, "link_expiry: "+err.Error())
					return
				}
				p.LinkExpiry = &d
			}
		case "max-downloads":
			p.MaxDownloads = nil
			if v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					bad = append(bad, fmt.Sprintf("max_downloads: %q is not a number (0 for no limit)", v))
					return
				}
				p.MaxDownloads = &n
			}
		case "link-auth":
			p.LinkAuth = v
		default: // -config, -data
			set--
		}
	})
	if set == 0 {
		return fmt.Errorf("nothing to set: give at least one of -action, -password-to, -delay, -zip-method, -filename-encoding, -language, -hold, -approvers, -guard, -link-expiry, -max-downloads, -link-auth, -note")
	}
	if err := p.Validate(); err != nil {
		bad = append(bad, err.Error())
	}
	if len(bad) > 0 {
		return fmt.Errorf("nothing changed: %s", strings.Join(bad, "; "))
	}
	p.UpdatedAt = time.Now()
	if err := st.PutPolicy(ctx, p); err != nil {
		return err
	}
	ev := "policy_set"
	if before == nil {
		ev = "policy_added"
	}
	cliEvent(ctx, st, io.Discard, store.Event{At: p.UpdatedAt, Event: ev, Target: "policy " + domain, Detail: policy.Diff(before, p)})
	fmt.Fprintf(w, "policy for %s saved; a running server applies it to the next message\n\n", domain)
	return showPolicy(ctx, w, st, pc, domain)
}

func listPolicies(ctx context.Context, w io.Writer, st store.Store, pc policy.Config) error {
	list, err := st.ListPolicies(ctx)
	if err != nil {
		return err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Domain < list[j].Domain })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tACTION\tPASSWORD TO\tDELAY\tZIP\tNAMES\tLANGUAGE\tHOLD\tAPPROVERS\tGUARD\tLINK\tUPDATED\tNOTE")
	for _, p := range list {
		delay, hold, approvers := "-", "-", "-"
		link := linkColumn(p)
		if p.Delay != nil {
			delay = shortDuration(*p.Delay)
		}
		if p.Hold != nil {
			hold = shortDuration(*p.Hold)
		}
		if p.Approvers != nil {
			approvers = strings.Join(p.Approvers, ",")
			if len(p.Approvers) == 0 {
				approvers = "none"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Domain, dash(string(p.Action)),
			dash(string(p.PasswordTo)), delay, dash(p.ZipMethod), dash(p.FilenameEncoding), dash(p.Language), hold, approvers,
			dash(p.Guard), link, p.UpdatedAt.Local().Format(time.DateTime), p.Note)
	}
	tw.Flush()
	d := pc.Defaults
	fmt.Fprintf(w, "\n- comes from a less specific rule, then the configuration: action encrypt, password to recipient, "+
		"delay %s, zip %s, names %s, language %s, hold %s, approvers none, guard hold, link %s.\n", shortDuration(d.Delay), d.ZipMethod,
		d.FilenameEncoding, d.Language, shortDuration(d.Hold), linkText(d.LinkExpiry, d.MaxDownloads, d.LinkAuth))
	if len(pc.LocalDomains) == 0 {
		fmt.Fprintln(w, "policy.local_domains is empty: every sender counts as local, no recipient as internal.")
	} else {
		fmt.Fprintf(w, "Local domains (their senders are processed; their recipients get mail as sent): %s\n",
			strings.Join(pc.LocalDomains, ", "))
	}
	return nil
}

// linkColumn shows a rule's link fields: expiry/downloads/auth, "-" for
// each left unset.
func linkColumn(p policy.Policy) string {
	if p.LinkExpiry == nil && p.MaxDownloads == nil && p.LinkAuth == "" {
		return "-"
	}
	exp, n := "-", "-"
	if p.LinkExpiry != nil {
		exp = shortDuration(*p.LinkExpiry)
	}
	if p.MaxDownloads != nil {
		n = strconv.Itoa(*p.MaxDownloads)
	}
	return exp + "/" + n + "/" + dash(p.LinkAuth)
}

// linkText says what a link's settings mean, for people.
func linkText(expiry time.Duration, max int, auth string) string {
	n := "no download limit"
	if max > 0 {
		n = fmt.Sprintf("%d downloads", max)
	}
	return fmt.Sprintf("%s, %s, %s", shortDuration(expiry), n, auth)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// showPolicy prints the rule stored for a pattern and what a recipient
// there gets, field by field with the rule each value comes from.
func showPolicy(ctx context.Context, w io.Writer, st store.Store, pc policy.Config, domain string) error {
	list, err := st.ListPolicies(ctx)
	if err != nil {
		return err
	}
	var own *policy.Policy
	for i := range list {
		if list[i].Domain == domain {
			own = &list[i]
		}
	}
	if own == nil {
		fmt.Fprintf(w, "No rule for %s.\n", domain)
	} else {
		fmt.Fprintf(w, "Rule for %s (updated %s)\n", domain, own.UpdatedAt.Local().Format(time.DateTime))
		if own.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", own.Note)
		}
	}
	// A recipient in that domain: for "*.x", one in a subdomain of x.
	example := strings.TrimPrefix(domain, "*.")
	switch {
	case domain == "*":
		example = "any.example"
	case strings.HasPrefix(domain, "*."):
		example = "sub." + example
	}
	if pc.LocalDomains.Contains(example) {
		fmt.Fprintf(w, "%s is a local domain: its recipients get mail as sent, whatever the rules say.\n", example)
		return nil
	}
	g := policy.Resolve(policy.NewRules(list).Chain(example), pc.Defaults)
	fmt.Fprintf(w, "Mail to %s:\n", example)
	writeSettings(w, g)
	return nil
}

// writeSettings prints effective settings with the rule each came from.
func writeSettings(w io.Writer, g policy.Group) {
	s := g.Settings
	from := func(field string) string {
		if r := g.From[field]; r != policy.RuleConfig {
			return "rule " + r
		}
		return "configuration"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  action\t%s\t%s\n", s.Action, from("action"))
	if s.Action == policy.Link {
		fmt.Fprintf(tw, "  link expiry\t%s\t%s\n", shortDuration(s.LinkExpiry), from("link_expiry"))
		n := "no limit"
		if s.MaxDownloads > 0 {
			n = strconv.Itoa(s.MaxDownloads)
		}
		fmt.Fprintf(tw, "  max downloads\t%s\t%s\n", n, from("max_downloads"))
		fmt.Fprintf(tw, "  link opens with\t%s\t%s\n", s.LinkAuth, from("link_auth"))
	}
	if s.Action == policy.Encrypt || s.Action == policy.Link && s.LinkAuth == policy.AuthPassword {
		fmt.Fprintf(tw, "  password to\t%s\t%s\n", s.PasswordTo, from("password_to"))
		if s.PasswordTo != policy.Manual {
			fmt.Fprintf(tw, "  delay\t%s\t%s\n", shortDuration(s.Delay), from("delay"))
		}
	}
	if s.Action == policy.Encrypt {
		fmt.Fprintf(tw, "  zip method\t%s\t%s\n", s.ZipMethod, from("zip_method"))
		fmt.Fprintf(tw, "  file names\t%s\t%s\n", s.FilenameEncoding, from("filename_encoding"))
	}
	if s.Action == policy.Encrypt || s.Action == policy.Link {
		fmt.Fprintf(tw, "  language\t%s\t%s\n", s.Language, from("language"))
	}
	if s.Action != policy.Reject {
		fmt.Fprintf(tw, "  hold\t%s\t%s\n", shortDuration(s.Hold), from("hold"))
		fmt.Fprintf(tw, "  approvers\t%s\t%s\n", dash(s.Approvers), from("approvers"))
	}
	fmt.Fprintf(tw, "  To/Cc guard\t%s\t%s\n", s.Guard, from("guard"))
	tw.Flush()
}

// testPolicy prints the decision for an envelope and the rule behind it.
func testPolicy(ctx context.Context, w io.Writer, st store.Store, pc policy.Config, from string, to []string) error {
	list, err := st.ListPolicies(ctx)
	if err != nil {
		return err
	}
	dec := policy.Decide(policy.Input{Sender: from, Rcpts: to}, policy.NewRules(list), pc)
	switch {
	case len(pc.LocalDomains) == 0:
		fmt.Fprintf(w, "Sender %s: local (policy.local_domains is empty, so every sender is)\n", from)
	case dec.SenderLocal:
		fmt.Fprintf(w, "Sender %s: local\n", from)
	default:
		fmt.Fprintf(w, "Sender %s: not local (not in %s): the message passes untouched and unsigned\n",
			from, strings.Join(pc.LocalDomains, ", "))
	}
	for _, g := range dec.Groups {
		fmt.Fprintf(w, "\n%s\n", strings.Join(g.Rcpts, ", "))
		switch {
		case g.Reason == policy.ReasonInternal:
			fmt.Fprintln(w, "  pass: internal recipient (policy.local_domains)")
		case g.Reason != "":
			fmt.Fprintf(w, "  pass: %s\n", g.Reason)
		default:
			fmt.Fprintf(w, "  decided by rule %s\n", g.Rule)
			writeSettings(w, g)
			if g.Settings.Action != policy.Pass {
				fmt.Fprintln(w, "  (only mail with attachments is zipped, linked or refused; other mail passes as sent)")
			}
		}
	}
	return nil
}
