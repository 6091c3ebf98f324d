package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/store"
)

// openExistingStore opens the store a server made, for the admin
// commands (jobs, policy). It never makes one, nor its key: run in the
// wrong directory, or without the -config the server uses, a command must
// say so instead of showing an empty store that it just created.
func openExistingStore(cfg config.Config) (store.Store, error) {
	dir := cfg.DataDir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	for _, f := range []string{cfg.DBFile(), cfg.KeyFile()} {
		_, err := os.Stat(f)
		switch {
		case errors.Is(err, fs.ErrNotExist) && f == cfg.DBFile():
			return nil, fmt.Errorf("no zipgate store in %s; give -data or -config", dir)
		case errors.Is(err, fs.ErrNotExist):
			// A new key would not open the passwords already sealed.
			return nil, fmt.Errorf("the zipgate store in %s has no key file %s; give the -config the server uses", dir, f)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("the zipgate store in %s: %w; run the command as the user zipgate runs as (sudo -u zipgate zipgate ...)", dir, err)
		case err != nil:
			return nil, err
		}
	}
	st, _, err := openStore(cfg)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w; run the command as the user zipgate runs as (sudo -u zipgate zipgate ...)", err)
	}
	return st, err
}
