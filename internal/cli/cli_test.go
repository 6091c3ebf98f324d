package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestConfigtest(t *testing.T) {
	if code, out, _ := runCLI("configtest"); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("defaults: exit %d, %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("colour = \"blue\"\n[zip]\nmethod = \"rar\"\n[smtp]\nlisten = \"x\"\n"), 0o600)
	code, _, errOut := runCLI("configtest", "-config", bad)
	if code == 0 {
		t.Fatal("a bad config passed")
	}
	for _, want := range []string{`unknown key "colour"`, "zip.method", "smtp.listen"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("%q missing; configtest printed:\n%s", want, errOut)
		}
	}
	if code, _, errOut := runCLI("configtest", "-config", filepath.Join(t.TempDir(), "missing.toml")); code == 0 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func TestServeRefusesABadFlagValue(t *testing.T) {
	code, _, errOut := runCLI("serve", "-listen", "not-an-address", "-data", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "smtp.listen") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "Usage") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "zipgate ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// configtest adds what only loading can tell (DKIM keys, templates) to
// the file's and the values' problems, all in one run.
func TestConfigtestListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "templates")
	os.Mkdir(tmpl, 0o755)
	os.WriteFile(filepath.Join(tmpl, "password.txt"), []byte("Password: {{.Pasword}}\n"), 0o644)
	os.WriteFile(filepath.Join(tmpl, "sender_failed.txt"), []byte("{{if .Reason}}\n"), 0o644)
	file := filepath.Join(dir, "zipgate.toml")
	os.WriteFile(file, []byte(`data_dir = "`+dir+`/data"
[smtp]
listen = "127.0.0.1:99999"
[release]
delay = "10 minutes"
[notice]
text = "{{range .Files}}{{sise .Size}}{{end}}"
template_dir = "`+tmpl+`"
[web]
base_url = "zipgate.example.jp"
[[dkim.key]]
domain = "example.jp"
selector = "s1"
algorithm = "rsa"
key_file = "`+dir+`/missing.key"
`), 0o644)
	code, out, errOut := runCLI("configtest", "-config", file)
	if code != 1 || strings.Contains(out, "configuration OK") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		`release.delay: "10 minutes" is not a duration`,
		`smtp.listen: "127.0.0.1:99999"`,
		`web.base_url: "zipgate.example.jp" is not an absolute http(s) URL`,
		"dkim key for example.jp (selector s1): open " + dir + "/missing.key: no such file",
		`notice.text: template body.txt: template: body.txt:1: function "sise" not defined`,
		"notice.template_dir: template sender_failed.txt:",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("%q missing", want)
		}
	}
	if t.Failed() {
		t.Logf("configtest printed:\n%s", errOut)
	}

	// Fixed, the same file passes; the notice text may use the templates'
	// functions (size), which a plain template parse would refuse.
	os.WriteFile(filepath.Join(tmpl, "sender_failed.txt"), []byte("{{if .Reason}}{{.Reason}}{{end}}\n"), 0o644)
	os.WriteFile(file, []byte(`data_dir = "`+dir+`/data"
[notice]
text = "{{range .Files}}{{.Name}} {{size .Size}}{{end}}"
template_dir = "`+tmpl+`"
`), 0o644)
	code, out, errOut = runCLI("configtest", "-config", file)
	if code == 0 {
		t.Fatalf("password.txt names .Pasword, a field that does not exist; configtest passed:\n%s", out)
	}
	if !strings.Contains(errOut, "notice.template_dir: template password.txt failed with sample data") {
		t.Fatalf("want the bad field in password.txt named, got:\n%s", errOut)
	}
	os.WriteFile(filepath.Join(tmpl, "password.txt"), []byte("Password: {{.Password}}\n"), 0o644)
	if code, out, errOut = runCLI("configtest", "-config", file); code != 0 || out != "configuration OK\n" {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
}

func TestVersionShowsTheCommit(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	Version, Commit = "1.2.3+git4.gabcdef0", "abcdef0123456789abcdef0123456789abcdef01"
	code, out, _ := runCLI("version")
	if code != 0 || out != "zipgate 1.2.3+git4.gabcdef0 (commit abcdef0123456789abcdef0123456789abcdef01)\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
}

func TestServeHelpShowsRealDefaults(t *testing.T) {
	_, _, errOut := runCLI("serve", "-h")
	for _, want := range []string{"release.delay, default 10m)", "smtp.listen, default 127.0.0.1:10025)", "data_dir, default ./zipgate-data)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("%q missing from:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "-1ns") {
		t.Errorf("a made-up default shows:\n%s", errOut)
	}
}

// Behind an https proxy without links.trusted_proxies, every recipient
// of a download link shares one address: configtest says so.
func TestConfigtestWarnsOfAnUntrustedProxy(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "zipgate.toml")
	data := "data_dir = \"" + t.TempDir() + "\"\n[web]\nbase_url = \"https://zipgate.example.jp\"\n"
	os.WriteFile(conf, []byte(data), 0o600)
	code, out, errOut := runCLI("configtest", "-config", conf)
	if code != 0 || !strings.Contains(out+errOut, "links.trusted_proxies is empty") {
		t.Fatalf("configtest %d:\n%s%s", code, out, errOut)
	}
	os.WriteFile(conf, []byte(data+"[links]\ntrusted_proxies = [\"10.0.0.5\"]\n"), 0o600)
	if code, out, errOut := runCLI("configtest", "-config", conf); code != 0 || strings.Contains(out+errOut, "trusted_proxies") {
		t.Fatalf("configtest %d with the proxy set:\n%s%s", code, out, errOut)
	}
}
