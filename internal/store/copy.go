package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyTables are the tables CopyToPostgres copies, in an order that
// satisfies nothing in particular (there are no foreign keys) but reads
// as the schema does.
var copyTables = []string{"policies", "messages", "deliveries", "jobs", "held", "approver_tokens", "events", "links",
	"admins", "admin_sessions", "api_tokens"}

// pgOnly are the columns only the PostgreSQL schema has: the leases,
// which start free.
var pgOnly = map[string]bool{"node": true, "lease_until": true}

// Copied says what CopyToPostgres copied.
type Copied struct {
	Rows  map[string]int // by table
	Files int            // held messages and files of download links
	Bytes int64          // of those files
}

// BlobSource hands CopyToPostgres the files to keep in the database:
// each by kind (BlobHeld, BlobLinks), id and number, through put.
type BlobSource func(put func(kind, id string, n int, r io.Reader) error) error

// CopyToPostgres copies the whole SQLite store src into dst, which must
// hold no data yet: every row of every table as it is (sealed passwords,
// keys and tokens stay sealed: dst must have src's key), then the files
// files hands over, all in one transaction: a failure leaves dst empty.
func CopyToPostgres(ctx context.Context, src *SQLite, dst *Postgres, files BlobSource) (Copied, error) {
	out := Copied{Rows: map[string]int{}}
	tx, err := dst.pool.Begin(ctx)
	if err != nil {
		return out, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Each statement of the copy is held to the store's timeout
	// (answerConn), and none needs longer: the lock waits only for the
	// short transactions of nodes that should not be running; COPY's
	// answer comes once its rows are in, and the rows going out keep the
	// wait for it alive; each chunk of a file is an INSERT of its own.
	// No other zipgate may write while the copy runs.
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(copyTables, ", ")+`, blob_files, blob_chunks IN EXCLUSIVE MODE`); err != nil {
		return out, err
	}
	for _, table := range append(slices.Clone(copyTables), "blob_files") {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			return out, err
		}
		if n > 0 {
			return out, fmt.Errorf("the database already holds data (%d rows in %s): copy into an empty one", n, table)
		}
	}
	for _, table := range copyTables {
		n, err := copyTable(ctx, src.db, tx, table)
		if err != nil {
			return out, fmt.Errorf("%s: %w", table, err)
		}
		out.Rows[table] = n
	}
	// Events go on numbering after the copied ones.
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('events', 'seq'), COALESCE(MAX(seq), 0) + 1, false) FROM events`); err != nil {
		return out, err
	}
	if files != nil {
		err := files(func(kind, id string, n int, r io.Reader) error {
			size, err := putBlob(ctx, tx, kind, id, n, r)
			out.Files++
			out.Bytes += size
			if err != nil {
				return fmt.Errorf("%s %s/%d: %w", kind, id, n, err)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, tx.Commit(ctx)
}

// copyTable streams the rows of table from SQLite into PostgreSQL
// (COPY), converting SQLite's integers to booleans where PostgreSQL has
// them. A column of one schema the other lacks is an error: the two
// schemas must not drift apart.
func copyTable(ctx context.Context, from *sql.DB, tx pgx.Tx, table string) (int, error) {
	types := map[string]string{}
	rows, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			rows.Close()
			return 0, err
		}
		types[col] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	src, err := from.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	cols, err := src.Columns()
	if err != nil {
		return 0, err
	}
	for _, c := range cols {
		if types[c] == "" {
			return 0, fmt.Errorf("column %s is not in the PostgreSQL schema", c)
		}
	}
	for c := range types {
		if !slices.Contains(cols, c) && !pgOnly[c] {
			return 0, fmt.Errorf("column %s is not in the SQLite schema", c)
		}
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	var scanErr error
	next := func() ([]any, error) {
		if err := src.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			row[i] = v
			switch types[cols[i]] {
			case "boolean":
				if x, ok := v.(int64); ok {
					row[i] = x != 0
				}
			case "text":
				if b, ok := v.([]byte); ok {
					row[i] = string(b)
				}
			case "bytea":
				if x, ok := v.(string); ok {
					row[i] = []byte(x)
				}
			}
		}
		n++
		return row, nil
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
		if !src.Next() {
			scanErr = src.Err()
			return nil, scanErr
		}
		return next()
	}))
	if err == nil {
		err = scanErr
	}
	return n, err
}

// putBlob writes r as file n of id in tx, in chunks.
func putBlob(ctx context.Context, tx pgx.Tx, kind, id string, n int, r io.Reader) (int64, error) {
	buf := make([]byte, blobChunk)
	var size int64
	seq := 0
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO blob_chunks (kind, id, n, seq, data) VALUES ($1, $2, $3, $4, $5)`,
				kind, id, n, seq, buf[:k]); err != nil {
				return size, err
			}
			seq++
			size += int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return size, err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO blob_files (kind, id, n, size, chunks, written_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		kind, id, n, size, seq, ms(time.Now()))
	return size, err
}
