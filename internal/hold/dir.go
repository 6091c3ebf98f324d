// Package hold keeps messages back before they leave (a hold the sender
// can take back, a second person's approval, the To/Cc guard) and lets
// them go when nothing holds them any more: their bytes on disk (Dir),
// and the scheduler that sends them, expires them and mails the sender
// and the approvers (Scheduler).
package hold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/zipgate/zipgate/internal/spool"
)

// Dir keeps the bytes of held messages, a file each, on disk before
// zipgate answers 250: written, synced, renamed into place and the
// directory synced, so a crash or a power cut leaves the whole file or
// none. With a store several nodes share, the bytes are in it instead
// (NewSharedDir), so any node can send a held message.
type Dir struct {
	path   string
	shared Shared
	tmp    string // where Open spools a shared message to read it
}

// Shared keeps the bytes where every node reads them: the PostgreSQL
// store's blobs (store.Blobs), written in one transaction (whole or
// not at all, durable at its commit) and read as a stream.
type Shared interface {
	Put(ctx context.Context, id string, n int, r io.Reader) error
	Open(ctx context.Context, id string, n int) (io.ReadCloser, error)
	Remove(ctx context.Context, id string) error
	Has(ctx context.Context, id string, n int) (bool, error)
}

// NewSharedDir keeps the held messages in b; Open copies one into a
// spool in tmp (memory, then a temp file) for the relay to read.
func NewSharedDir(b Shared, tmp string) *Dir { return &Dir{shared: b, tmp: tmp} }

// NewDir makes (0700) and returns the directory.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	return &Dir{path: path}, nil
}

func (d *Dir) file(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, `/\.`) {
		return "", fmt.Errorf("hold: bad message id %q", id)
	}
	return filepath.Join(d.path, id+".eml"), nil
}

// spoolMemory is what a shared held message may take in memory while it
// is read; more goes to a temp file.
const spoolMemory = 1 << 20

// Save writes the message of id from r and syncs it.
func (d *Dir) Save(id string, r io.Reader) error {
	path, err := d.file(id)
	if err != nil {
		return err
	}
	if d.shared != nil {
		return d.shared.Put(context.Background(), id, 0, r)
	}
	f, err := os.CreateTemp(d.path, "."+id+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename; left only on failure
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return d.sync()
}

func (d *Dir) sync() error {
	dir, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Open returns the message of id as a spool (Close leaves the file). A
// shared message is copied out of the store with ctx; a missing one is
// fs.ErrNotExist.
func (d *Dir) Open(ctx context.Context, id string) (*spool.File, error) {
	path, err := d.file(id)
	if err != nil {
		return nil, err
	}
	if d.shared != nil {
		rc, err := d.shared.Open(ctx, id, 0)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		sp := spool.New(d.tmp, spoolMemory)
		if _, err := io.Copy(sp, rc); err != nil {
			sp.Close()
			return nil, err
		}
		return sp, nil
	}
	return spool.Open(path)
}

// Remove deletes the message of id; a missing file is not an error.
func (d *Dir) Remove(id string) error {
	path, err := d.file(id)
	if err != nil {
		return err
	}
	if d.shared != nil {
		return d.shared.Remove(context.Background(), id)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Has reports whether the message of id is on disk.
func (d *Dir) Has(id string) bool {
	path, err := d.file(id)
	if err != nil {
		return false
	}
	if d.shared != nil {
		has, err := d.shared.Has(context.Background(), id, 0)
		return err == nil && has
	}
	_, err = os.Stat(path)
	return err == nil
}
