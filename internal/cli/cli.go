// Package cli holds zipgate's subcommands.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/smtpd"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = ""

const usage = `zipgate: puts outgoing attachments into a password-protected zip and mails the password separately.

Usage:
  zipgate serve [-config FILE] [-listen ADDR] [-next-hop ADDR] [-data DIR]
  zipgate configtest [-config FILE]
  zipgate version

Without -config, zipgate runs on its built-in defaults: SMTP on 127.0.0.1:10025,
next hop 127.0.0.1:10026, state under ./zipgate-data.
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
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "zipgate", version())
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
	if _, err := loadConfig(*path, func(*config.Config) {}); err != nil {
		fmt.Fprintf(stderr, "%s\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "configuration OK")
	return 0
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (TOML); none means the built-in defaults")
	listen := fs.String("listen", "", "SMTP address to listen on (smtp.listen)")
	nextHop := fs.String("next-hop", "", "where rewritten mail goes (relay.next_hop)")
	data := fs.String("data", "", "state directory (data_dir)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*path, func(c *config.Config) {
		if *listen != "" {
			c.SMTP.Listen = *listen
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
	gw, err := gateway.New(cfg, tmp, log)
	if err != nil {
		return err
	}
	srv, err := smtpd.New(cfg.SMTP, gw, tmp, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.SMTP.Listen)
	if err != nil {
		return err
	}
	log.Info("zipgate started", "version", version(), "listen", ln.Addr().String(),
		"next_hop", cfg.Relay.NextHop, "data_dir", cfg.DataDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing sessions in progress")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	<-done
	log.Info("zipgate stopped")
	return nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
