// Package notice renders the texts zipgate adds to mail: the notice in the
// body of a rewritten message, the password mail and the notices to the
// sender. Templates are Go text/templates; the built-in ones are Japanese
// and English, and an admin may put edited copies in a directory.
package notice

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

//go:embed templates/*.txt
var builtin embed.FS

// The mail templates, by file name.
const (
	Password        = "password.txt"
	PasswordSender  = "password_sender.txt" // the password to the sender, who passes it on
	SenderScheduled = "sender_scheduled.txt"
	SenderReleased  = "sender_released.txt"
	SenderCanceled  = "sender_canceled.txt"
	SenderFailed    = "sender_failed.txt"
	// Held messages: the notice to the sender, the request to each
	// approver, and how it ended.
	Held            = "held.txt"
	ApprovalRequest = "approval_request.txt"
	HeldOutcome     = "held_outcome.txt"
	// Download links: the password of the page (to the recipients, or to
	// the sender), the sender's notice when the mail left, the one-time
	// code to a recipient, and the sender's notices of the first download
	// and of a lock.
	PasswordLink       = "password_link.txt"
	PasswordLinkSender = "password_link_sender.txt"
	SenderLink         = "sender_link.txt"
	LinkCode           = "link_code.txt"
	LinkDownloaded     = "link_downloaded.txt"
	LinkLocked         = "link_locked.txt"
	body               = "body.txt"
	bodyLink           = "body_link.txt"
)

var mailTemplates = []string{Password, PasswordSender, SenderScheduled, SenderReleased, SenderCanceled, SenderFailed,
	Held, ApprovalRequest, HeldOutcome, PasswordLink, PasswordLinkSender, SenderLink, LinkCode, LinkDownloaded, LinkLocked}

// MailTemplates are the names of the mail templates.
func MailTemplates() []string { return append([]string(nil), mailTemplates...) }

// Languages: each template holds both, in {{if .Ja}} and {{if .En}}
// sections; "ja+en" shows both, Japanese first.
const (
	Japanese = "ja"
	English  = "en"
	Both     = "ja+en"
)

// lang answers the templates' .Ja, .En and .L for a language ("" = both).
type lang string

func (l lang) Ja() bool { return l != English }
func (l lang) En() bool { return l != Japanese }

// L picks the label for the language: "宛先 / Recipients" in both.
func (l lang) L(ja, en string) string {
	switch l {
	case Japanese:
		return ja
	case English:
		return en
	}
	return ja + " / " + en
}

// File is one attachment as the notices show it.
type File struct {
	Name string
	Size int64
}

// BodyData fills the body notice.
type BodyData struct {
	ZipName string
	Files   []File
	// PasswordTo is "recipient", "sender" or "manual" (policy.PasswordTo).
	PasswordTo string
	// A download link's notice (body_link.txt): the page, until when it
	// opens, how many downloads it allows (0: no limit), and what opens
	// it ("password" or "otp").
	Link         string
	Expires      time.Time
	MaxDownloads int
	Auth         string
	lang
}

// SetLanguage chooses the language: "ja", "en" or "ja+en"; "" means the
// templates' default.
func (d *BodyData) SetLanguage(l string) { d.lang = lang(l) }

// Data fills the mail templates; each uses what it needs.
type Data struct {
	Subject  string // the original subject, decoded
	ZipName  string
	Files    []File
	Rcpts    []string
	Password string    // password.txt only
	Sent     time.Time // when the original message left
	Due      time.Time // when the password goes
	When     time.Time // when it was released or canceled
	Link     string    // the sender page
	Reason   string    // why it failed
	// PasswordTo is "recipient", "sender" or "manual" (policy.PasswordTo).
	PasswordTo string

	// Held messages.
	Sender    string
	Reasons   []string  // why it is held: hold, approval, guard
	Until     time.Time // the end of the hold
	Expires   time.Time // not sent unless decided by then
	Approvers string    // who may approve, comma separated
	Visible   int       // outside addresses in To and Cc
	Outcome   string    // sent, canceled, rejected, expired, failed
	By        string    // who canceled or rejected it

	// Download links: what opens the page ("password", "otp"), the code
	// (link_code.txt; Expires is its end), and who downloaded what first.
	Auth   string
	Code   string
	Client string
	Item   string
	lang
}

// SetLanguage chooses the language: "ja", "en" or "ja+en"; "" means the
// templates' default.
func (d *Data) SetLanguage(l string) { d.lang = lang(l) }

var funcs = template.FuncMap{
	"size": HumanSize,
	// quoteJa puts a subject in Japanese quotes; nothing when empty.
	"quoteJa": func(s string) string {
		if s == "" {
			return ""
		}
		return "「" + s + "」"
	},
}

// Templates holds the parsed templates.
type Templates struct {
	t        map[string]*template.Template
	charset  string
	language string
}

// Options say where edited templates are and how mails are written.
type Options struct {
	// BodyText, when set, replaces the body notice template.
	BodyText string
	// Dir may hold edited copies of the mail templates.
	Dir string
	// Charset is "utf-8" (default) or "iso-2022-jp".
	Charset string
	// Language is the default: "ja", "en" or "ja+en" (default).
	Language string
}

// Load parses the templates: an edited copy in o.Dir wins over the
// built-in one.
func Load(o Options) (*Templates, error) {
	t := &Templates{t: map[string]*template.Template{}, charset: o.Charset, language: o.Language}
	if t.charset == "" {
		t.charset = "utf-8"
	}
	if t.language == "" {
		t.language = Both
	}
	for _, name := range append([]string{body, bodyLink}, mailTemplates...) {
		text, err := fs.ReadFile(builtin, "templates/"+name)
		if err != nil {
			return nil, err
		}
		if o.Dir != "" {
			b, err := os.ReadFile(filepath.Join(o.Dir, name))
			switch {
			case err == nil:
				text = b
			case !errors.Is(err, os.ErrNotExist):
				return nil, err
			}
		}
		if name == body && o.BodyText != "" {
			text = []byte(o.BodyText)
		}
		tt, err := template.New(name).Funcs(funcs).Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		t.t[name] = tt
	}
	return t, nil
}

// Body renders the notice added to the body of a rewritten message.
func (t *Templates) Body(d BodyData) (string, error) {
	if d.lang == "" {
		d.lang = lang(t.language)
	}
	if d.PasswordTo == "" {
		d.PasswordTo = "recipient"
	}
	var b strings.Builder
	if err := t.t[body].Execute(&b, d); err != nil {
		return "", fmt.Errorf("notice template: %w", err)
	}
	return b.String(), nil
}

// BodyLink renders the notice added to the body of a copy whose files
// stay behind a download link.
func (t *Templates) BodyLink(d BodyData) (string, error) {
	if d.lang == "" {
		d.lang = lang(t.language)
	}
	if d.PasswordTo == "" {
		d.PasswordTo = "recipient"
	}
	var b strings.Builder
	if err := t.t[bodyLink].Execute(&b, d); err != nil {
		return "", fmt.Errorf("link notice template: %w", err)
	}
	return b.String(), nil
}

// Header is the envelope-independent head of a mail zipgate writes.
type Header struct {
	ID        string // zipgate id, for the trace header and Message-ID
	Hostname  string
	From      string // field values as they go out
	To, Cc    string
	Subject   string // unencoded
	InReplyTo string // Message-ID to thread under
	Kind      string // trace: password, notice
	Date      time.Time
}

// Mail renders the template name with d as a complete message (CRLF line
// ends) in the configured charset.
func (t *Templates) Mail(name string, h Header, d Data) ([]byte, error) {
	tt := t.t[name]
	if tt == nil {
		return nil, fmt.Errorf("no template %s", name)
	}
	if d.lang == "" {
		d.lang = lang(t.language)
	}
	if d.PasswordTo == "" {
		d.PasswordTo = "recipient"
	}
	var text bytes.Buffer
	if err := tt.Execute(&text, d); err != nil {
		// Name the template, never the data: it may hold the password.
		return nil, fmt.Errorf("template %s failed", name)
	}
	bodyText := strings.ReplaceAll(strings.ReplaceAll(text.String(), "\r\n", "\n"), "\n", "\r\n")

	var m bytes.Buffer
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&m, "%s: %s\r\n", name, fold(len(name)+2, value))
		}
	}
	subject, contentType, cte := EncodeHeader(h.Subject), "text/plain; charset=UTF-8", "base64"
	var payload []byte
	if t.charset == "iso-2022-jp" {
		enc, err1 := japanese.ISO2022JP.NewEncoder().String(bodyText)
		subj, err2 := japanese.ISO2022JP.NewEncoder().String(h.Subject)
		if err1 == nil && err2 == nil {
			payload, contentType, cte = []byte(enc), "text/plain; charset=ISO-2022-JP", "7bit"
			if !is7bit(h.Subject) {
				subject = mime.BEncoding.Encode("ISO-2022-JP", subj)
			}
		}
		// A text ISO-2022-JP cannot spell stays UTF-8.
	}
	field("From", h.From)
	field("To", h.To)
	field("Cc", h.Cc)
	field("Subject", subject)
	field("Date", h.Date.Format(time.RFC1123Z))
	field("Message-ID", fmt.Sprintf("<%s.%s.%s@%s>", h.ID, h.Kind, randomTag(), h.Hostname))
	field("In-Reply-To", h.InReplyTo)
	field("References", h.InReplyTo)
	field("MIME-Version", "1.0")
	field("Content-Type", contentType)
	field("Content-Transfer-Encoding", cte)
	field("Auto-Submitted", "auto-generated")
	field("X-Zipgate", h.Kind+"; id="+h.ID)
	m.WriteString("\r\n")
	if payload != nil {
		m.Write(payload)
		if !bytes.HasSuffix(payload, []byte("\r\n")) {
			m.WriteString("\r\n")
		}
		return m.Bytes(), nil
	}
	enc := base64.StdEncoding.EncodeToString([]byte(bodyText))
	for len(enc) > 76 {
		m.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	m.WriteString(enc + "\r\n")
	return m.Bytes(), nil
}

// fold breaks a long address list after its commas, so no line passes 78
// characters where it can be helped (and Postfix never has to break a
// line over 998 itself, which would break the DKIM signature).
func fold(used int, value string) string {
	if used+len(value) <= 78 || !strings.Contains(value, ",") {
		return value
	}
	var b strings.Builder
	col := used
	for i, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if i > 0 {
			b.WriteByte(',')
			col++
			if col+1+len(item) > 78 {
				b.WriteString("\r\n ")
				col = 1
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(item)
		col += len(item)
	}
	return b.String()
}

// EncodeHeader encodes a header value as RFC 2047 UTF-8 words when it is
// not plain ASCII.
func EncodeHeader(s string) string {
	if is7bit(s) {
		return s
	}
	return mime.BEncoding.Encode("UTF-8", s)
}

func is7bit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// HumanSize writes a byte count the way people read it.
func HumanSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	case n < 1024*1024*1024:
		return fmt.Sprintf("%.1f MB", float64(n)/(1024*1024))
	}
	return fmt.Sprintf("%.1f GB", float64(n)/(1024*1024*1024))
}

func randomTag() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
