// Command dkimverify checks that mail files carry a valid DKIM signature
// of one domain. The end-to-end script has no DNS: the public key is taken
// from the private key file zipgate signs with, and served to go-msgauth
// as the TXT record would be.
//
//	dkimverify -domain example.jp -selector e2e -key dkim.key FILE...
package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"os"

	"github.com/emersion/go-msgauth/dkim"
)

func main() {
	domain := flag.String("domain", "", "signing domain (d=)")
	selector := flag.String("selector", "", "selector (s=)")
	keyFile := flag.String("key", "", "private key file (PEM, PKCS#8)")
	flag.Parse()
	txt, err := record(*keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dkimverify:", err)
		os.Exit(2)
	}
	name := *selector + "._domainkey." + *domain
	lookup := func(q string) ([]string, error) {
		if q == name {
			return []string{txt}, nil
		}
		return nil, fmt.Errorf("no TXT record for %s", q)
	}
	bad := 0
	for _, path := range flag.Args() {
		if err := verify(path, *domain, lookup); err != nil {
			fmt.Printf("FAIL %s: %v\n", path, err)
			bad++
		} else {
			fmt.Printf("ok   %s\n", path)
		}
	}
	if bad > 0 || flag.NArg() == 0 {
		os.Exit(1)
	}
}

func verify(path, domain string, lookup func(string) ([]string, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	vs, err := dkim.VerifyWithOptions(f, &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.Domain == domain {
			return v.Err // nil: verified
		}
	}
	return fmt.Errorf("no signature of %s", domain)
}

// record builds the DKIM TXT record of a private key's public half.
func record(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", err
	}
	var pub []byte
	var k string
	switch key := key.(type) {
	case *rsa.PrivateKey:
		pub, err = x509.MarshalPKIXPublicKey(key.Public())
		k = "rsa"
	case ed25519.PrivateKey:
		pub, k = key.Public().(ed25519.PublicKey), "ed25519"
	default:
		return "", fmt.Errorf("%s: unsupported key %T", path, key.(crypto.Signer))
	}
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=" + k + "; p=" + base64.StdEncoding.EncodeToString(pub), nil
}
