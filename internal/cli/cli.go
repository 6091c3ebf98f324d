// Package cli holds zipgate's subcommands.
package cli

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/hold"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/smtpd"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/web"
)

// Version and Commit are set at build time (scripts/package.sh):
//
//	-ldflags "-X github.com/zipgate/zipgate/internal/cli.Version=1.2.3 -X github.com/zipgate/zipgate/internal/cli.Commit=<hash>"
var Version, Commit = "", ""

// Stdin is where zipgate rewrite reads the message; tests replace it.
var Stdin io.Reader = os.Stdin

const usage = `zipgate: puts outgoing attachments into a password-protected zip and mails the password separately.

Usage:
  zipgate serve [-config FILE] [-listen ADDR] [-next-hop ADDR] [-data DIR] [-delay 10m] [-web-listen ADDR] [-admin-listen ADDR]
  zipgate configtest [-config FILE]
  zipgate jobs list [-config FILE] [-data DIR] [-state scheduled|released|canceled|failed] [-limit N]
  zipgate jobs show|cancel|release [-config FILE] [-data DIR] ID   (jobs, and held messages)
  zipgate jobs approve|reject ID -by APPROVER [-reason TEXT]   (a held message, for an approver)
  zipgate jobs revoke [-config FILE] [-data DIR] ID   (a download link: it stops working at once)
  zipgate policy list|show|set|delete|test ...   (zipgate policy help)
  zipgate admin user add|list|delete [NAME] | admin token create|list|revoke [NAME]   (zipgate admin help)
  zipgate rewrite [-config FILE] [-from SENDER] [-to RECIPIENT ...] < message.eml > out.eml
  zipgate dkim keygen -domain DOMAIN -selector SELECTOR [-algorithm rsa|ed25519] [-bits 2048] [-out FILE]
  zipgate store migrate -from sqlite:DIR -to postgres://USER@HOST/DB [-key FILE] [-password-file FILE]
  zipgate version

Without -config, zipgate runs on its built-in defaults: SMTP on 127.0.0.1:10025,
next hop 127.0.0.1:10026, password mails 10 minutes after their message, the
sender page on 127.0.0.1:8025, the admin pages on 127.0.0.1:8026, state under ./zipgate-data.
`

// Run runs the subcommand in args (without the program name) and returns
// the exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "configtest":
		return configtest(args[1:], stdout, stderr)
	case "jobs":
		return jobs(args[1:], stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdout, stderr)
	case "admin":
		return adminCmd(args[1:], Stdin, stdout, stderr)
	case "rewrite":
		return rewriteCmd(args[1:], Stdin, stdout, stderr)
	case "dkim":
		return dkimCmd(args[1:], stdout, stderr)
	case "store":
		return storeCmd(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "zipgate %s (commit %s)\n", version(), commit())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "zipgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// loadConfig reads the file (or the defaults), applies the flags and
// reports every problem at once.
func loadConfig(path string, apply func(*config.Config)) (config.Config, error) {
	cfg := config.Defaults()
	var problems []string
	if path != "" {
		var err error
		cfg, err = config.Load(path)
		var p *config.Problems
		switch {
		case errors.As(err, &p):
			problems = p.List
		case err != nil:
			return cfg, err
		}
	}
	apply(&cfg)
	var p *config.Problems
	if errors.As(cfg.Validate(), &p) {
		problems = append(problems, p.List...)
	}
	// Key files are read here so configtest reports them with the rest.
	if _, err := relay.LoadDKIM(dkimKeys(cfg)); err != nil {
		problems = append(problems, strings.Split(err.Error(), "\n")...)
	}
	problems = append(problems, checkTemplates(cfg)...)
	if len(problems) > 0 {
		return cfg, &config.Problems{List: problems}
	}
	return cfg, nil
}

func configtest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("configtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (TOML); none means the built-in defaults")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*path, func(*config.Config) {})
	if err != nil {
		fmt.Fprintf(stderr, "%s\n", err)
		return 1
	}
	for _, w := range warnings(cfg) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintln(stdout, "configuration OK")
	return 0
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Each flag overrides its key; without it the key's value in the
	// file counts, else the built-in default shown here.
	d := config.Defaults()
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: zipgate serve [flags]\n\nFlags override the configuration file, whose keys default to the values shown.\n\n")
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "configuration `file` (TOML); none means the built-in defaults")
	listen := fs.String("listen", "", "SMTP `address` Postfix hands mail to (smtp.listen, default "+d.SMTP.Listen+")")
	nextHop := fs.String("next-hop", "", "`address` rewritten mail goes to (relay.next_hop, default "+d.Relay.NextHop+")")
	data := fs.String("data", "", "state `directory` (data_dir, default "+d.DataDir+")")
	var delay durationFlag
	fs.Var(&delay, "delay", "`time` between a message and its password mail; 0s sends it at once (release.delay, default "+shortDuration(d.Release.Delay.D())+")")
	webListen := fs.String("web-listen", "", "`address` of the sender page (web.listen, default "+d.Web.Listen+")")
	adminListen := fs.String("admin-listen", "", "`address` of the admin pages, the API and /metrics, or \"web\" (admin.listen, default "+d.Admin.Listen+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*path, func(c *config.Config) {
		if delay.set {
			c.Release.Delay = config.Duration(delay.d)
		}
		if *webListen != "" {
			// Links follow the page unless a base URL was set on purpose.
			if c.Web.BaseURL == config.Defaults().Web.BaseURL {
				c.Web.BaseURL = "http://" + *webListen
			}
			c.Web.Listen = *webListen
		}
		if *listen != "" {
			c.SMTP.Listen = *listen
		}
		if *adminListen != "" {
			c.Admin.Listen = *adminListen
		}
		if *nextHop != "" {
			c.Relay.NextHop = *nextHop
		}
		if *data != "" {
			c.DataDir = *data
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: configuration:\n%s\n", err)
		return 1
	}
	log := newLogger(stderr, cfg.LogLevel)
	if err := run(cfg, log); err != nil {
		log.Error("zipgate stopped", "error", err.Error())
		return 1
	}
	return 0
}

func run(cfg config.Config, log *slog.Logger) error {
	tmp := filepath.Join(cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	// Before anything touches the store.
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	st, key, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	tmpl, err := notice.Load(notice.Options{BodyText: cfg.Notice.Text, Dir: cfg.Notice.TemplateDir,
		Charset: cfg.Notice.Charset, Language: cfg.Notice.Language})
	if err != nil {
		return err
	}
	signer, err := relay.LoadDKIM(dkimKeys(cfg))
	if err != nil {
		return err
	}
	next := &relay.Client{Addr: cfg.Relay.NextHop, HeloName: cfg.SMTP.Hostname, Timeout: cfg.Relay.Timeout.D(), DKIM: signer}
	sched := release.New(st, next, tmpl, log)
	sched.Hostname, sched.BaseURL = cfg.SMTP.Hostname, cfg.Web.BaseURL
	sched.PwPrefix, sched.NoticeFrom = cfg.Notice.PasswordSubjectPrefix, cfg.Release.NoticeFrom
	sched.Retention = cfg.Release.Retention.D()

	gw, err := gateway.New(cfg, tmp, st, tmpl, next, sched.Wake, log)
	if err != nil {
		return err
	}
	heldDir, err := hold.NewDir(filepath.Join(cfg.DataDir, "held"))
	if err != nil {
		return err
	}
	if pg, ok := st.(*store.Postgres); ok {
		// Every node reads what any node held.
		heldDir = hold.NewSharedDir(pg.Blobs(store.BlobHeld), tmp)
	}
	holds := hold.New(st, heldDir, gw.DeliverHeld, next, tmpl, log)
	holds.Hostname, holds.BaseURL, holds.NoticeFrom = cfg.SMTP.Hostname, cfg.Web.BaseURL, cfg.Release.NoticeFrom
	gw.Holding = gateway.Holding{Dir: heldDir, Wake: holds.Wake, MaxBytes: cfg.Policy.HoldMaxBytes,
		ApprovalTimeout: cfg.Policy.ApprovalTimeout.D()}
	linkSched, linkPages, err := setupLinks(cfg, st, next, tmpl, log)
	if err != nil {
		return err
	}
	gw.Linking = gateway.Linking{Files: linkSched.Files, BaseURL: cfg.Web.BaseURL}
	srv, err := smtpd.New(cfg.SMTP, gw, tmp, log)
	if err != nil {
		return err
	}
	if err := sched.Recover(context.Background()); err != nil {
		return err
	}
	if err := holds.Recover(context.Background()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.SMTP.Listen)
	if err != nil {
		return err
	}
	webLn, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		ln.Close()
		return err
	}
	// The CSRF key is derived from the store key, so forms stay valid
	// across restarts and nothing else needs keeping.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("zipgate sender page csrf"))
	pages := web.New(st, sched.Wake, mac.Sum(nil), log)
	pages.WakeHold, pages.NextHop = holds.Wake, cfg.Relay.NextHop
	pages.Links = linkPages
	page := pages.HTTPServer(web.DefaultTimeouts, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	admin, err := startAdmin(cfg, st, key, sched, holds, gw, pages, page, log)
	if err != nil {
		ln.Close()
		webLn.Close()
		return err
	}
	defer admin.stop()
	for _, w := range warnings(cfg) {
		log.Warn(w)
	}
	started := []any{"version", version(), "commit", commit(), "listen", ln.Addr().String(),
		"next_hop", cfg.Relay.NextHop, "web", webLn.Addr().String(), "admin", admin.addr, "delay", cfg.Release.Delay.D().String(),
		"data_dir", cfg.DataDir}
	if pg, ok := st.(*store.Postgres); ok {
		started = append(started, "store", cfg.Store.RedactedURL(), "node", pg.Node())
	}
	log.Info("zipgate started", started...)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shareCtx, stopSharing := context.WithCancel(context.Background())
	defer stopSharing()
	shareWork(shareCtx, st, sched, holds, linkSched, log)
	schedCtx, stopSched := context.WithCancel(context.Background())
	done := make(chan error, 6)
	schedDone, holdsDone, linksDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { done <- srv.Serve(ln) }()
	go func() {
		if err := page.Serve(webLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			done <- err
		}
	}()
	go func() {
		if err := admin.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			done <- err
		}
	}()
	go func() {
		defer close(schedDone)
		if err := sched.Run(schedCtx); err != nil {
			done <- err
		}
	}()
	go func() {
		defer close(holdsDone)
		if err := holds.Run(schedCtx); err != nil {
			done <- err
		}
	}()
	go func() {
		defer close(linksDone)
		if err := linkSched.Run(schedCtx); err != nil {
			done <- err
		}
	}()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
	}
	// Orderly: stop taking mail and let sessions finish, then the page,
	// then the scheduler (a password mail in flight completes or is
	// retried after the next start).
	log.Info("shutting down: finishing sessions in progress")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && runErr == nil {
		runErr = err
	}
	page.Shutdown(sctx)
	admin.shutdown(sctx)
	stopSched()
	<-schedDone
	<-holdsDone
	<-linksDone
	log.Info("zipgate stopped")
	return runErr
}

// warnings are settings that are valid but weaken what zipgate protects;
// serve logs them at start and configtest prints them.
func warnings(cfg config.Config) []string {
	var w []string
	if cfg.Zip.Method == "zipcrypto" {
		w = append(w, "zip.method is zipcrypto: ZipCrypto falls to a known-plaintext attack (bkcrack): "+
			"12 known bytes of one entry (a file format's header, a stored PNG or zip) recover the keys "+
			"and open every file of that zip without the password; use aes256 unless recipients cannot open it")
	}
	if strings.HasPrefix(cfg.Web.BaseURL, "https:") && len(cfg.Links.TrustedProxies) == 0 {
		w = append(w, "web.base_url is https (a proxy in front) but links.trusted_proxies is empty: every recipient "+
			"of a download link then comes from the proxy's address, so one person's wrong passwords hold back "+
			"everyone's for 10 minutes and the history shows the proxy; set links.trusted_proxies to its address")
	}
	if urlHasPassword(cfg.Store.URL) {
		w = append(w, "store.url carries the database password: anyone who reads the configuration reads it; "+
			"put it in store.password_file (or PGPASSFILE) instead")
	}
	if cfg.Store.Shared() {
		if _, err := os.Stat(cfg.DBFile()); err == nil {
			w = append(w, "store.url is set, but data_dir still holds the embedded store ("+cfg.DBFile()+"): its jobs, "+
				"held messages and links are not served from there; copy them with zipgate store migrate "+
				"(into a database no node has written to yet), then move that file away")
		}
	}
	return w
}

func urlHasPassword(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	_, inUser := u.User.Password()
	return inUser || u.Query().Has("password")
}

func dkimKeys(cfg config.Config) []relay.DKIMKey {
	var keys []relay.DKIMKey
	for _, k := range cfg.DKIM.Keys {
		keys = append(keys, relay.DKIMKey{Domain: k.Domain, Selector: k.Selector, Algorithm: k.Algorithm, KeyFile: k.KeyFile})
	}
	return keys
}

// openStore opens the embedded store with its key, making both on the
// first start.
func openStore(cfg config.Config) (store.Store, []byte, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, err
	}
	// Only zipgate's user reads what is in there, also when the directory
	// was made by hand (or by systemd's StateDirectory=, 0755 by default).
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(cfg.DataDir, 0o700) // not ours to change: the files stay 0600 all the same
	}
	if cfg.Store.Shared() {
		node, err := nodeName(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		return openShared(cfg, false, node)
	}
	return store.Open(context.Background(), cfg.DBFile(), cfg.KeyFile())
}

// openShared opens the PostgreSQL store of store.url as node ("": a
// name of its own); existing: only one a server made.
func openShared(cfg config.Config, existing bool, node string) (*store.Postgres, []byte, error) {
	pw, err := cfg.Store.ReadPassword()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return store.OpenPostgres(ctx, store.PostgresOptions{URL: cfg.Store.URL, Password: pw, Lease: cfg.Store.Lease.D(),
		Timeout: cfg.Store.Timeout.D(), Existing: existing, Node: node}, cfg.KeyFile())
}

// nodeName is the name of the node serving dataDir in the shared
// store's leases: made at its first start (host name and 48 random
// bits) and kept in data_dir/node, so a restart (after kill -9, too)
// takes up at once what the node held: the data_dir lock says the
// process that held it is gone. A copy of data_dir must not serve as
// another node beside this one: delete the copy's node file.
func nodeName(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node")
	if b, err := os.ReadFile(path); err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	host, _ := os.Hostname()
	r := make([]byte, 6)
	rand.Read(r)
	name := strings.Trim(host+"-"+hex.EncodeToString(r), "-")
	return name, os.WriteFile(path, []byte(name+"\n"), 0o600)
}

// shareWork, with a store several nodes share, keeps this node's leases
// and wakes its schedulers when another node changed something, until
// ctx ends. The leases are renewed until the schedulers are done (a mail
// on its way is not cut by a stop), so ctx should end after them.
func shareWork(ctx context.Context, st store.Store, sched *release.Scheduler, holds *hold.Scheduler,
	linkSched interface{ Wake() }, log *slog.Logger) {
	pg, ok := st.(*store.Postgres)
	if !ok {
		return
	}
	pg.StartRenewing(ctx, func(err error) {
		log.Warn("could not renew this node's leases: other nodes take its work over once they run out", "error", err.Error())
	})
	go pg.Listen(ctx, map[string]func(){store.TopicJobs: sched.Wake, store.TopicHeld: holds.Wake, store.TopicLinks: linkSched.Wake},
		func(err error) {
			if err != nil {
				log.Warn("not hearing other nodes' changes (LISTEN): they are seen at the next poll instead", "error", err.Error())
			} else {
				log.Info("hearing other nodes' changes again (LISTEN)")
			}
		})
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// version is the release (from git describe, through -ldflags), or
// "dev" for a plain go build.
func version() string {
	if Version != "" {
		return Version
	}
	return "dev"
}

// commit is the source's git commit: from -ldflags, else what go build
// recorded from the checkout, else "unknown".
func commit() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && dirty {
			return rev + "-dirty"
		} else if rev != "" {
			return rev
		}
	}
	return "unknown"
}
