package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// dkimCmd: zipgate dkim keygen writes a signing key and prints the DNS
// record to publish for it.
func dkimCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "keygen" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("dkim keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	domain := fs.String("domain", "", "sender domain the key signs for")
	selector := fs.String("selector", "", "DKIM selector, e.g. zipgate2026")
	algorithm := fs.String("algorithm", "rsa", "rsa or ed25519 (many receivers still verify only rsa)")
	bits := fs.Int("bits", 2048, "RSA key size")
	out := fs.String("out", "", "key file to write (default DOMAIN.SELECTOR.key)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *domain == "" || *selector == "" {
		fmt.Fprintln(stderr, "zipgate dkim keygen: -domain and -selector are needed")
		return 2
	}
	if *out == "" {
		*out = *domain + "." + *selector + ".key"
	}
	// The config line printed below must work from any directory.
	if abs, err := filepath.Abs(*out); err == nil {
		*out = abs
	}
	var priv any
	var pub []byte
	var k string
	switch *algorithm {
	case "rsa":
		if *bits < 2048 {
			fmt.Fprintln(stderr, "zipgate dkim keygen: RSA keys under 2048 bits are refused by receivers")
			return 2
		}
		key, err := rsa.GenerateKey(rand.Reader, *bits)
		if err != nil {
			fmt.Fprintln(stderr, "zipgate:", err)
			return 1
		}
		priv, k = key, "rsa"
		pub, _ = x509.MarshalPKIXPublicKey(&key.PublicKey)
	case "ed25519":
		p, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			fmt.Fprintln(stderr, "zipgate:", err)
			return 1
		}
		priv, k, pub = key, "ed25519", p
	default:
		fmt.Fprintf(stderr, "zipgate dkim keygen: algorithm %q is not rsa or ed25519\n", *algorithm)
		return 2
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		fmt.Fprintln(stderr, "zipgate:", err)
		return 1
	}
	// O_EXCL: never overwrite a key whose record may be published.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "zipgate:", err)
		return 1
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		fmt.Fprintln(stderr, "zipgate:", err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(stderr, "zipgate:", err)
		return 1
	}
	record := "v=DKIM1; k=" + k + "; p=" + base64.StdEncoding.EncodeToString(pub)
	fmt.Fprintf(stdout, "wrote %s (mode 0600)\n\nPublish this DNS record:\n\n%s._domainkey.%s. IN TXT %s\n\nand add to zipgate.toml:\n\n[[dkim.key]]\ndomain = %q\nselector = %q\nalgorithm = %q\nkey_file = %q\n",
		*out, *selector, *domain, quoteTXT(record), *domain, *selector, k, *out)
	return 0
}

// quoteTXT splits a record into quoted strings of at most 255 bytes, as
// DNS TXT data must be.
func quoteTXT(s string) string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, `"`+s[:255]+`"`)
		s = s[255:]
	}
	parts = append(parts, `"`+s+`"`)
	return "( " + strings.Join(parts, " ") + " )"
}
