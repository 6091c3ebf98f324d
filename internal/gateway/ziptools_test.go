package gateway_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// zipTool opens zips with a program nobody here wrote.
type zipTool struct {
	name    string
	extract func(zip, password, dir string) *exec.Cmd
}

var zipTools = []zipTool{
	{"7z", func(zip, password, dir string) *exec.Cmd {
		return exec.Command("7z", "x", "-y", "-p"+password, "-o"+dir, zip)
	}},
	{"bsdtar", func(zip, password, dir string) *exec.Cmd {
		return exec.Command("bsdtar", "-xf", zip, "--passphrase", password, "-C", dir)
	}},
}

var toolPackage = map[string]string{"7z": "p7zip-full", "bsdtar": "libarchive-tools"}

// checkWithTools extracts the zip with each tool and compares names and
// bytes with want; a wrong password must be refused.
func checkWithTools(t *testing.T, zipData []byte, password string, want map[string][]byte) {
	t.Helper()
	for _, tool := range zipTools {
		if _, err := exec.LookPath(tool.name); err != nil {
			t.Logf("skipping the %s check: %s not installed (apt-get install %s)", tool.name, tool.name, toolPackage[tool.name])
			continue
		}
		dir := t.TempDir()
		zf := filepath.Join(dir, "a.zip")
		if err := os.WriteFile(zf, zipData, 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		os.Mkdir(out, 0o700)
		if b, err := tool.extract(zf, password, out).CombinedOutput(); err != nil {
			t.Fatalf("%s could not open the zip with the password: %v\n%s", tool.name, err, b)
		}
		got := map[string][]byte{}
		filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(out, p)
				got[rel], _ = os.ReadFile(p)
			}
			return nil
		})
		if len(got) != len(want) {
			t.Errorf("%s extracted %d files, want %d: %q", tool.name, len(got), len(want), keys(got))
		}
		for name, w := range want {
			if g, ok := got[name]; !ok {
				t.Errorf("%s: %q missing; extracted %q", tool.name, name, keys(got))
			} else if !bytes.Equal(g, w) {
				t.Errorf("%s: %q has different bytes", tool.name, name)
			}
		}
		if allEmpty(want) {
			continue // with no data there is nothing for a password to protect
		}
		wrong := filepath.Join(dir, "wrong")
		os.Mkdir(wrong, 0o700)
		if err := tool.extract(zf, password+"x", wrong).Run(); err == nil {
			t.Errorf("%s opened the zip with a wrong password", tool.name)
		}
	}
}

func allEmpty(files map[string][]byte) bool {
	for _, b := range files {
		if len(b) > 0 {
			return false
		}
	}
	return true
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
