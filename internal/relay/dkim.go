package relay

import (
	"bufio"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMKey is one signing key: a domain, its selector and the private key.
type DKIMKey struct {
	Domain    string
	Selector  string
	Algorithm string // "rsa" or "ed25519"
	KeyFile   string
	signer    crypto.Signer
}

// signedHeaders are the fields every signature covers; From is listed
// twice so that a From added later breaks the signature (oversigning).
var signedHeaders = []string{"From", "From", "To", "Cc", "Subject", "Date", "Message-ID",
	"MIME-Version", "Content-Type", "In-Reply-To", "References"}

// DKIM signs mail for the domains it has keys for.
type DKIM struct{ keys map[string]*DKIMKey }

// LoadDKIM reads every key file and checks it matches its algorithm. The
// error lists every key that is wrong.
func LoadDKIM(keys []DKIMKey) (*DKIM, error) {
	d := &DKIM{keys: map[string]*DKIMKey{}}
	var errs []error
	for _, k := range keys {
		k := k
		s, err := readKey(k.KeyFile, k.Algorithm)
		if err != nil {
			errs = append(errs, fmt.Errorf("dkim key for %s (selector %s): %w", k.Domain, k.Selector, err))
			continue
		}
		k.signer = s
		d.keys[strings.ToLower(k.Domain)] = &k
	}
	return d, errors.Join(errs...)
}

func readKey(path, algorithm string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if algorithm != "rsa" {
			return nil, fmt.Errorf("%s holds an RSA key, but the algorithm is %q", path, algorithm)
		}
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: RSA key of %d bits; receivers want 2048 or more", path, k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		if algorithm != "ed25519" {
			return nil, fmt.Errorf("%s holds an Ed25519 key, but the algorithm is %q", path, algorithm)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%s: unsupported key type %T", path, key)
}

// SignsFor reports whether there is a key for domain.
func (d *DKIM) SignsFor(domain string) bool {
	return d != nil && d.keys[strings.ToLower(domain)] != nil
}

// Sign returns the message to send: with a DKIM-Signature field in front
// when there is a key for the domain of its From, else as it is. open is
// called twice (hash, then send), so memory does not grow with the
// message. status says what happened, for the log.
func (d *DKIM) Sign(open func() io.Reader) (msg io.Reader, status string, err error) {
	if d == nil || len(d.keys) == 0 {
		return open(), "unsigned: no DKIM keys configured", nil
	}
	domain, err := fromDomain(open())
	if err != nil {
		return nil, "", err
	}
	k := d.keyFor(domain)
	if k == nil {
		return crlf(open()), "unsigned: no key for " + orUnknown(domain), nil
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain: k.Domain, Selector: k.Selector, Signer: k.signer, Hash: crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: signedHeaders,
	})
	if err != nil {
		return nil, "", err
	}
	// The next hop gets CRLF line ends (the SMTP client makes them), so
	// that is what is signed.
	if _, err := io.Copy(s, crlf(open())); err != nil {
		s.Close()
		return nil, "", err
	}
	if err := s.Close(); err != nil {
		return nil, "", err
	}
	return io.MultiReader(strings.NewReader(s.Signature()), crlf(open())),
		"signed d=" + k.Domain + " s=" + k.Selector, nil
}

func (d *DKIM) keyFor(domain string) *DKIMKey {
	if d == nil {
		return nil
	}
	return d.keys[strings.ToLower(domain)]
}

// fromDomain reads the header up to the From field and returns the
// domain of its address.
func fromDomain(r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	var from strings.Builder
	inFrom := false
	for {
		line, err := br.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" && err == nil {
			break // end of header
		}
		switch {
		case inFrom && (strings.HasPrefix(trimmed, " ") || strings.HasPrefix(trimmed, "\t")):
			from.WriteString(trimmed)
		case inFrom:
			inFrom = false
		}
		if !inFrom && from.Len() == 0 && len(trimmed) > 5 && strings.EqualFold(trimmed[:5], "from:") {
			inFrom = true
			from.WriteString(trimmed[5:])
		}
		if err != nil {
			break
		}
	}
	return DomainOf(from.String()), nil
}

// DomainOf returns the domain of the (first) address in a From value.
func DomainOf(value string) string {
	addr := strings.TrimSpace(value)
	if list, err := mail.ParseAddressList(addr); err == nil && len(list) > 0 {
		addr = list[0].Address
	} else if i, j := strings.LastIndexByte(addr, '<'), strings.LastIndexByte(addr, '>'); i >= 0 && j > i {
		addr = addr[i+1 : j]
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(strings.Trim(addr[i+1:], " >"))
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "(no From domain)"
	}
	return s
}

// crlf turns bare LF line ends into CRLF, as the SMTP client does.
func crlf(r io.Reader) io.Reader { return &crlfReader{r: bufio.NewReader(r)} }

type crlfReader struct {
	r       *bufio.Reader
	prev    byte
	pending bool // a '\n' is owed after the '\r' just returned
}

func (c *crlfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.pending {
			p[n], c.prev, c.pending = '\n', '\n', false
			n++
			continue
		}
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 && err == io.EOF {
				return n, nil
			}
			return n, err
		}
		if b == '\n' && c.prev != '\r' {
			p[n], c.prev, c.pending = '\r', '\r', true
			n++
			continue
		}
		p[n], c.prev = b, b
		n++
	}
	return n, nil
}
