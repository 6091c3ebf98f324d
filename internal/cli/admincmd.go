package cli

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/hold"
	"github.com/zipgate/zipgate/internal/metrics"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/web"
)

const adminUsage = `Usage:
  zipgate admin user add NAME      make an account of the admin pages, or set a new password
                                   (asked twice on a terminal; else one line from stdin)
  zipgate admin user list
  zipgate admin user delete NAME   (its sessions end)
  zipgate admin token create NAME  make an API token and print it, once: only its hash is kept
  zipgate admin token list
  zipgate admin token revoke NAME
Each also takes -config FILE and -data DIR, before or after the name.
`

// minAdminPassword is the shortest password an account takes: the pages
// may be reached by anyone who reaches the admin listener.
const minAdminPassword = 12

// adminCmd manages the accounts of the admin pages and the API tokens,
// in the store of the running server. Every change is in the audit
// trail. It never makes a store.
func adminCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, adminUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if len(args) < 2 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	kind, verb := args[0], args[1]
	want := map[string]int{"user add": 1, "user list": 0, "user delete": 1, "token create": 1, "token list": 0, "token revoke": 1}
	n, ok := want[kind+" "+verb]
	if !ok {
		fmt.Fprintf(stderr, "zipgate: unknown admin command %q\n\n%s", kind+" "+verb, adminUsage)
		return 2
	}
	fs := flag.NewFlagSet("admin "+kind+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	path := fs.String("config", "", "the server's configuration `file`, to find its store")
	data := fs.String("data", "", "the server's state `directory` (data_dir); overrides the file's")
	pos, err := parseArgs(fs, args[2:])
	if err != nil {
		return 2
	}
	if len(pos) != n {
		if n == 0 {
			fmt.Fprintf(stderr, "zipgate admin %s %s: unexpected %q\n", kind, verb, strings.Join(pos, " "))
		} else {
			fmt.Fprintf(stderr, "zipgate admin %s %s: give one NAME\n", kind, verb)
		}
		return 2
	}
	name := ""
	if n == 1 {
		name = pos[0]
		if !validName(name) {
			fmt.Fprintf(stderr, "zipgate admin %s %s: %q: a name is 1 to 64 letters, digits, '.', '_', '-' or '@'\n", kind, verb, name)
			return 2
		}
	}
	cfg, ok := adminConfig(*path, *data, stderr)
	if !ok {
		return 1
	}
	// The password is read before the store is opened: a wrong -config
	// is said first all the same, since adminConfig checked it.
	var password string
	if kind == "user" && verb == "add" {
		if password, err = readPassword(stdin, stderr); err != nil {
			fmt.Fprintf(stderr, "zipgate admin user add: %v\n", err)
			return 1
		}
	}
	st, ok := adminStore(cfg, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	actor := cliActor()
	event := func(ev, target, detail string) {
		if err := st.AddEvent(ctx, store.Event{At: now, Event: ev, Actor: actor, Via: "cli", Target: target, Detail: detail}); err != nil {
			fmt.Fprintf(stderr, "zipgate: warning: the audit trail did not take it: %v\n", err)
		}
	}
	switch kind + " " + verb {
	case "user add":
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		created, err := st.PutAdmin(ctx, name, hash, now)
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		if created {
			event("admin_added", "admin "+name, "")
			fmt.Fprintf(stdout, "admin %s added; sign in at the admin pages (admin.listen, /admin/)\n", name)
		} else {
			event("admin_password_set", "admin "+name, "its sessions ended")
			fmt.Fprintf(stdout, "new password for admin %s; its sessions ended\n", name)
		}
	case "user list":
		list, err := st.ListAdmins(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tPASSWORD SET\tLAST LOGIN")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.CreatedAt.Local().Format(time.DateTime),
				a.UpdatedAt.Local().Format(time.DateTime), when(a.LastLogin))
		}
		tw.Flush()
	case "user delete":
		if err := st.DeleteAdmin(ctx, name); errors.Is(err, store.ErrNoAdmin) {
			fmt.Fprintf(stderr, "zipgate: no admin %s (zipgate admin user list shows them)\n", name)
			return 1
		} else if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		event("admin_deleted", "admin "+name, "its sessions ended")
		fmt.Fprintf(stdout, "admin %s deleted; its sessions ended\n", name)
	case "token create":
		token, err := newAPIToken()
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		h := sha256.Sum256([]byte(token))
		if err := st.CreateToken(ctx, name, h[:], now); errors.Is(err, store.ErrExists) {
			fmt.Fprintf(stderr, "zipgate: a token named %s exists; revoke it first or choose another name\n", name)
			return 1
		} else if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		event("token_created", "token "+name, "")
		fmt.Fprintf(stderr, "API token %s made. It is shown this once; only its hash is kept:\n", name)
		fmt.Fprintln(stdout, token)
	case "token list":
		list, err := st.ListTokens(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tLAST USED")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.CreatedAt.Local().Format(time.DateTime), when(t.LastUsed))
		}
		tw.Flush()
	case "token revoke":
		if err := st.RevokeToken(ctx, name); errors.Is(err, store.ErrNoToken) {
			fmt.Fprintf(stderr, "zipgate: no token %s (zipgate admin token list shows them)\n", name)
			return 1
		} else if err != nil {
			fmt.Fprintf(stderr, "zipgate: %v\n", err)
			return 1
		}
		event("token_revoked", "token "+name, "")
		fmt.Fprintf(stdout, "token %s revoked\n", name)
	}
	return 0
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return false
		}
	}
	return true
}

// cliActor is who a CLI change is recorded as: the CLI and the Unix user
// who ran it.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli " + u.Username
	}
	return fmt.Sprintf("cli uid %d", os.Getuid())
}

// newAPIToken is 256 random bits, prefixed so a leaked one is
// recognisable.
func newAPIToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "zgt_" + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// readPassword asks twice on a terminal, without echo; otherwise it reads
// one line (a script: echo "$PW" | zipgate admin user add NAME).
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ; nothing changed")
		}
		pw = string(a)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("no password on stdin")
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if utf8.RuneCountInString(pw) < minAdminPassword {
		return "", fmt.Errorf("the password must have at least %d characters; nothing changed", minAdminPassword)
	}
	if len(pw) > 72 {
		return "", errors.New("the password must be at most 72 bytes (bcrypt's limit); nothing changed")
	}
	return pw, nil
}

// adminServer is the admin pages, the API and /metrics as serve runs
// them: on a listener of their own, or mounted on the sender page's.
type adminServer struct {
	addr     string
	serve    func() error
	shutdown func(context.Context)
	stop     func()
}

// startAdmin wires the metrics into the gateway and the schedulers and
// makes the admin handler; it listens on admin.listen, or mounts itself
// on the sender page's server (admin.listen = "web").
func startAdmin(cfg config.Config, st store.Store, key []byte, sched *release.Scheduler, holds *hold.Scheduler,
	gw *gateway.Gateway, pages *web.Server, page *http.Server, log *slog.Logger) (*adminServer, error) {
	m := metrics.New(version(), commit(), st)
	gw.Metrics, sched.Metrics, holds.Metrics = m, m, m
	sched.AuditRetention = cfg.Audit.Retention.D()
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("zipgate admin pages"))
	opts := web.AdminOptions{Store: st, Log: log, Wake: sched.Wake, WakeHold: holds.Wake,
		Metrics: m.Handler(), Secure: strings.HasPrefix(cfg.Web.BaseURL, "https:"),
		SessionTimeout: cfg.Admin.SessionTimeout.D(), Key: mac.Sum(nil), Defaults: cfg.PolicyConfig().Defaults}
	if pages.Links != nil {
		opts.WakeLinks = pages.Links.Wake
	}
	admin := web.NewAdmin(opts)
	if cfg.Admin.Listen == config.AdminOnWeb {
		page.Handler = web.Mount(pages, admin)
		return &adminServer{addr: "web", serve: func() error { return nil }, shutdown: func(context.Context) {}, stop: func() {}}, nil
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	srv := admin.HTTPServer(web.DefaultTimeouts, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	return &adminServer{addr: ln.Addr().String(), serve: func() error { return srv.Serve(ln) },
		shutdown: func(ctx context.Context) { srv.Shutdown(ctx) }, stop: func() { ln.Close() }}, nil
}
