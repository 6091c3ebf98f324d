package cli

import (
	"errors"
	"fmt"
	"io"
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
	if cfg.Store.Shared() {
		st, _, err := openShared(cfg, true, "")
		if errors.Is(err, store.ErrNoStore) {
			return nil, fmt.Errorf("%w; a zipgate serve with this store.url makes it", err)
		}
		return st, err
	}
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

// adminConfig loads the configuration of an admin command, with -data
// over data_dir; on a problem it says so on stderr and returns false.
func adminConfig(path, data string, stderr io.Writer) (config.Config, bool) {
	cfg, err := loadConfig(path, func(c *config.Config) {
		if data != "" {
			c.DataDir = data
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: configuration:\n%s\n", err)
		return cfg, false
	}
	return cfg, true
}

// openAdmin loads the configuration and opens the store an admin command
// works on; on false it has said why.
func openAdmin(path, data string, stderr io.Writer) (config.Config, store.Store, bool) {
	cfg, ok := adminConfig(path, data, stderr)
	if !ok {
		return cfg, nil, false
	}
	st, ok := adminStore(cfg, stderr)
	return cfg, st, ok
}

// adminStore opens the store for an admin command, or says why not.
func adminStore(cfg config.Config, stderr io.Writer) (store.Store, bool) {
	st, err := openExistingStore(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "zipgate: %v\n", err)
		return nil, false
	}
	return st, true
}
