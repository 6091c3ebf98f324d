package zipper

// Helpers that open zips with tools nobody here wrote: 7-Zip, libarchive
// (bsdtar), Info-ZIP unzip and CPython's zipfile.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// tool returns the path of a command, or skips the test saying how to get it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed: apt-get install %s", name, pkg)
	}
	return p
}

// run runs a command with a UTF-8 locale (so tools write names as UTF-8)
// and returns its combined output and exit code.
func run(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
		return "", -1
	}
}

// extractor runs one tool; it extracts zip into dir with password.
type extractor struct {
	name, pkg string
	args      func(zip, dir, password string) []string
	wrongExit int // exit code for a wrong password; 0 means any non-zero
}

var (
	sevenZip = extractor{"7z", "p7zip-full", func(zip, dir, pw string) []string {
		return []string{"x", "-y", "-bd", "-p" + pw, "-o" + dir, zip}
	}, 2}
	bsdtar = extractor{"bsdtar", "libarchive-tools", func(zip, dir, pw string) []string {
		return []string{"-xf", zip, "--passphrase", pw, "-C", dir}
	}, 1}
	unzip = extractor{"unzip", "unzip", func(zip, dir, pw string) []string {
		return []string{"-q", "-P", pw, "-d", dir, zip}
	}, 0}
)

// extract runs e on zipPath into a fresh directory inside a fresh root
// and returns what it wrote, name → content. It fails the test if
// anything was written outside that directory or anything but plain
// files at its top level.
func (e extractor) extract(t *testing.T, zipPath, password string, extraArgs ...string) map[string][]byte {
	t.Helper()
	bin := tool(t, e.name, e.pkg)
	root := t.TempDir()
	out := filepath.Join(root, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append(extraArgs, e.args(zipPath, out, password)...)
	if msg, code := run(t, bin, args...); code != 0 {
		t.Fatalf("%s exit %d:\n%s", e.name, code, msg)
	}
	got := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root || p == out {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		if filepath.Dir(p) != out || !d.Type().IsRegular() {
			t.Errorf("%s wrote %q (%v) outside the output directory or not as a plain file", e.name, rel, d.Type())
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// refuses checks that e will not extract zipPath with a wrong password.
func (e extractor) refuses(t *testing.T, zipPath, wrong string) {
	t.Helper()
	bin := tool(t, e.name, e.pkg)
	msg, code := run(t, bin, e.args(zipPath, t.TempDir(), wrong)...)
	if code == 0 || (e.wrongExit != 0 && code != e.wrongExit) {
		t.Errorf("%s with a wrong password: exit %d, want %d\n%s", e.name, code, e.wrongExit, msg)
	}
}

// pyRead opens a zip with CPython's zipfile and returns name → content.
// Names without the UTF-8 flag are decoded as cp932 when cp932 is set.
const pyRead = `
import base64, json, sys, zipfile
path, pwd, cp932 = sys.argv[1], sys.argv[2].encode(), sys.argv[3] == "1"
out = {}
with zipfile.ZipFile(path) as z:
    for i in z.infolist():
        name = i.filename
        if cp932 and not i.flag_bits & 0x800:
            name = name.encode("cp437").decode("cp932")
        out[name] = base64.b64encode(z.read(i, pwd=pwd)).decode()
json.dump(out, sys.stdout)
`

func pythonRead(t *testing.T, zipPath, password string, cp932 bool) (map[string][]byte, bool) {
	t.Helper()
	bin := tool(t, "python3", "python3")
	flag := "0"
	if cp932 {
		flag = "1"
	}
	cmd := exec.Command(bin, "-c", pyRead, zipPath, password, flag)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, false
	}
	got := map[string][]byte{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python3 output: %v\n%s", err, stderr.String())
	}
	return got, true
}
