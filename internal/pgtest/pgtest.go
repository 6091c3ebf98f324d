// Package pgtest starts a private PostgreSQL cluster for tests: initdb and
// postgres from Debian's package (/usr/lib/postgresql/N/bin) or PATH, in
// a temp dir, on a free loopback port, with a password. Run as root (CI
// is), it runs them as an unprivileged user, since PostgreSQL refuses to
// run as root. Without the binaries the test is skipped with the reason.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/zipgate/zipgate/internal/loopback"
)

// User is the cluster's superuser, the one the URLs name.
const User = "zipgate"

// Cluster is a running PostgreSQL server of the tests.
type Cluster struct {
	Port     int
	Password string

	dir  string // the temp dir: data/, the password file, the log
	bin  string // where initdb and postgres are
	cred *syscall.Credential
	uid  int

	durable bool

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

var n atomic.Int64

// Bin finds the directory of initdb and postgres: the newest
// /usr/lib/postgresql/N/bin, else PATH. "" when there is none.
func Bin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	pg, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil && filepath.Dir(initdb) == filepath.Dir(pg) {
		return filepath.Dir(initdb)
	}
	return ""
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// Shared is the cluster of this test process, started at the first call
// and stopped by StopShared (or, at the latest, when the process ends).
// It skips t when PostgreSQL is not installed.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	skipWithout(t)
	sharedOnce.Do(func() { shared, sharedErr = start(false) })
	if sharedErr != nil {
		t.Fatalf("starting PostgreSQL: %v", sharedErr)
	}
	return shared
}

// StopShared stops the shared cluster, if one was started; call it from
// TestMain after m.Run.
func StopShared() {
	if shared != nil {
		shared.stop()
		os.RemoveAll(shared.dir)
	}
}

// Main runs a package's tests and then stops the shared cluster: a
// package whose tests use Shared calls it from its TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// Start starts a cluster of t's own (for a test that stops and starts the
// database, or a benchmark), durable as PostgreSQL ships (fsync on,
// where the shared one saves the time); it goes at t's end.
func Start(t testing.TB) *Cluster {
	t.Helper()
	skipWithout(t)
	c, err := start(true)
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		c.stop()
		os.RemoveAll(c.dir)
	})
	return c
}

func skipWithout(t testing.TB) {
	t.Helper()
	if Bin() == "" {
		t.Skip("PostgreSQL is not installed (no initdb and postgres in /usr/lib/postgresql/*/bin or on PATH): " +
			"apt-get install postgresql to run the tests of the PostgreSQL store")
	}
}

func start(durable bool) (*Cluster, error) {
	c := &Cluster{bin: Bin(), uid: os.Getuid(), durable: durable}
	var err error
	if c.dir, err = os.MkdirTemp("", "zipgate-pg-"); err != nil {
		return nil, err
	}
	if os.Getuid() == 0 {
		// PostgreSQL will not run as root: the cluster belongs to a
		// system user, which must be able to reach its directory.
		if c.cred, err = runAs(); err != nil {
			return nil, err
		}
		c.uid = int(c.cred.Uid)
		if err := os.Chmod(c.dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return nil, err
		}
	}
	pw := make([]byte, 16)
	rand.Read(pw)
	c.Password = hex.EncodeToString(pw)
	pwFile := filepath.Join(c.dir, "pw")
	if err := os.WriteFile(pwFile, []byte(c.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if c.cred != nil {
		os.Chown(pwFile, int(c.cred.Uid), int(c.cred.Gid))
	}
	out, err := c.command(filepath.Join(c.bin, "initdb"), "-D", c.data(), "-U", User, "--pwfile="+pwFile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	for range 5 { // a free port can be taken between finding and binding it
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
		if err = c.Restart(); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// runAs is the user the cluster runs as under root: postgres (made by
// Debian's package), else nobody.
func runAs() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and there is neither a postgres nor a nobody user to run PostgreSQL as")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	// The server goes with the test process, also when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

func freePort() (int, error) { return loopback.FreePort() }

// Restart starts the server again after Stop (on the same port).
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("PostgreSQL is running")
	}
	log, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-D", c.data(), "-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(c.Port),
		"-c", "unix_socket_directories=", "-c", "max_connections=300", "-c", "shared_buffers=32MB"}
	if !c.durable {
		// Speed over durability: a test's cluster never outlives the test.
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := c.command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.cmd, c.log = cmd, log
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			go func() { <-exited }()
			return nil
		}
		select {
		case err := <-exited:
			c.cmd = nil
			log.Close()
			b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
			return fmt.Errorf("postgres exited (%v): %s", err, tail(string(b)))
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.stopLocked()
	return errors.New("postgres did not take connections within 30 s")
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// Stop stops the server (fast shutdown: sessions are cut): the database
// goes away under whoever uses it.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

func (c *Cluster) stopLocked() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	// The postmaster removes its pid file when it is gone.
	pid := filepath.Join(c.data(), "postmaster.pid")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(pid); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	c.cmd.Process.Kill()
	c.log.Close()
	c.cmd, c.log = nil, nil
}

func (c *Cluster) stop() { c.Stop() }

// URL of database db, with the password in it.
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, c.Password), Host: "127.0.0.1:" + strconv.Itoa(c.Port),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// BareURL is the URL of db without the password (given apart, as
// store.password_file does).
func (c *Cluster) BareURL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(User), Host: "127.0.0.1:" + strconv.Itoa(c.Port),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase makes an empty database and returns its name.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("zg_%d_%d", os.Getpid(), n.Add(1))
	c.exec(t, "postgres", `CREATE DATABASE `+name)
	return name
}

// NewSchema makes an empty schema in the database "zipgate" (made at the
// first call) and returns the URL of the database with that schema as
// the only one on the search path: much quicker than a database per test.
func (c *Cluster) NewSchema(t testing.TB) string {
	t.Helper()
	c.once(t)
	name := fmt.Sprintf("t%d", n.Add(1))
	c.exec(t, "zipgate", `CREATE SCHEMA `+name)
	return c.URL("zipgate") + "&search_path=" + name
}

var dbOnce sync.Map

func (c *Cluster) once(t testing.TB) {
	t.Helper()
	o, _ := dbOnce.LoadOrStore(c, &sync.Once{})
	var err error
	o.(*sync.Once).Do(func() {
		conn, cerr := pgx.Connect(context.Background(), c.URL("postgres"))
		if cerr != nil {
			err = cerr
			return
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), `CREATE DATABASE zipgate`)
	})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("CREATE DATABASE zipgate: %v", err)
	}
}

func (c *Cluster) exec(t testing.TB, db, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
