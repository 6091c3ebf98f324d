// Package config holds zipgate's typed configuration: built-in defaults, a
// strict TOML loader (unknown keys are errors) and validation that reports
// every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/zipgate/zipgate/internal/password"
	"github.com/zipgate/zipgate/internal/policy"
)

// Config is the whole configuration. The TOML keys are the lower-case
// names in the struct tags; deploy/zipgate.example.toml documents each.
type Config struct {
	// DataDir holds zipgate's state (spool files, later the job store).
	DataDir string `toml:"data_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`

	SMTP     SMTP     `toml:"smtp"`
	Relay    Relay    `toml:"relay"`
	Zip      Zip      `toml:"zip"`
	Password Password `toml:"password"`
	Notice   Notice   `toml:"notice"`
	Release  Release  `toml:"release"`
	Web      Web      `toml:"web"`
	DKIM     DKIM     `toml:"dkim"`
	Policy   Policy   `toml:"policy"`
	Links    Links    `toml:"links"`
	Admin    Admin    `toml:"admin"`
	Audit    Audit    `toml:"audit"`
	Store    Store    `toml:"store"`
}

// Store is where jobs, policies, held messages, download links, accounts
// and the audit trail live: the embedded SQLite in data_dir (URL empty),
// or a PostgreSQL database that several zipgate nodes share.
type Store struct {
	// URL of the PostgreSQL database, such as
	// "postgres://zipgate@db.example/zipgate?sslmode=verify-full"; empty
	// keeps the embedded SQLite in data_dir.
	URL string `toml:"url"`
	// PasswordFile holds the database password (its first line). Without
	// it the password comes from PGPASSFILE (or ~/.pgpass), or the URL.
	PasswordFile string `toml:"password_file"`
	// Lease is how long a node's claim on a due job (or held message, or
	// download link) holds unless the node renews it; a node that died
	// has its claims taken over by another node once it runs out.
	Lease Duration `toml:"lease"`
	// Timeout: a database that, asked, says nothing for this long
	// counts as down: the call fails (Postfix gets 451) and the
	// connection is dropped, whatever waited on it.
	Timeout Duration `toml:"timeout"`
}

// Shared reports whether the store is PostgreSQL, shared by nodes.
func (s Store) Shared() bool { return s.URL != "" }

// RedactedURL is the URL as logs and messages may show it: a password
// in it is replaced.
func (s Store) RedactedURL() string { return RedactURL(s.URL) }

// ReadPassword returns the first line of password_file, "" without one.
func (s Store) ReadPassword() (string, error) {
	if s.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("store.password_file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// RedactURL replaces the password of a URL, wherever it is written
// (user:password@ or a password= parameter).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Links are the download links of the policy action link: the files stay
// on the gateway (data_dir/links, encrypted) and the recipients fetch them
// from /d/{token} on the web listener, which must then be reachable from
// the Internet through an HTTPS proxy at web.base_url.
type Links struct {
	// Expiry is how long a link works when its rule sets no link_expiry
	// ("7d", "36h").
	Expiry Duration `toml:"expiry"`
	// MaxDownloads ends a link after this many downloads (each file or
	// the whole zip counts one) when its rule sets none; 0: no limit.
	MaxDownloads int `toml:"max_downloads"`
	// Auth is what opens a link when its rule sets no link_auth:
	// "password" (mailed like a zip's) or "otp" (a code mailed to the
	// recipient on request).
	Auth string `toml:"auth"`
	// NotifyFirstDownload mails the sender when a link is first used.
	NotifyFirstDownload bool `toml:"notify_first_download"`
	// TrustedProxies may say who the client is (X-Forwarded-For): the
	// reverse proxy in front of the web listener. Without it the client
	// address is the connection's, and every recipient behind the proxy
	// would share one rate limit.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// Admin is the admin pages (/admin/), the JSON API (/api/v1/) and
// /metrics.
type Admin struct {
	// Listen is their own address, apart from the sender page's, so the
	// sender page can be put behind a public proxy without them; "web"
	// serves them on web.listen instead.
	Listen string `toml:"listen"`
	// SessionTimeout signs an admin out after this long without a
	// request.
	SessionTimeout Duration `toml:"session_timeout"`
}

// AdminOnWeb is the value of admin.listen that serves the admin pages on
// the sender page's listener.
const AdminOnWeb = "web"

// Audit is the trail of what happened to each message and what admins
// changed.
type Audit struct {
	// Retention keeps message records and their history this long.
	Retention Duration `toml:"retention"`
}

// Policy says whose mail zipgate processes. The per-domain rules live in
// the store (zipgate policy set), so they change without a restart.
type Policy struct {
	// LocalDomains are the organization's own domains ("example.co.jp",
	// "*.example.co.jp" for its subdomains). Only mail from a sender here
	// is processed; recipients here always get the message as sent. Empty:
	// every sender counts as local and no recipient as internal.
	LocalDomains []string `toml:"local_domains"`
	// Hold keeps every message to a domain whose rule sets no hold back
	// this long before it leaves, so the sender can take it back (0: none).
	Hold Duration `toml:"hold"`
	// ApprovalTimeout: a message that waits for an approver, or for its
	// sender after the To/Cc guard held it, and gets no decision within
	// this time is not sent, and the sender is told.
	ApprovalTimeout Duration `toml:"approval_timeout"`
	// MaxVisibleExternal trips the To/Cc guard: a message whose To and Cc
	// show more addresses outside local_domains is held (or refused, by a
	// rule's guard = reject). 0 turns the guard off.
	MaxVisibleExternal int `toml:"max_visible_external"`
	// HoldMaxBytes is the disk the held messages may take; over it, a
	// message that would be held gets 452 and stays with Postfix.
	HoldMaxBytes int64 `toml:"hold_max_bytes"`
}

// DKIM lists the signing keys, one per sender domain. Mail from a domain
// without a key goes unsigned (and the log says so).
type DKIM struct {
	Keys []DKIMKey `toml:"key"`
}

// DKIMKey is written as [[dkim.key]] in TOML.
type DKIMKey struct {
	Domain    string `toml:"domain"`
	Selector  string `toml:"selector"`
	Algorithm string `toml:"algorithm"` // "rsa" (2048 bits or more) or "ed25519"
	KeyFile   string `toml:"key_file"`  // PEM, as written by zipgate dkim keygen
}

// Release is the delayed password mail and the sender's window to stop it.
type Release struct {
	// Delay between the message leaving and its password mail.
	Delay Duration `toml:"delay"`
	// KeyFile holds the key that encrypts passwords in the store; made
	// (mode 0600) on first start when missing. Default: data_dir/zipgate.key.
	// The pages' CSRF values and cookies are signed with keys derived
	// from it, so with a shared store every node has a copy of one file.
	KeyFile string `toml:"key_file"`
	// Retention keeps finished jobs (for the audit) this long.
	Retention Duration `toml:"retention"`
	// NoticeFrom is the From of notices to senders; empty means
	// postmaster at the sender's own domain.
	NoticeFrom string `toml:"notice_from"`
}

// Web is the sender page (cancel, release now) and health check.
type Web struct {
	Listen string `toml:"listen"`
	// BaseURL is how senders reach the web listener, for the links in
	// their notices (a proxy may stand in front).
	BaseURL string `toml:"base_url"`
}

// SMTP is the listener Postfix hands mail to.
type SMTP struct {
	// Listen is the address of the content filter (Postfix content_filter).
	Listen string `toml:"listen"`
	// Hostname is the name in the greeting and in HELO to the next hop.
	Hostname string `toml:"hostname"`
	// AllowedNetworks are the only clients served, like Postfix mynetworks;
	// anyone else is refused at connect, so zipgate is never an open relay.
	AllowedNetworks []string `toml:"allowed_networks"`
	// MaxMessageBytes is the largest message accepted (SIZE).
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxRecipients per message.
	MaxRecipients int `toml:"max_recipients"`
	// MaxHeaderBytes bounds one header block (the message's or a part's).
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxMIMEDepth bounds multipart nesting.
	MaxMIMEDepth int `toml:"max_mime_depth"`
	// MaxMIMEParts bounds the number of MIME parts in one message.
	MaxMIMEParts int `toml:"max_mime_parts"`
	// MaxTotalHeaderBytes bounds the header blocks of all parts together.
	MaxTotalHeaderBytes int `toml:"max_total_header_bytes"`
	// MaxAttachments bounds the files that go into one zip.
	MaxAttachments int `toml:"max_attachments"`
	// SpoolMemoryBytes: DATA above this size is spooled to disk.
	SpoolMemoryBytes int `toml:"spool_memory_bytes"`
	// Timeout for reading a command or the message from the client.
	Timeout Duration `toml:"timeout"`
}

// Relay is the next hop (Postfix's reinjection smtpd).
type Relay struct {
	NextHop string   `toml:"next_hop"`
	Timeout Duration `toml:"timeout"`
}

// Zip says how attachments are packed.
type Zip struct {
	// Method is "aes256" (default) or "zipcrypto" (Windows Explorer can
	// open it, but it is weak: set it per domain with a policy instead).
	Method string `toml:"method"`
	// NameTemplate names the zip: a Go template with .Date (20261127),
	// .Time (153000) and .ID.
	NameTemplate string `toml:"name_template"`
	// FilenameEncoding of names inside the zip: "utf-8" or "cp932".
	FilenameEncoding string `toml:"filename_encoding"`
	// TimeZone of the DOS times in the zip and of the date in its name,
	// an IANA name ("Asia/Tokyo"); empty means the local zone (TZ).
	// Readers that know the extended timestamp show UTC-correct times
	// whatever this is.
	TimeZone string `toml:"time_zone"`
}

// Location is the zone of zip.time_zone; Validate has checked it.
func (z Zip) Location() *time.Location {
	if z.TimeZone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(z.TimeZone)
	if err != nil {
		return time.Local
	}
	return loc
}

// Password says how the zip password is made.
type Password struct {
	Length  int `toml:"length"`
	Digits  int `toml:"digits"`
	Symbols int `toml:"symbols"`
	// AllowAmbiguous lets look-alike characters (0/O, 1/l/I) in; off by
	// default because people type the password.
	AllowAmbiguous bool `toml:"allow_ambiguous"`
}

// Notice is the text added to the body of a rewritten message.
type Notice struct {
	// Text replaces the built-in Japanese and English notice: a Go
	// template with .ZipName and .Files (each with .Name and .Size).
	Text string `toml:"text"`
	// PasswordSubjectPrefix starts the subject of the password mail.
	PasswordSubjectPrefix string `toml:"password_subject_prefix"`
	// TemplateDir may hold edited copies of the mail templates
	// (password.txt, password_sender.txt, sender_scheduled.txt,
	// sender_released.txt, sender_canceled.txt, sender_failed.txt);
	// missing ones are built in.
	TemplateDir string `toml:"template_dir"`
	// Charset of the mails zipgate writes: "utf-8" or "iso-2022-jp".
	Charset string `toml:"charset"`
	// Language of the texts zipgate writes: "ja", "en" or "ja+en" (both).
	// A domain's policy may choose another for what its recipients read.
	Language string `toml:"language"`
}

// MinPasswordBits is the least entropy a password setting may give: a
// zip's password can be tried offline as fast as the attacker's hardware
// allows, for as long as the attacker likes.
const MinPasswordBits = 64

// Defaults is the configuration zipgate runs on without a file.
func Defaults() Config {
	return Config{
		DataDir:  "./zipgate-data",
		LogLevel: "info",
		SMTP: SMTP{
			Listen:           "127.0.0.1:10025",
			Hostname:         "zipgate.localdomain",
			AllowedNetworks:  []string{"127.0.0.0/8", "::1/128"},
			MaxMessageBytes:  50 << 20,
			MaxRecipients:    1000,
			MaxHeaderBytes:   1 << 20,
			MaxMIMEDepth:     50,
			MaxMIMEParts:     10000,
			SpoolMemoryBytes: 1 << 20,
			Timeout:          Duration(5 * time.Minute),

			// With these two, 10 messages at once of any shape up to
			// max_message_bytes stay under 64 MiB (scripts/memshapes.sh).
			MaxTotalHeaderBytes: 4 << 20,
			MaxAttachments:      1000,
		},
		Relay: Relay{
			NextHop: "127.0.0.1:10026",
			Timeout: Duration(5 * time.Minute),
		},
		Zip: Zip{
			Method:           "aes256",
			NameTemplate:     "attachments_{{.Date}}.zip",
			FilenameEncoding: "utf-8",
		},
		Password: Password{Length: 12, Digits: 3, Symbols: 0},
		Notice:   Notice{PasswordSubjectPrefix: "[Password] ", Charset: "utf-8", Language: "ja+en"},
		Release: Release{
			Delay:     Duration(10 * time.Minute),
			Retention: Duration(90 * 24 * time.Hour),
		},
		Web:    Web{Listen: "127.0.0.1:8025", BaseURL: "http://127.0.0.1:8025"},
		Policy: Policy{LocalDomains: []string{}, ApprovalTimeout: Duration(24 * time.Hour), HoldMaxBytes: 5 << 30},
		Links: Links{Expiry: Duration(7 * 24 * time.Hour), Auth: "password", NotifyFirstDownload: true,
			TrustedProxies: []string{}},
		Admin: Admin{Listen: "127.0.0.1:8026", SessionTimeout: Duration(8 * time.Hour)},
		Audit: Audit{Retention: Duration(365 * 24 * time.Hour)},
		Store: Store{Lease: Duration(30 * time.Second), Timeout: Duration(20 * time.Second)},
	}
}

// Load reads a TOML file over the defaults. Each key is decoded on its
// own: bad values, values of the wrong type and unknown keys all come
// back together as *Problems (a syntax error stops the reading there),
// and every other key is still applied. Call Validate after applying any
// flags.
func Load(path string) (Config, error) {
	c := Defaults()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	var top map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&top)
	if err != nil {
		return c, &Problems{List: []string{fmt.Sprintf("%s: %v", path, err)}}
	}
	var p Problems
	newDecoder(md, path, &p).table(top, reflect.ValueOf(&c).Elem(), nil, "")
	if len(p.List) > 0 {
		return c, &p
	}
	return c, nil
}

// Validate reports every problem of c at once, or nil.
func (c Config) Validate() error {
	if list := c.problems(); len(list) > 0 {
		return &Problems{List: list}
	}
	return nil
}

func (c Config) problems() []string {
	var p Problems
	if c.DataDir == "" {
		p.add("data_dir: must not be empty")
	} else {
		checkWritableDir(&p, "data_dir", c.DataDir)
	}
	if c.Release.KeyFile != "" {
		checkKeyFile(&p, "release.key_file", c.Release.KeyFile)
	}
	checkStore(&p, c.Store)
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	checkAddr(&p, "smtp.listen", c.SMTP.Listen, true)
	checkAddr(&p, "relay.next_hop", c.Relay.NextHop, false)
	if c.SMTP.Hostname == "" || strings.ContainsAny(c.SMTP.Hostname, " \t\r\n") {
		p.add("smtp.hostname: %q is not a host name", c.SMTP.Hostname)
	}
	if len(c.SMTP.AllowedNetworks) == 0 {
		p.add("smtp.allowed_networks: empty; no client could send mail")
	}
	for _, n := range c.SMTP.AllowedNetworks {
		if _, err := ParseNetwork(n); err != nil {
			p.add("smtp.allowed_networks: %v", err)
		}
	}
	positive := []struct {
		key string
		v   int64
	}{
		{"smtp.max_message_bytes", c.SMTP.MaxMessageBytes},
		{"smtp.max_recipients", int64(c.SMTP.MaxRecipients)},
		{"smtp.max_header_bytes", int64(c.SMTP.MaxHeaderBytes)},
		{"smtp.max_mime_depth", int64(c.SMTP.MaxMIMEDepth)},
		{"smtp.max_mime_parts", int64(c.SMTP.MaxMIMEParts)},
		{"smtp.max_total_header_bytes", int64(c.SMTP.MaxTotalHeaderBytes)},
		{"smtp.max_attachments", int64(c.SMTP.MaxAttachments)},
		{"smtp.spool_memory_bytes", int64(c.SMTP.SpoolMemoryBytes)},
		{"smtp.timeout", int64(c.SMTP.Timeout)},
		{"relay.timeout", int64(c.Relay.Timeout)},
		{"password.length", int64(c.Password.Length)},
	}
	for _, f := range positive {
		if f.v <= 0 {
			p.add("%s: must be greater than 0", f.key)
		}
	}
	switch c.Zip.Method {
	case "aes256", "zipcrypto":
	default:
		p.add("zip.method: %q is not aes256 or zipcrypto", c.Zip.Method)
	}
	switch c.Zip.FilenameEncoding {
	case "utf-8", "cp932":
	default:
		p.add("zip.filename_encoding: %q is not utf-8 or cp932", c.Zip.FilenameEncoding)
	}
	if c.Zip.TimeZone != "" {
		if _, err := time.LoadLocation(c.Zip.TimeZone); err != nil {
			p.add("zip.time_zone: %q is not a time zone name like Asia/Tokyo", c.Zip.TimeZone)
		}
	}
	checkNameTemplate(&p, c.Zip.NameTemplate)
	// notice.text is checked where the templates load (with their
	// functions, such as size): cli's configtest.
	checkAddr(&p, "web.listen", c.Web.Listen, true)
	if u, err := url.Parse(c.Web.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("web.base_url: %q is not an absolute http(s) URL such as \"https://zipgate.example.jp\"", c.Web.BaseURL)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		p.add("web.base_url: %q: links are made by adding /s/TOKEN, so no user, query or fragment", c.Web.BaseURL)
	}
	switch {
	case c.Admin.Listen == AdminOnWeb:
	case c.Admin.Listen == c.Web.Listen && !strings.HasSuffix(c.Admin.Listen, ":0"): // port 0: each its own free port
		p.add("admin.listen: %q is web.listen too; write \"web\" to serve the admin pages there", c.Admin.Listen)
	default:
		checkAddr(&p, "admin.listen", c.Admin.Listen, true)
	}
	if c.Admin.SessionTimeout <= 0 {
		p.add("admin.session_timeout: must be greater than 0")
	}
	if c.Audit.Retention <= 0 {
		p.add("audit.retention: must be greater than 0")
	}
	if c.Release.Delay < 0 {
		p.add("release.delay: must not be negative")
	}
	if c.Release.Retention <= 0 {
		p.add("release.retention: must be greater than 0")
	}
	switch c.Notice.Charset {
	case "utf-8", "iso-2022-jp":
	default:
		p.add("notice.charset: %q is not utf-8 or iso-2022-jp", c.Notice.Charset)
	}
	switch c.Notice.Language {
	case "ja", "en", "ja+en":
	default:
		p.add("notice.language: %q is not ja, en or ja+en", c.Notice.Language)
	}
	for _, d := range c.Policy.LocalDomains {
		if _, err := policy.NormalizePattern(d); err != nil {
			p.add("policy.local_domains: %v", err)
		}
	}
	if c.Policy.Hold < 0 {
		p.add("policy.hold: must not be negative")
	}
	if c.Policy.ApprovalTimeout <= 0 {
		p.add("policy.approval_timeout: must be greater than 0")
	}
	if c.Policy.MaxVisibleExternal < 0 {
		p.add("policy.max_visible_external: must not be negative (0 turns the guard off)")
	}
	if c.Policy.HoldMaxBytes <= 0 {
		p.add("policy.hold_max_bytes: must be greater than 0")
	}
	if c.Links.Expiry.D() < time.Minute || c.Links.Expiry.D() > policy.MaxLinkExpiry {
		p.add("links.expiry: %s is not between 1m and %s", c.Links.Expiry.D(), policy.MaxLinkExpiry)
	}
	if c.Links.MaxDownloads < 0 {
		p.add("links.max_downloads: must not be negative (0: no limit)")
	}
	if c.Links.Auth != policy.AuthPassword && c.Links.Auth != policy.AuthOTP {
		p.add("links.auth: %q is not password or otp", c.Links.Auth)
	}
	for _, n := range c.Links.TrustedProxies {
		if _, err := ParseNetwork(n); err != nil {
			p.add("links.trusted_proxies: %v", err)
		}
	}
	if c.Notice.TemplateDir != "" {
		if st, err := os.Stat(c.Notice.TemplateDir); err != nil || !st.IsDir() {
			p.add("notice.template_dir: %q is not a directory", c.Notice.TemplateDir)
		}
	}
	seen := map[string]bool{}
	for i, k := range c.DKIM.Keys {
		switch {
		case k.Domain == "" || k.Selector == "" || k.KeyFile == "":
			p.add("dkim.key[%d]: domain, selector and key_file are all needed", i)
		case seen[strings.ToLower(k.Domain)]:
			p.add("dkim.key[%d]: a second key for %s", i, k.Domain)
		}
		if k.Algorithm != "rsa" && k.Algorithm != "ed25519" {
			p.add("dkim.key[%d]: algorithm %q is not rsa or ed25519", i, k.Algorithm)
		}
		seen[strings.ToLower(k.Domain)] = true
	}
	pw := c.Password
	if pw.Digits < 0 || pw.Symbols < 0 || pw.Digits+pw.Symbols > pw.Length {
		p.add("password: digits (%d) + symbols (%d) must fit in length (%d)", pw.Digits, pw.Symbols, pw.Length)
	}
	if pw.Length > 0 && pw.Length < 8 {
		p.add("password.length: %d is too short to protect anything; use 8 or more", pw.Length)
	}
	setting := password.Policy{Length: pw.Length, Digits: pw.Digits, Symbols: pw.Symbols, AllowAmbiguous: pw.AllowAmbiguous}
	// A length under 8 is reported above already.
	if bits := password.Bits(setting); bits > 0 && bits < MinPasswordBits && pw.Length >= 8 {
		p.add("password: length %d with %d digits and %d symbols gives %.0f bits of entropy (2^%.0f passwords); "+
			"%d or more are needed: raise length (12 with 3 digits gives %.0f)",
			pw.Length, pw.Digits, pw.Symbols, bits, bits, MinPasswordBits, password.Bits(password.Policy{Length: 12, Digits: 3}))
	}
	return p.List
}

// checkAddr wants host:port with a numeric port; a listener may leave the
// host empty (every address) or take port 0 (any free port).
func checkAddr(p *Problems, key, addr string, listen bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add("%s: %q is not host:port: %v", key, addr, err)
		return
	}
	n, err := strconv.ParseUint(port, 10, 16)
	switch {
	case port == "":
		p.add("%s: %q has no port", key, addr)
	case err != nil:
		p.add("%s: %q: port %q is not a number from 1 to 65535", key, addr, port)
	case n == 0 && !listen:
		p.add("%s: %q: port 0 cannot be connected to", key, addr)
	}
	switch {
	case host == "" && !listen:
		p.add("%s: %q has no host", key, addr)
	case host == "":
	case net.ParseIP(host) != nil:
	case !validHostname(host):
		p.add("%s: %q: %q is neither an IP address nor a host name", key, addr, host)
	}
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// checkNameTemplate runs the zip name template the way the gateway does,
// so that a misspelt field ({{.Data}}) shows here and not in a zip name.
func checkNameTemplate(p *Problems, text string) {
	if strings.TrimSpace(text) == "" {
		p.add("zip.name_template: must not be empty")
		return
	}
	t, err := template.New("zip.name_template").Option("missingkey=error").Parse(text)
	if err != nil {
		p.add("zip.name_template: %q: %v", text, err)
		return
	}
	var b strings.Builder
	if err := t.Execute(&b, map[string]string{"Date": "20261127", "Time": "153000", "ID": "abcdefgh"}); err != nil {
		p.add("zip.name_template: %q: %v (the fields are .Date, .Time and .ID)", text, err)
		return
	}
	if strings.TrimSpace(b.String()) == "" {
		p.add("zip.name_template: %q makes an empty name", text)
	}
}

// Modes for access(2): this user (the one the server will run as, under
// the unit's ExecStartPre) may write there.
const (
	accessW = 0x2
	accessR = 0x4
	accessX = 0x1
)

// checkWritableDir: dir is a directory this user can write in, or does
// not exist yet and its nearest existing parent lets this user make it.
func checkWritableDir(p *Problems, key, dir string) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		// ENOTDIR: a file stands in the way; the walk up names it.
		if (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && filepath.Dir(d) != d {
			continue
		}
		switch {
		case err != nil:
			p.add("%s: %q: %v", key, dir, err)
		case !st.IsDir():
			p.add("%s: %q: %s is not a directory", key, dir, d)
		case syscall.Access(d, accessW|accessX) != nil && d == filepath.Clean(dir):
			p.add("%s: %q is not writable by user %s", key, dir, whoami())
		case syscall.Access(d, accessW|accessX) != nil:
			p.add("%s: %q does not exist and user %s cannot make it in %s", key, dir, whoami(), d)
		}
		return
	}
}

// checkKeyFile: the file can be read, or it can be made (first start).
func checkKeyFile(p *Problems, key, file string) {
	if _, err := os.Stat(file); err == nil {
		if syscall.Access(file, accessR) != nil {
			p.add("%s: %q is not readable by user %s", key, file, whoami())
		}
		return
	} else if !errors.Is(err, fs.ErrNotExist) {
		p.add("%s: %v", key, err)
		return
	}
	dir := filepath.Dir(file)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		p.add("%s: %q does not exist and its directory %s is missing", key, file, dir)
	} else if syscall.Access(dir, accessW|accessX) != nil {
		p.add("%s: %q does not exist and user %s cannot make it in %s", key, file, whoami(), dir)
	}
}

// checkStore: a PostgreSQL URL zipgate can use, a password file it can
// read. Problems show the URL without its password.
func checkStore(p *Problems, s Store) {
	if s.URL != "" {
		u, err := url.Parse(s.URL)
		switch {
		case err != nil:
			p.add("store.url: %s is not a URL like \"postgres://zipgate@db.example/zipgate?sslmode=verify-full\"", RedactURL(s.URL))
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			p.add("store.url: %q is not a postgres:// URL (leave it empty for the embedded SQLite)", RedactURL(s.URL))
		}
	}
	if s.PasswordFile != "" {
		if s.URL == "" {
			p.add("store.password_file: set, but store.url is empty (the embedded SQLite has no password)")
		}
		if fi, err := os.Stat(s.PasswordFile); err != nil {
			p.add("store.password_file: %v", err)
		} else if fi.IsDir() {
			p.add("store.password_file: %q is a directory", s.PasswordFile)
		} else if syscall.Access(s.PasswordFile, accessR) != nil {
			p.add("store.password_file: %q is not readable by user %s", s.PasswordFile, whoami())
		}
	}
	if s.Lease.D() < 5*time.Second || s.Lease.D() > time.Hour {
		p.add("store.lease: %s is not between 5s and 1h", s.Lease.D())
	}
	if s.Timeout.D() < time.Second || s.Timeout.D() > 10*time.Minute {
		p.add("store.timeout: %s is not between 1s and 10m", s.Timeout.D())
	}
}

func whoami() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// ParseNetwork accepts a CIDR prefix or a single address.
func ParseNetwork(s string) (netip.Prefix, error) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR network", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Problems is every problem found in a configuration.
type Problems struct{ List []string }

func (p *Problems) add(format string, args ...any) {
	p.List = append(p.List, fmt.Sprintf(format, args...))
}

func (p *Problems) Error() string { return strings.Join(p.List, "\n") }

// PolicyConfig is what policy decisions take from the configuration;
// call it on a validated configuration.
func (c Config) PolicyConfig() policy.Config {
	local, _ := policy.NewDomainSet(c.Policy.LocalDomains)
	return policy.Config{LocalDomains: local, MaxVisibleExternal: c.Policy.MaxVisibleExternal, Defaults: policy.Defaults{
		Delay: c.Release.Delay.D(), ZipMethod: c.Zip.Method,
		FilenameEncoding: c.Zip.FilenameEncoding, Language: c.Notice.Language, Hold: c.Policy.Hold.D(),
		LinkExpiry: c.Links.Expiry.D(), MaxDownloads: c.Links.MaxDownloads, LinkAuth: c.Links.Auth,
	}}
}

// KeyFile is where the store key lives.
func (c Config) KeyFile() string {
	if c.Release.KeyFile != "" {
		return c.Release.KeyFile
	}
	return filepath.Join(c.DataDir, "zipgate.key")
}

// DBFile is the embedded store's database.
func (c Config) DBFile() string { return filepath.Join(c.DataDir, "zipgate.db") }

// Duration is a time.Duration written as "5m" or "30s" in TOML.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := policy.ParseDuration(string(b)) // also days: "7d"
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like \"30s\", \"10m\", \"2h\" or \"7d\"", b)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
