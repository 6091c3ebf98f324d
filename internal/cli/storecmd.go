package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/store"
)

const storeUsage = `Usage:
  zipgate store migrate -from sqlite:DIR -to postgres://USER@HOST/DB [-key FILE] [-password-file FILE]

Copies the embedded store of a single gateway (DIR is its data_dir: zipgate.db,
zipgate.key, held/ and links/) into an empty PostgreSQL database, so that several
nodes can share it: every table as it is (sealed passwords stay sealed under the
same key), and the held messages and the files of download links. Stop the
gateway first; the database must be empty (a zipgate serve on it may have made
the tables, nothing more). Then set store.url on every node and give each a copy
of the key file (release.key_file).
`

func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprint(stderr, storeUsage)
		return 2
	}
	fs := flag.NewFlagSet("store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, storeUsage) }
	from := fs.String("from", "", "the single gateway's store: sqlite:DIR, DIR its data_dir")
	to := fs.String("to", "", "the PostgreSQL database (postgres://...), without its password")
	keyFile := fs.String("key", "", "the store's key file (default DIR/zipgate.key; release.key_file if it was set)")
	pwFile := fs.String("password-file", "", "file whose first line is the database password (else PGPASSFILE)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	dir, ok := strings.CutPrefix(*from, "sqlite:")
	if !ok || dir == "" || !strings.HasPrefix(*to, "postgres") {
		fmt.Fprint(stderr, storeUsage)
		return 2
	}
	if err := migrateStore(dir, *to, *keyFile, *pwFile, stdout); err != nil {
		fmt.Fprintf(stderr, "zipgate: store migrate: %v\n", err)
		return 1
	}
	return 0
}

func migrateStore(dir, to, keyFile, pwFile string, stdout io.Writer) error {
	ctx := context.Background()
	if keyFile == "" {
		keyFile = filepath.Join(dir, "zipgate.key")
	}
	db := filepath.Join(dir, "zipgate.db")
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("no zipgate store to copy in %s: %w", dir, err)
	}
	if _, err := os.Stat(keyFile); err != nil {
		// The passwords are sealed with it: without it the copy is useless.
		return fmt.Errorf("no key file for the store in %s: %w; give -key FILE (that gateway's release.key_file)", dir, err)
	}
	// A gateway still serving the directory would go on writing to what
	// was copied.
	unlock, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	key, err := store.LoadKey(keyFile) // exists: read, never made
	if err != nil {
		return err
	}
	src, err := store.OpenSQLite(ctx, db, key)
	if err != nil {
		return err
	}
	defer src.Close()
	// The key must open what it is to carry over sealed.
	if _, err := src.List(ctx, "", 1000); err != nil {
		return fmt.Errorf("%s does not open the store's passwords: %w", keyFile, err)
	}
	pw, err := config.Store{PasswordFile: pwFile}.ReadPassword()
	if err != nil {
		return err
	}
	dst, err := store.OpenPostgresKey(ctx, store.PostgresOptions{URL: to, Password: pw}, key)
	if err != nil {
		return err
	}
	defer dst.Close()
	copied, err := store.CopyToPostgres(ctx, src, dst, storeFiles(ctx, src, dir))
	if err != nil {
		return err
	}
	tables := make([]string, 0, len(copied.Rows))
	for t := range copied.Rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	fmt.Fprintf(stdout, "copied %s into %s:\n", dir, config.RedactURL(to))
	for _, t := range tables {
		rows := "rows"
		if copied.Rows[t] == 1 {
			rows = "row"
		}
		fmt.Fprintf(stdout, "  %-16s %d %s\n", t, copied.Rows[t], rows)
	}
	fmt.Fprintf(stdout, "  files            %d (%d bytes: held messages, files of download links)\n", copied.Files, copied.Bytes)
	fmt.Fprintf(stdout, "Now set store.url = %q on every node and give each a copy of %s (release.key_file).\n",
		config.RedactURL(to), keyFile)
	return nil
}

var linkDir = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// storeFiles hands over the bytes kept beside the database: the held
// messages of held rows (dir/held/ID.eml) and the files of links that
// still have them (dir/links/ID/N). Files no row holds stay behind.
func storeFiles(ctx context.Context, src *store.SQLite, dir string) store.BlobSource {
	return func(put func(kind, id string, n int, r io.Reader) error) error {
		held, err := os.ReadDir(filepath.Join(dir, "held"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range held {
			id, ok := strings.CutSuffix(e.Name(), ".eml")
			if !ok || strings.HasPrefix(id, ".") {
				continue
			}
			if _, err := src.GetHeld(ctx, id); errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if err := putFile(put, store.BlobHeld, id, 0, filepath.Join(dir, "held", e.Name())); err != nil {
				return err
			}
		}
		linked, err := os.ReadDir(filepath.Join(dir, "links"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range linked {
			if !e.IsDir() || !linkDir.MatchString(e.Name()) {
				continue
			}
			l, err := src.GetLink(ctx, e.Name())
			if errors.Is(err, store.ErrNotFound) || (err == nil && l.FilesGone) {
				continue
			} else if err != nil {
				return err
			}
			files, err := os.ReadDir(filepath.Join(dir, "links", e.Name()))
			if err != nil {
				return err
			}
			for _, f := range files {
				n, err := strconv.Atoi(f.Name())
				if err != nil || f.IsDir() {
					continue // a file being written when the gateway stopped
				}
				if err := putFile(put, store.BlobLinks, e.Name(), n, filepath.Join(dir, "links", e.Name(), f.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func putFile(put func(kind, id string, n int, r io.Reader) error, kind, id string, n int, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return put(kind, id, n, f)
}
