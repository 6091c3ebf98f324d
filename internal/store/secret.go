package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// sealer encrypts passwords at rest with AES-256-GCM, so a copied
// database does not give them away without the key file.
type sealer struct{ aead cipher.AEAD }

// LoadKey reads the 32-byte key at path, creating it (mode 0600) when it
// does not exist yet.
//
// The key is written to a temporary file first and linked into place
// only once it is complete and synced, so a server and a CLI starting
// together on a new install get the same key, and a crash never leaves a
// short key file behind. The directory is synced too: jobs sealed with a
// key that a power cut then loses could never be opened again.
func LoadKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return readKey(path) // another process made it first: use that one
	} else if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key file %s holds %d bytes, want 32", path, len(key))
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func newSealer(key []byte) (*sealer, error) {
	// aes.NewCipher would take a 16- or 24-byte key as AES-128 or -192.
	if len(key) != 32 {
		return nil, fmt.Errorf("password key has %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns nonce||ciphertext; the job id is bound in as associated
// data so a sealed password cannot be moved to another job.
func (s *sealer) seal(id, password string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(password), []byte(id)), nil
}

func (s *sealer) open(id string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil // wiped
	}
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed password too short")
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		// Never the password, never the key: only that it did not open.
		return "", errors.New("password does not decrypt with this key file")
	}
	return string(pt), nil
}
