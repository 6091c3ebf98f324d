// Package config holds zipgate's typed configuration: built-in defaults, a
// strict TOML loader (unknown keys are errors) and validation that reports
// every problem at once.
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/zipgate/zipgate/internal/password"
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
	// open it, but it is weak; a later policy makes it per domain).
	Method string `toml:"method"`
	// NameTemplate names the zip: a Go template with .Date (20261127),
	// .Time (153000) and .ID.
	NameTemplate string `toml:"name_template"`
	// FilenameEncoding of names inside the zip: "utf-8" or "cp932".
	FilenameEncoding string `toml:"filename_encoding"`
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
	// (password.txt, sender_scheduled.txt, sender_released.txt,
	// sender_canceled.txt, sender_failed.txt); missing ones are built in.
	TemplateDir string `toml:"template_dir"`
	// Charset of the mails zipgate writes: "utf-8" or "iso-2022-jp".
	Charset string `toml:"charset"`
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
		Notice:   Notice{PasswordSubjectPrefix: "[Password] ", Charset: "utf-8"},
		Release: Release{
			Delay:     Duration(10 * time.Minute),
			Retention: Duration(90 * 24 * time.Hour),
		},
		Web: Web{Listen: "127.0.0.1:8025", BaseURL: "http://127.0.0.1:8025"},
	}
}

// Load reads a TOML file over the defaults. Syntax errors and unknown
// keys come back as *Problems; call Validate after applying any flags.
func Load(path string) (Config, error) {
	c := Defaults()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return c, &Problems{List: []string{fmt.Sprintf("%s: %v", path, err)}}
	}
	var p Problems
	for _, k := range md.Undecoded() {
		p.add("%s: unknown key %q", path, k.String())
	}
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
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	checkAddr(&p, "smtp.listen", c.SMTP.Listen)
	checkAddr(&p, "relay.next_hop", c.Relay.NextHop)
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
	if _, err := template.New("zip").Parse(c.Zip.NameTemplate); err != nil || c.Zip.NameTemplate == "" {
		p.add("zip.name_template: %q is not a usable template: %v", c.Zip.NameTemplate, err)
	}
	if c.Notice.Text != "" {
		if _, err := template.New("notice").Parse(c.Notice.Text); err != nil {
			p.add("notice.text: %v", err)
		}
	}
	checkAddr(&p, "web.listen", c.Web.Listen)
	if u, err := url.Parse(c.Web.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("web.base_url: %q is not an http(s) URL", c.Web.BaseURL)
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
	policy := password.Policy{Length: pw.Length, Digits: pw.Digits, Symbols: pw.Symbols, AllowAmbiguous: pw.AllowAmbiguous}
	if bits := password.Bits(policy); bits > 0 && bits < MinPasswordBits {
		p.add("password: length %d with %d digits and %d symbols gives %.0f bits of entropy (2^%.0f passwords); "+
			"%d or more are needed: raise length (12 with 3 digits gives %.0f)",
			pw.Length, pw.Digits, pw.Symbols, bits, bits, MinPasswordBits, password.Bits(password.Policy{Length: 12, Digits: 3}))
	}
	return p.List
}

func checkAddr(p *Problems, key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add("%s: %q is not host:port: %v", key, addr, err)
		return
	}
	if port == "" {
		p.add("%s: %q has no port", key, addr)
	}
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
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
