package config

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zipgate.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverridesDefaults(t *testing.T) {
	c, err := Load(writeFile(t, `
data_dir = "/var/lib/zipgate"
[smtp]
listen = "127.0.0.1:11025"
timeout = "90s"
[zip]
method = "zipcrypto"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/zipgate" || c.SMTP.Listen != "127.0.0.1:11025" || c.SMTP.Timeout.D() != 90*time.Second || c.Zip.Method != "zipcrypto" {
		t.Fatalf("not applied: %+v", c)
	}
	if c.Relay.NextHop != "127.0.0.1:10026" {
		t.Fatalf("a default was lost: %q", c.Relay.NextHop)
	}
}

func TestUnknownKeysAreErrors(t *testing.T) {
	_, err := Load(writeFile(t, "data_dri = \"x\"\n[smtp]\nlisten_addr = \"x\"\n"))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`unknown key "data_dri"`, `unknown key "smtp.listen_addr"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

func TestAdminOnTheSenderListener(t *testing.T) {
	c := Defaults()
	c.Admin.Listen = AdminOnWeb
	if err := c.Validate(); err != nil {
		t.Errorf("admin.listen = \"web\": %v", err)
	}
	// Both on any free port (tests, scripts): two ports.
	c.Admin.Listen, c.Web.Listen = "127.0.0.1:0", "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Errorf("both on port 0: %v", err)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := Defaults()
	c.SMTP.Listen = "nonsense"
	c.Zip.Method = "rot13"
	c.Zip.TimeZone = "Mars/Olympus_Mons"
	c.Password.Length = 4
	c.SMTP.AllowedNetworks = []string{"10.0.0.0/33"}
	err := c.Validate()
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{"smtp.listen", "zip.method", "zip.time_zone", "password.length", "smtp.allowed_networks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

// Each case is one mistake an admin makes; the last test puts them all
// in one file and wants every one reported in the same run.
var badConfigs = []struct {
	name, toml string
	want       []string // each must appear in the report
}{
	{"duration in words", "[release]\ndelay = \"10 minutes\"\n",
		[]string{`release.delay: "10 minutes" is not a duration; write it like "30s", "10m", "2h" or "7d"`}},
	{"duration as a number", "[relay]\ntimeout = 300\n",
		[]string{`relay.timeout: want a duration such as "30s", "10m" or "2h", found a whole number`}},
	{"string for a number", "[smtp]\nmax_recipients = \"1000\"\n",
		[]string{"smtp.max_recipients: want a whole number, found a string"}},
	{"number for a string", "[smtp]\nlisten = 10025\n",
		[]string{"smtp.listen: want a string, found a whole number"}},
	{"value for a table", "smtp = \"127.0.0.1:10025\"\n",
		[]string{"smtp: want a table ([smtp]), found a string"}},
	{"unknown top-level key", "data_dri = \"/var/lib/zipgate\"\n", []string{`unknown key "data_dri"`}},
	{"unknown key in a table", "[smtp]\nlisten_addr = \"127.0.0.1:10025\"\n", []string{`unknown key "smtp.listen_addr"`}},
	{"keys are case-sensitive", "[smtp]\nListen = \"127.0.0.1:10025\"\n", []string{`unknown key "smtp.Listen"`}},
	{"unknown key in a dkim key", "[[dkim.key]]\ndomain = \"example.jp\"\nselector = \"s\"\nalgorithm = \"rsa\"\nkeyfile = \"/k\"\n",
		[]string{`unknown key "dkim.key[0].keyfile"`, "dkim.key[0]: domain, selector and key_file are all needed"}},
	{"port out of range", "[smtp]\nlisten = \"127.0.0.1:99999\"\n",
		[]string{`smtp.listen: "127.0.0.1:99999": port "99999" is not a number from 1 to 65535`}},
	{"named port", "[relay]\nnext_hop = \"127.0.0.1:smtp\"\n",
		[]string{`relay.next_hop: "127.0.0.1:smtp": port "smtp" is not a number`}},
	{"next hop on port 0", "[relay]\nnext_hop = \"127.0.0.1:0\"\n", []string{`relay.next_hop: "127.0.0.1:0": port 0 cannot be connected to`}},
	{"next hop without a host", "[relay]\nnext_hop = \":10026\"\n", []string{`relay.next_hop: ":10026" has no host`}},
	{"no port", "[web]\nlisten = \"127.0.0.1\"\n", []string{`web.listen: "127.0.0.1" is not host:port`}},
	{"bad host", "[web]\nlisten = \"local host:8025\"\n", []string{`web.listen: "local host:8025": "local host" is neither an IP address nor a host name`}},
	{"admin pages on the sender page's address", "[admin]\nlisten = \"127.0.0.1:8025\"\n",
		[]string{`admin.listen: "127.0.0.1:8025" is web.listen too; write "web" to serve the admin pages there`}},
	{"admin address without a port", "[admin]\nlisten = \"127.0.0.1\"\n", []string{`admin.listen: "127.0.0.1" is not host:port`}},
	{"no audit trail", "[audit]\nretention = \"0s\"\n", []string{"audit.retention: must be greater than 0"}},
	{"sessions that end at once", "[admin]\nsession_timeout = \"0s\"\n", []string{"admin.session_timeout: must be greater than 0"}},
	{"relative base_url", "[web]\nbase_url = \"zipgate.example.jp\"\n",
		[]string{`web.base_url: "zipgate.example.jp" is not an absolute http(s) URL`}},
	{"base_url with a query", "[web]\nbase_url = \"https://zipgate.example.jp/?x=1\"\n",
		[]string{`web.base_url: "https://zipgate.example.jp/?x=1": links are made by adding /s/TOKEN`}},
	{"zip method", "[zip]\nmethod = \"rar\"\n", []string{`zip.method: "rar" is not aes256 or zipcrypto`}},
	{"name template that does not parse", "[zip]\nname_template = \"files_{{.Date\"\n", []string{`zip.name_template: "files_{{.Date"`}},
	{"name template with a misspelt field", "[zip]\nname_template = \"files_{{.Data}}.zip\"\n",
		[]string{`zip.name_template: "files_{{.Data}}.zip"`, `"Data"`, "the fields are .Date, .Time and .ID"}},
	{"short password", "[password]\nlength = 6\n", []string{"password.length: 6 is too short"}},
	{"negative delay", "[release]\ndelay = \"-5m\"\n", []string{"release.delay: must not be negative"}},
	{"data_dir under a file", "data_dir = \"FILE/data\"\n", []string{`data_dir: "`, `/FILE/data": `, `/FILE is not a directory`}},
	{"missing template_dir", "[notice]\ntemplate_dir = \"/nonexistent/zipgate-templates\"\n",
		[]string{`notice.template_dir: "/nonexistent/zipgate-templates" is not a directory`}},
}

// loadAndValidate is what configtest does with a file.
func loadAndValidate(t *testing.T, text string) []string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "FILE")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	text = strings.ReplaceAll(text, "FILE", file)
	if !strings.Contains(text, "data_dir =") {
		text = "data_dir = \"" + dir + "/data\"\n" + text
	}
	c, err := Load(writeFile(t, text))
	var list []string
	var p *Problems
	if errors.As(err, &p) {
		list = p.List
	} else if err != nil {
		t.Fatal(err)
	}
	if errors.As(c.Validate(), &p) {
		list = append(list, p.List...)
	}
	return list
}

func TestEachMistakeIsReported(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			report := strings.Join(loadAndValidate(t, tc.toml), "\n")
			for _, want := range tc.want {
				if !strings.Contains(report, want) {
					t.Errorf("%q missing; the report is:\n%s", want, report)
				}
			}
		})
	}
}

// The file of issue 13: a bad duration used to stop the decode and hide
// everything after it, and a port out of range passed.
func TestAllMistakesAreReportedAtOnce(t *testing.T) {
	report := loadAndValidate(t, `
colour = "blue"
data_dir = "FILE/data"

[smtp]
listen = "127.0.0.1:99999"
listen_addr = "127.0.0.1:10025"
max_recipients = "1000"

[relay]
next_hop = "127.0.0.1:0"
timeout = 300

[zip]
method = "rar"
name_template = "files_{{.Data}}.zip"

[password]
length = 6

[release]
delay = "10 minutes"
retention = "90 days"

[web]
listen = "local host:8025"
base_url = "zipgate.example.jp"
`)
	want := []string{
		`unknown key "colour"`,
		`data_dir: "`,
		`smtp.listen: "127.0.0.1:99999"`,
		`unknown key "smtp.listen_addr"`,
		"smtp.max_recipients: want a whole number",
		"relay.next_hop:",
		"relay.timeout: want a duration",
		"zip.method:",
		"zip.name_template:",
		"password.length:",
		`release.delay: "10 minutes" is not a duration`,
		`release.retention: "90 days" is not a duration`,
		"web.listen:",
		"web.base_url:",
	}
	text := strings.Join(report, "\n")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%q missing", w)
		}
	}
	if len(report) != len(want) {
		t.Errorf("want %d problems, one per mistake; got %d", len(want), len(report))
	}
	if t.Failed() {
		t.Logf("the report:\n%s", text)
	}
}

// A data_dir this user cannot write, or cannot make, is reported. Under
// root (CI) every directory is writable, so the test runs itself again as
// nobody (uid 65534) on a directory root owns.
func TestDataDirChecks(t *testing.T) {
	parent := os.Getenv("ZIPGATE_TEST_UNWRITABLE")
	if parent == "" {
		parent = t.TempDir()
		if os.Geteuid() == 0 {
			asNobody(t, parent)
			return
		}
		if err := os.Chmod(parent, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(parent, 0o755) })
	}
	for _, tc := range []struct{ dir, want string }{
		{parent, "is not writable by user"},
		{filepath.Join(parent, "a", "b"), "does not exist and user"},
	} {
		c := Defaults()
		c.DataDir = tc.dir
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("data_dir %s: want %q, got %v", tc.dir, tc.want, err)
		}
	}
}

// asNobody runs TestDataDirChecks in a copy of this test binary as uid
// 65534, on dir (root's, 0755).
func asNobody(t *testing.T, dir string) {
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	// The go-build directory is root's alone: copy the binary out.
	binDir, err := os.MkdirTemp("", "zipgate-config-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	copyBin := filepath.Join(binDir, "config.test")
	for _, err := range []error{os.Chmod(binDir, 0o755), os.WriteFile(copyBin, bin, 0o755), os.Chmod(filepath.Dir(dir), 0o755)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(copyBin, "-test.run=^TestDataDirChecks$", "-test.v")
	cmd.Dir = binDir
	cmd.Env = append(os.Environ(), "ZIPGATE_TEST_UNWRITABLE="+dir, "HOME="+binDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as uid 65534:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDataDirChecks") {
		t.Fatalf("as uid 65534: %v", err)
	}
}

func TestGoodValuesPass(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(writeFile(t, `
data_dir = "`+dir+`/not-yet"
[smtp]
listen = ":10025"
[relay]
next_hop = "mail.example.jp:10026"
[zip]
name_template = "{{.ID}}-{{.Date}}{{.Time}}"
[web]
listen = "[::1]:0"
base_url = "https://zipgate.example.jp/mail/"
[release]
delay = "0s"
key_file = "`+dir+`/zipgate.key"
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The example file is what the package installs as
// /etc/zipgate/zipgate.toml: it must load, and say the defaults but for
// its absolute data_dir.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	c, err := Load("../../deploy/zipgate.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/zipgate" {
		t.Errorf("data_dir = %q, want the package's /var/lib/zipgate", c.DataDir)
	}
	c.DataDir = Defaults().DataDir
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("the example differs from Defaults():\n%+v\n%+v", c, Defaults())
	}
}

func TestPolicySection(t *testing.T) {
	c, err := Load(writeFile(t, `
[policy]
local_domains = ["Example.co.jp", "*.example.co.jp"]
[notice]
language = "ja"
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	pc := c.PolicyConfig()
	if !pc.LocalDomains.Contains("example.co.jp") || !pc.LocalDomains.Contains("osaka.example.co.jp") || pc.LocalDomains.Contains("example.com") {
		t.Errorf("local domains %v", pc.LocalDomains)
	}
	if pc.Defaults.Language != "ja" || pc.Defaults.Delay != 10*time.Minute || pc.Defaults.ZipMethod != "aes256" {
		t.Errorf("defaults %+v", pc.Defaults)
	}

	c = Defaults()
	c.Policy.LocalDomains = []string{"example.co.jp", "bad domain", "*"}
	c.Notice.Language = "fr"
	err = c.Validate()
	for _, want := range []string{`policy.local_domains: "bad domain" is not a domain`, `notice.language: "fr"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

func TestZipTimeZone(t *testing.T) {
	c, err := Load(writeFile(t, "[zip]\ntime_zone = \"Asia/Tokyo\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC).In(c.Zip.Location())
	if at.Hour() != 0 || at.Day() != 28 {
		t.Errorf("15:00 UTC in zip.time_zone Asia/Tokyo is %v, want 00:00 the next day", at)
	}
	if Defaults().Zip.Location() != time.Local {
		t.Error("without zip.time_zone the zone is not the local one")
	}
}

// TestPasswordEntropy: password settings under 64 bits are refused with
// the bits they give (issue 11, finding 9); the defaults pass.

func TestStoreSection(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pw, []byte("s3cret-Pw\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(writeFile(t, `
[store]
url = "postgres://zipgate@db.example/zipgate?sslmode=verify-full"
password_file = "`+pw+`"
lease = "45s"
timeout = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Store.Shared() || c.Store.Lease.D() != 45*time.Second || c.Store.Timeout.D() != 5*time.Second {
		t.Errorf("store = %+v", c.Store)
	}
	if got, err := c.Store.ReadPassword(); err != nil || got != "s3cret-Pw" {
		t.Errorf("ReadPassword = %q, %v; want the first line", got, err)
	}
	if Defaults().Store.Shared() {
		t.Error("the default store is not the embedded SQLite")
	}

	// Problems name the key and never show a password written in the URL.
	bad := Defaults()
	bad.Store = Store{URL: "mysql://zipgate:Hunter2-in-url@db/zipgate?password=Hunter2-param", PasswordFile: "/nonexistent/pw", Lease: Duration(time.Second)}
	err = bad.Validate()
	if err == nil {
		t.Fatal("a bad [store] passed")
	}
	for _, want := range []string{"store.url", "not a postgres:// URL", "store.password_file", "store.lease", "store.timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems %q do not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "Hunter2") {
		t.Errorf("problems show the password: %q", err)
	}
	if got := RedactURL("postgres://u:Hunter2@h/d?password=Hunter2&sslmode=require"); strings.Contains(got, "Hunter2") ||
		!strings.Contains(got, "u:xxxxx@h/d") || !strings.Contains(got, "sslmode=require") {
		t.Errorf("RedactURL = %q", got)
	}
}
