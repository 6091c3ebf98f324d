package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir makes this the only server on dir: a second `zipgate serve`
// started by mistake must not run Recover on the live server's jobs (a
// cancel would then be accepted while its password is in flight, and
// passwords would go twice). The admin commands do not take the lock;
// they work beside the server. The lock goes with the process, also on
// kill -9.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "zipgate.pid")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(path)
			who := "another zipgate"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				who = fmt.Sprintf("another zipgate (pid %d)", pid)
			}
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("%s already serves %s; stop it first, or give this one a data_dir of its own", who, abs)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	return func() { f.Close() }, nil
}
