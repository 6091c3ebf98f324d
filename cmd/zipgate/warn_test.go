package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestZipCryptoWarningAtStart: serve with zip.method = zipcrypto logs a
// warning naming the known-plaintext attack before it takes mail (issue
// 11, finding 9).
func TestZipCryptoWarningAtStart(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "zipgate.toml")
	if err := os.WriteFile(conf, []byte("[zip]\nmethod = \"zipcrypto\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "-config", conf, "-listen", "127.0.0.1:0",
		"-web-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-data", t.TempDir())
	cmd.Env = append(os.Environ(), "ZIPGATE_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	warned := false
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("zipgate exited:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			if strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, "zipcrypto") && strings.Contains(l, "bkcrack") {
				warned = true
			}
			if strings.Contains(l, `"msg":"zipgate started"`) {
				if !warned {
					t.Fatalf("started without the ZipCrypto warning:\n%s", strings.Join(log, "\n"))
				}
				return
			}
		case <-timeout:
			t.Fatalf("zipgate did not start within 20 s:\n%s", strings.Join(log, "\n"))
		}
	}
}
