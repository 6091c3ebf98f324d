// Package notice renders the texts zipgate adds to mail: the notice in the
// body of a rewritten message and the password mail. Templates are Go
// text/templates; the built-in ones are Japanese and English.
package notice

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

//go:embed templates/*.txt
var builtin embed.FS

// File is one attachment as the notices show it.
type File struct {
	Name string
	Size int64
}

// BodyData fills the body notice.
type BodyData struct {
	ZipName string
	Files   []File
}

var funcs = template.FuncMap{
	"size": HumanSize,
	// quoteJa puts a subject in Japanese quotes, or says "the mail" when
	// there is none.
	"quoteJa": func(s string) string {
		if s == "" {
			return "メール"
		}
		return "「" + s + "」"
	},
}

// Templates holds the parsed templates.
type Templates struct {
	body, password *template.Template
}

// Load parses the built-in templates; bodyText, when not empty, replaces
// the built-in body notice.
func Load(bodyText string) (*Templates, error) {
	t := &Templates{}
	var err error
	if bodyText == "" {
		t.body, err = template.New("body.txt").Funcs(funcs).ParseFS(builtin, "templates/body.txt")
	} else {
		t.body, err = template.New("body.txt").Funcs(funcs).Parse(bodyText)
	}
	if err != nil {
		return nil, fmt.Errorf("notice template: %w", err)
	}
	if t.password, err = template.New("password.txt").Funcs(funcs).ParseFS(builtin, "templates/password.txt"); err != nil {
		return nil, fmt.Errorf("password template: %w", err)
	}
	return t, nil
}

// Body renders the notice added to the body of a rewritten message.
func (t *Templates) Body(d BodyData) (string, error) {
	var b strings.Builder
	if err := t.body.Execute(&b, d); err != nil {
		return "", fmt.Errorf("notice template: %w", err)
	}
	return b.String(), nil
}

// PasswordMail is everything the password mail says.
type PasswordMail struct {
	ID        string // zipgate id
	Hostname  string // for the Message-ID
	From      string // the original From field value, as written
	To, Cc    string // the original To and Cc field values, as written
	Subject   string // the original subject, decoded
	MessageID string // the original Message-ID, for threading
	ZipName   string
	Files     []File
	Password  string
	Sent      time.Time // when the original was accepted
	Now       time.Time
}

// Password renders the password mail as a complete message (UTF-8,
// base64 body, CRLF line ends).
func (t *Templates) Password(m PasswordMail, prefix string) ([]byte, error) {
	var body bytes.Buffer
	if err := t.password.Execute(&body, m); err != nil {
		// The error names the template, never the data.
		return nil, fmt.Errorf("password template failed")
	}
	var h bytes.Buffer
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&h, "%s: %s\r\n", name, value)
		}
	}
	field("From", m.From)
	field("To", m.To)
	field("Cc", m.Cc)
	field("Subject", EncodeHeader(prefix+m.Subject))
	field("Date", m.Now.Format(time.RFC1123Z))
	field("Message-ID", fmt.Sprintf("<%s.%s@%s>", m.ID, randomTag(), m.Hostname))
	field("In-Reply-To", m.MessageID)
	field("References", m.MessageID)
	field("MIME-Version", "1.0")
	field("Content-Type", "text/plain; charset=UTF-8")
	field("Content-Transfer-Encoding", "base64")
	field("Auto-Submitted", "auto-generated")
	field("X-Zipgate", "password; id="+m.ID)
	h.WriteString("\r\n")
	text := strings.ReplaceAll(body.String(), "\n", "\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(text))
	for len(enc) > 76 {
		h.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	h.WriteString(enc + "\r\n")
	return h.Bytes(), nil
}

// EncodeHeader encodes a header value as RFC 2047 UTF-8 words when it is
// not plain ASCII.
func EncodeHeader(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return mime.BEncoding.Encode("UTF-8", s)
		}
	}
	return s
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
