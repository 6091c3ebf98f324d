// Package links keeps the files of download links (policy action link):
// the attachments of a linked copy stay on the gateway, each encrypted
// with its message's own key (sealed in the store like the passwords),
// until the link ends (and FilesGrace after). Its scheduler ends links
// at their expiry (and at release.retention at the latest), deletes the
// files of ended ones, and mails the sender when a link is first used or
// locked.
package links

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/zipgate/zipgate/internal/store"
)

// Blobs is where the encrypted files are kept: a directory (Dir), or,
// for several nodes, the PostgreSQL store (Shared).
type Blobs interface {
	// Create starts file n of link; it exists once Commit returns.
	Create(link string, n int) (Blob, error)
	// Open opens files ns of link for one download, every one of them
	// before the download counts (a missing one is fs.ErrNotExist); ctx
	// is the download's. Close every one.
	Open(ctx context.Context, link string, ns []int) ([]io.ReadCloser, error)
	// Remove deletes every file of link; none is no error.
	Remove(link string) error
	// List names the links that have files, with when each was last
	// written.
	List() (map[string]time.Time, error)
}

// Blob is a file being written.
type Blob interface {
	io.Writer
	// Commit makes it durable and visible; Abort drops it.
	Commit() error
	Abort()
}

// Files keeps the files of the links in Blobs, encrypted.
type Files struct{ Blobs Blobs }

// Put encrypts r with key as file n of link; it returns the size and the
// SHA-256 of the plain text.
func (f *Files) Put(link string, n int, key []byte, r io.Reader) (int64, [32]byte, error) {
	var sum [32]byte
	b, err := f.Blobs.Create(link, n)
	if err != nil {
		return 0, sum, err
	}
	enc, err := encrypt(b, key, link, n)
	if err != nil {
		b.Abort()
		return 0, sum, err
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(enc, h), r)
	if err == nil {
		err = enc.Close()
	}
	if err == nil {
		err = b.Commit()
	}
	if err != nil {
		b.Abort()
		return 0, sum, err
	}
	h.Sum(sum[:0])
	return size, sum, nil
}

// Open opens files ns of link for one download (Blobs.Open), each
// decrypted as it is read; a damaged file gives ErrCorrupt on the way.
// Each is decrypted from its first read on, so a download of many files
// keeps the buffers of one at a time.
func (f *Files) Open(ctx context.Context, link string, ns []int, key []byte) ([]io.ReadCloser, error) {
	rcs, err := f.Blobs.Open(ctx, link, ns)
	if err != nil {
		return nil, err
	}
	out := make([]io.ReadCloser, len(rcs))
	for i, rc := range rcs {
		out[i] = &plainFile{rc: rc, key: key, link: link, n: ns[i]}
	}
	return out, nil
}

// plainFile decrypts a file from its first read on.
type plainFile struct {
	rc   io.ReadCloser
	key  []byte
	link string
	n    int
	r    io.Reader
	err  error
}

func (p *plainFile) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.r == nil {
		if p.r, p.err = decrypt(p.rc, p.key, p.link, p.n); p.err != nil {
			return 0, p.err
		}
	}
	k, err := p.r.Read(b)
	if err != nil {
		p.r, p.err = nil, err // its buffers go with the end
	}
	return k, err
}

func (p *plainFile) Close() error { return p.rc.Close() }

// Remove deletes the files of link.
func (f *Files) Remove(link string) error { return f.Blobs.Remove(link) }

// Dir keeps the files as data_dir/links/LINK/N, written to a temporary
// file, synced, and renamed into place.
type Dir struct{ path string }

// NewDir makes (mode 0700) and returns the directory.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	return &Dir{path: path}, nil
}

// Link ids are the gateway's (base32 and hex, a dash): nothing that could
// leave the directory.
var linkID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func (d *Dir) dir(link string) (string, error) {
	if !linkID.MatchString(link) {
		return "", fmt.Errorf("links: bad link id %q", link)
	}
	return filepath.Join(d.path, link), nil
}

type dirBlob struct {
	f    *os.File
	dir  string
	name string
}

func (d *Dir) Create(link string, n int) (Blob, error) {
	dir, err := d.dir(link)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".new-*") // mode 0600
	if err != nil {
		return nil, err
	}
	return &dirBlob{f: f, dir: dir, name: strconv.Itoa(n)}, nil
}

func (b *dirBlob) Write(p []byte) (int, error) { return b.f.Write(p) }

func (b *dirBlob) Commit() error {
	if err := b.f.Sync(); err != nil {
		return err
	}
	if err := b.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(b.f.Name(), filepath.Join(b.dir, b.name)); err != nil {
		return err
	}
	return syncDir(b.dir)
}

func (b *dirBlob) Abort() {
	b.f.Close()
	os.Remove(b.f.Name())
}

// Open opens the files as they are on disk: a file removed meanwhile
// reads on from its open descriptor.
func (d *Dir) Open(ctx context.Context, link string, ns []int) ([]io.ReadCloser, error) {
	dir, err := d.dir(link)
	if err != nil {
		return nil, err
	}
	out := make([]io.ReadCloser, 0, len(ns))
	for _, n := range ns {
		f, err := os.Open(filepath.Join(dir, strconv.Itoa(n)))
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			if f != nil {
				f.Close()
			}
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func (d *Dir) Remove(link string) error {
	dir, err := d.dir(link)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return syncDir(d.path)
}

func (d *Dir) List() (map[string]time.Time, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, e := range entries {
		if !e.IsDir() || !linkID.MatchString(e.Name()) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[e.Name()] = info.ModTime()
	}
	return out, nil
}

// Shared keeps the files in the store several nodes share, so a link
// downloads from any node: each file written in one transaction, read a
// chunk per statement (store.Blobs.OpenAll), so a download holds no
// connection while it streams. A file removed while it streams would
// not read to its end: the scheduler keeps the files of an ended link
// for FilesGrace.
type Shared struct{ B *store.Blobs }

func (s Shared) Create(link string, n int) (Blob, error) {
	if !linkID.MatchString(link) {
		return nil, fmt.Errorf("links: bad link id %q", link)
	}
	w, err := s.B.Create(context.Background(), link, n)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (s Shared) Open(ctx context.Context, link string, ns []int) ([]io.ReadCloser, error) {
	if !linkID.MatchString(link) {
		return nil, fmt.Errorf("links: bad link id %q", link)
	}
	return s.B.OpenAll(ctx, link, ns)
}

func (s Shared) Remove(link string) error { return s.B.Remove(context.Background(), link) }

func (s Shared) List() (map[string]time.Time, error) { return s.B.List(context.Background()) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
