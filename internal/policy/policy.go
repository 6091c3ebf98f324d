// Package policy decides what happens to a message for each of its
// recipients: which rule of the admin's per-domain policies applies, and
// whether the recipient gets the message as sent, a zipped copy, or
// nothing (the message is refused). Deciding is a pure function of the
// envelope and the rules; the gateway carries the decision out.
package policy

import (
	"fmt"
	"strings"
	"time"
)

// Action is what a recipient domain gets.
type Action string

const (
	// Encrypt: attachments go into a password-protected zip.
	Encrypt Action = "encrypt"
	// Pass: the message as sent.
	Pass Action = "pass"
	// Reject: mail with attachments is refused (5.7.1).
	Reject Action = "reject"
	// Link: attachments stay on the gateway, encrypted; the message
	// carries a link to a download page that the password (or a code
	// mailed on request) opens, until it expires or is taken back.
	Link Action = "link"
)

// How a download link's page is opened (Settings.LinkAuth).
const (
	// AuthPassword: the password, mailed like a zip's.
	AuthPassword = "password"
	// AuthOTP: a one-time code the page mails to a recipient of the link
	// on request; no password mail goes.
	AuthOTP = "otp"
)

// PasswordTo says who gets the password mail, and when.
type PasswordTo string

const (
	// ToRecipient: the recipients of the zip, after the delay.
	ToRecipient PasswordTo = "recipient"
	// ToSender: the sender, after the delay, to pass on by another channel.
	ToSender PasswordTo = "sender"
	// Manual: the recipients, but only when the sender presses Release now.
	Manual PasswordTo = "manual"
)

// Values every field takes; the CLI, the store and validation use them.
var (
	Actions           = []string{string(Encrypt), string(Pass), string(Reject), string(Link)}
	LinkAuths         = []string{AuthPassword, AuthOTP}
	PasswordTos       = []string{string(ToRecipient), string(ToSender), string(Manual)}
	ZipMethods        = []string{"aes256", "zipcrypto"}
	FilenameEncodings = []string{"utf-8", "cp932"}
	Languages         = []string{"ja", "en", "ja+en"}
	Guards            = []string{GuardHold, GuardReject}
	maxNoteLength     = 1000
	maxDelay          = 30 * 24 * time.Hour
	// MaxLinkExpiry bounds link_expiry; the files go at release.retention
	// at the latest anyway.
	MaxLinkExpiry      = 365 * 24 * time.Hour
	maxMaxDownloads    = 100000
	errPatternTemplate = "%q is not a domain, *.domain or *"
)

// Policy is the admin's rule for one recipient domain pattern: an exact
// domain ("partner.example"), its subdomains ("*.partner.example"), or
// every domain ("*"). A field left empty (nil for Delay) comes from the
// next less specific rule that sets it, and then from the configuration.
type Policy struct {
	Domain           string         `json:"domain"`
	Action           Action         `json:"action,omitempty"`
	PasswordTo       PasswordTo     `json:"password_to,omitempty"`
	Delay            *time.Duration `json:"delay,omitempty"`
	ZipMethod        string         `json:"zip_method,omitempty"`
	FilenameEncoding string         `json:"filename_encoding,omitempty"`
	Language         string         `json:"language,omitempty"`
	// Hold keeps the whole message back this long before it leaves, so
	// the sender can take it back; nil: [policy] hold.
	Hold *time.Duration `json:"hold,omitempty"`
	// Approvers: one of them must approve mail to this domain before it
	// leaves. Unlike the other fields, nil means none (not inherited from
	// a less specific rule; "default" in the CLI clears it).
	Approvers []string `json:"approvers,omitempty"`
	// Guard is what a message that shows too many outside addresses in
	// To and Cc gets: GuardHold (default) or GuardReject.
	Guard string `json:"guard,omitempty"`
	// LinkExpiry, MaxDownloads and LinkAuth shape the download link of
	// the action link: how long it works (nil: [links] expiry), how many
	// downloads it allows (nil: [links] max_downloads; 0: no limit), and
	// what opens it (password or otp; "": [links] auth).
	LinkExpiry   *time.Duration `json:"link_expiry,omitempty"`
	MaxDownloads *int           `json:"max_downloads,omitempty"`
	LinkAuth     string         `json:"link_auth,omitempty"`
	Note         string         `json:"note,omitempty"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

// What the To/Cc guard does to a message over [policy] max_visible_external.
const (
	GuardHold   = "hold"   // held until the sender presses Send now
	GuardReject = "reject" // refused (5.7.1)
)

// Validate reports every bad field of p at once, or nil. The domain must
// already be normalized (NormalizePattern).
func (p *Policy) Validate() error {
	var bad []string
	if _, err := NormalizePattern(p.Domain); err != nil {
		bad = append(bad, err.Error())
	}
	check := func(field, v string, allowed []string) {
		if v != "" && !oneOf(v, allowed) {
			bad = append(bad, fmt.Sprintf("%s: %q is not one of %s", field, v, strings.Join(allowed, ", ")))
		}
	}
	check("action", string(p.Action), Actions)
	check("password_to", string(p.PasswordTo), PasswordTos)
	check("zip_method", p.ZipMethod, ZipMethods)
	check("filename_encoding", p.FilenameEncoding, FilenameEncodings)
	check("language", p.Language, Languages)
	check("guard", p.Guard, Guards)
	check("link_auth", p.LinkAuth, LinkAuths)
	if p.LinkExpiry != nil && (*p.LinkExpiry < time.Minute || *p.LinkExpiry > MaxLinkExpiry) {
		bad = append(bad, fmt.Sprintf("link_expiry: %s is not between 1m and %s", *p.LinkExpiry, MaxLinkExpiry))
	}
	if p.MaxDownloads != nil && (*p.MaxDownloads < 0 || *p.MaxDownloads > maxMaxDownloads) {
		bad = append(bad, fmt.Sprintf("max_downloads: %d is not between 0 (no limit) and %d", *p.MaxDownloads, maxMaxDownloads))
	}
	if p.Delay != nil && (*p.Delay < 0 || *p.Delay > maxDelay) {
		bad = append(bad, fmt.Sprintf("delay: %s is not between 0s and %s", *p.Delay, maxDelay))
	}
	if p.Hold != nil && (*p.Hold < 0 || *p.Hold > maxDelay) {
		bad = append(bad, fmt.Sprintf("hold: %s is not between 0s and %s", *p.Hold, maxDelay))
	}
	for _, a := range p.Approvers {
		if !IsAddress(a) {
			bad = append(bad, fmt.Sprintf("approvers: %q is not a mail address", a))
		}
	}
	if len(p.Note) > maxNoteLength {
		bad = append(bad, fmt.Sprintf("note: longer than %d bytes", maxNoteLength))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// IsAddress accepts local@domain with a domain IDNA takes.
func IsAddress(a string) bool {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 || strings.ContainsAny(a, " \t\r\n,<>") {
		return false
	}
	_, err := NormalizePattern(a[i+1:])
	return err == nil && !strings.HasPrefix(a[i+1:], "*")
}

// Settings are the effective values for one recipient: every field set,
// from its rules and the configuration.
type Settings struct {
	Action           Action
	PasswordTo       PasswordTo
	Delay            time.Duration
	ZipMethod        string
	FilenameEncoding string
	Language         string
	Hold             time.Duration
	// Approvers, lower case, sorted, comma separated ("" none): a string
	// keeps Settings comparable, so equal settings make one group.
	Approvers string
	Guard     string
	// The download link (Action Link only).
	LinkExpiry   time.Duration
	MaxDownloads int // 0: no limit
	LinkAuth     string
}

// ApproverList is Settings.Approvers as a list.
func (s Settings) ApproverList() []string {
	if s.Approvers == "" {
		return nil
	}
	return strings.Split(s.Approvers, ",")
}

// Defaults are the configuration's values, under every rule.
type Defaults struct {
	Delay            time.Duration // release.delay
	ZipMethod        string        // zip.method
	FilenameEncoding string        // zip.filename_encoding
	Language         string        // notice.language
	Hold             time.Duration // policy.hold
	LinkExpiry       time.Duration // links.expiry
	MaxDownloads     int           // links.max_downloads
	LinkAuth         string        // links.auth
}

// ParseDuration reads a duration as time.ParseDuration does, and also in
// days ("7d", "1d12h"), which is how link expiries are thought of.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days := time.Duration(0)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		var n int
		// Beyond 100 years no duration here means anything, and days
		// times 24h must not overflow.
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err != nil || fmt.Sprint(n) != s[:i] || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a duration like 7d, 36h or 90m", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d > 0 && days+d < days {
		return 0, fmt.Errorf("%q is not a duration like 7d, 36h or 90m", s)
	}
	return days + d, nil
}
