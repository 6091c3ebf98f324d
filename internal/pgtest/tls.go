package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var tlsOnce sync.Map

// EnableTLS turns TLS on in the cluster, with a self-signed certificate
// for 127.0.0.1 (a reload: connections made without it go on), and
// returns url asking for it (sslmode=require: encrypted, the
// certificate not checked).
func (c *Cluster) EnableTLS(t testing.TB, url string) string {
	t.Helper()
	o, _ := tlsOnce.LoadOrStore(c, &sync.Once{})
	var err error
	o.(*sync.Once).Do(func() { err = c.enableTLS() })
	if err != nil {
		t.Fatalf("turning TLS on: %v", err)
	}
	return strings.Replace(url, "sslmode=disable", "sslmode=require", 1)
}

func (c *Cluster) enableTLS() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The server takes a key only its own user can read.
	for name, b := range map[string][]byte{
		"server.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		f := filepath.Join(c.data(), name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return err
		}
		if c.cred != nil {
			if err := os.Chown(f, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return err
			}
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range []string{`ALTER SYSTEM SET ssl = on`, `SELECT pg_reload_conf()`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return err
		}
	}
	// The reload is taken up by the postmaster a moment later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tc, err := pgx.Connect(ctx, strings.Replace(c.URL("postgres"), "sslmode=disable", "sslmode=require", 1))
		if err == nil {
			tc.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no TLS connection 10 s after the reload: %w", err)
		}
	}
}
