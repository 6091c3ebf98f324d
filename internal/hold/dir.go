// Package hold keeps messages back before they leave (a hold the sender
// can take back, a second person's approval, the To/Cc guard) and lets
// them go when nothing holds them any more: their bytes on disk (Dir),
// and the scheduler that sends them, expires them and mails the sender
// and the approvers (Scheduler).
package hold

import (
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
// none.
type Dir struct{ path string }

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

// Save writes the message of id from r and syncs it.
func (d *Dir) Save(id string, r io.Reader) error {
	path, err := d.file(id)
	if err != nil {
		return err
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

// Open returns the message of id as a spool (Close leaves the file).
func (d *Dir) Open(id string) (*spool.File, error) {
	path, err := d.file(id)
	if err != nil {
		return nil, err
	}
	return spool.Open(path)
}

// Remove deletes the message of id; a missing file is not an error.
func (d *Dir) Remove(id string) error {
	path, err := d.file(id)
	if err != nil {
		return err
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
	_, err = os.Stat(path)
	return err == nil
}
